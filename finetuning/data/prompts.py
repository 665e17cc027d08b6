"""Prompt data for GRPO: each row is ``messages`` (the prompt, which the trainer renders with the chat template and
a generation prompt) and any reference fields the graders read (``{{item.answer}}``).

Rows are checked before training: the prompt must not end with an assistant turn (the model writes that), and every
grader must be able to read the row (its fields are there, a number_match reference is a number, a per-row regex
compiles). A row that fails is a bad row, named by file and line, within ``data_conf.max_bad_rows``.

TRL gets ``{"prompt": [{role, content}, ...], "item": "<the reference fields as JSON>"}``: one JSON column keeps
fields of any type (a number in one row, text in another) and any name (even ``prompt``) out of TRL's way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, NoneInput, WeightedMixInput
from finetuning.data.errors import DataError
from finetuning.data.loading import BadRows, iter_records
from finetuning.data.mixing import concatenate, interleave
from finetuning.data.records import Message

if TYPE_CHECKING:
    from datasets import Dataset

    from finetuning.config.graders import Grader

logger = logging.getLogger(__name__)

ITEM_COLUMN = "item"
"""The column holding each row's reference fields as JSON; the graders read it."""


class PromptRecord(BaseModel):
    """A GRPO example: the prompt and the reference fields (any other keys, kept)."""

    model_config = ConfigDict(extra="allow")

    messages: list[Message] = Field(min_length=1)


def _rows_of(path: str, graders: Sequence[Grader], bad_rows: BadRows) -> list[dict[str, Any]]:
    from finetuning.graders import row_problem

    rows: list[dict[str, Any]] = []
    for line, record in iter_records(path, PromptRecord, bad_rows):
        messages = record.pop("messages")
        try:
            if messages[-1]["role"] == "assistant":
                raise DataError(
                    path,
                    line,
                    "the prompt ends with an assistant message, but in GRPO the model writes the answer: drop it "
                    "(a reference answer goes in a field the graders read, e.g. 'answer')",
                )
            for grader in graders:
                problem = row_problem(grader, record)
                if problem:
                    raise DataError(path, line, problem)
        except DataError as exc:
            bad_rows.add(exc)
            continue
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        rows.append({"prompt": prompt, ITEM_COLUMN: json.dumps(record, ensure_ascii=False, sort_keys=True)})
    return rows


def _section_rows(
    section: ConcatenationInput | WeightedMixInput, graders: Sequence[Grader], bad_rows: BadRows
) -> list[dict[str, Any]]:
    if isinstance(section, ConcatenationInput):
        return concatenate([_rows_of(ref.path, graders, bad_rows) for ref in section.datasets])
    sources = [_rows_of(ref.path, graders, bad_rows) if ref.sampling_weight > 0 else [] for ref in section.datasets]
    return interleave(sources, [ref.sampling_weight for ref in section.datasets], section.seed)


def prepare_prompt_datasets(
    data_conf: DataConf, graders: Sequence[Grader], *, bad_rows: BadRows | None = None, require_rows: bool = True
) -> tuple[Dataset, Dataset | None]:
    """Training and validation prompts (mixing and validation options as for SFT), each row checked against
    ``graders``. ``bad_rows``: where skipped rows are counted (default: within ``data_conf.max_bad_rows``);
    ``require_rows``: no usable training prompt is an error (the plan reports it instead)."""
    from datasets import Dataset

    from finetuning.data.preprocess import split_positions

    bad_rows = bad_rows or BadRows(data_conf.max_bad_rows)
    rows = _section_rows(data_conf.training_data, graders, bad_rows)
    validation = data_conf.validation_data
    eval_rows: list[dict[str, Any]] | None = None
    if isinstance(validation, AutoSplitInput):
        train_at, eval_at = split_positions(len(rows), validation)
        rows, eval_rows = [rows[i] for i in train_at], [rows[i] for i in eval_at]
    elif isinstance(validation, ConcatenationInput):
        eval_rows = _section_rows(validation, graders, bad_rows)
    else:
        assert isinstance(validation, NoneInput)
    if summary := bad_rows.summary():
        logger.warning("%s", summary)
    if not rows and require_rows:
        raise DataError(str(data_conf.training_data.datasets[0].path), None, "no usable prompts in the training data")
    return Dataset.from_list(rows), None if eval_rows is None else Dataset.from_list(eval_rows)
