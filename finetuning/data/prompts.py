"""Prompt data for GRPO: each row is ``messages`` (the prompt, which the trainer renders with the chat template and
a generation prompt) and any reference fields the graders read (``{{item.answer}}``).

Rows are checked before training: the prompt must not end with an assistant turn (the model writes that), and every
grader must be able to read the row (its fields are there, a number_match reference is a number, a per-row regex
compiles). A row that fails is a bad row, named by file and line, within ``data_conf.max_bad_rows``.

TRL gets ``{"prompt": [{role, content}, ...], "item": "<the reference fields as JSON>"}``: one JSON column keeps
fields of any type (a number in one row, text in another) and any name (even ``prompt``) out of TRL's way.

:func:`prepare_prompt_datasets` works on Arrow from the file onwards, as preference data does: each file is read,
checked and converted a batch at a time into a memory-mapped Arrow file (:mod:`finetuning.data.row_files`), and the
mix and the validation split are index arrays over its rows: the same rows, order, mix and split as the rows mixed in
memory with :func:`finetuning.data.mixing.interleave` and split with :func:`finetuning.data.preprocess.split_positions`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, NoneInput, WeightedMixInput
from finetuning.data.errors import DataError
from finetuning.data.loading import BadRows
from finetuning.data.mixing import mix_indices
from finetuning.data.records import Message
from finetuning.data.row_files import RowFile, RowFormat, concatenated, read_row_file, rows_root, select_rows

if TYPE_CHECKING:
    from datasets import Dataset

    from finetuning.config.graders import Grader

logger = logging.getLogger(__name__)

ITEM_COLUMN = "item"
"""The column holding each row's reference fields as JSON; the graders read it."""

# Bump whenever the rows written here change for the same file and graders, so stale entries are not reused.
PROMPTS_VERSION = 1


class PromptRecord(BaseModel):
    """A GRPO example: the prompt and the reference fields (any other keys, kept)."""

    model_config = ConfigDict(extra="allow")

    messages: list[Message] = Field(min_length=1)


def prompt_format(graders: Sequence[Grader]) -> RowFormat:
    """How a prompt file's records become rows in its Arrow entry (:mod:`finetuning.data.row_files`): a record is a
    bad row when its prompt ends with an assistant turn or a grader cannot read it, so the graders are part of the
    entry's key."""
    from datasets import Features, List, Value

    from finetuning.graders import row_problem

    def check(path: str, line: int, record: dict[str, Any]) -> None:
        if record["messages"][-1]["role"] == "assistant":
            raise DataError(
                path,
                line,
                "the prompt ends with an assistant message, but in GRPO the model writes the answer: drop it "
                "(a reference answer goes in a field the graders read, e.g. 'answer')",
            )
        item = _item(record)
        for grader in graders:
            problem = row_problem(grader, item)
            if problem:
                raise DataError(path, line, problem)

    def convert(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in record["messages"]],
                ITEM_COLUMN: json.dumps(_item(record), ensure_ascii=False, sort_keys=True),
            }
            for record in records
        ]

    messages = List({"role": Value("string"), "content": Value("string")})
    return RowFormat(
        prefix="prompt",
        meta_name="prompts.json",
        version=PROMPTS_VERSION,
        record_type=PromptRecord,
        features=Features({"prompt": messages, ITEM_COLUMN: Value("string")}),
        convert=convert,
        settings={"graders": [grader.model_dump(mode="json") for grader in graders]},
        check=check,
    )


def _item(record: dict[str, Any]) -> dict[str, Any]:
    """The reference fields of a validated record: all but the prompt."""
    return {key: value for key, value in record.items() if key != "messages"}


def prepare_prompt_datasets(
    data_conf: DataConf,
    graders: Sequence[Grader],
    *,
    bad_rows: BadRows | None = None,
    require_rows: bool = True,
    cache_dir: Path | None = None,
) -> tuple[Dataset, Dataset | None]:
    """Training and validation prompts (mixing and validation options as for SFT), each row checked against
    ``graders``. ``bad_rows``: where skipped rows are counted (default: within ``data_conf.max_bad_rows``);
    ``require_rows``: no usable training prompt is an error (the plan reports it instead).

    Each data file becomes an Arrow file of rows under ``cache_dir``, named by the file's content and the graders,
    and kept for later calls; without ``cache_dir`` they go to a temporary folder of this process, removed when it
    exits. The datasets returned are memory-mapped (through an index mapping when mixed or split).
    """
    from finetuning.data.preprocess import split_positions

    root = rows_root(cache_dir)
    bad_rows = bad_rows if bad_rows is not None else BadRows(data_conf.max_bad_rows)
    fmt = prompt_format(graders)
    files: dict[str, RowFile] = {}

    def read(path: str) -> RowFile:
        if path in files:  # a file named again is not read again, but its bad rows count again (as they always did)
            files[path].count_bad_rows(bad_rows)
        else:
            files[path] = read_row_file(path, fmt, root, bad_rows)
        return files[path]

    train_base, train_ids = _section(data_conf.training_data, read)
    validation = data_conf.validation_data
    train: Dataset = select_rows(train_base, train_ids)
    held_out: Dataset | None = None
    if isinstance(validation, AutoSplitInput):
        train_at, eval_at = split_positions(len(train_ids), validation)
        train, held_out = select_rows(train_base, train_ids[train_at]), select_rows(train_base, train_ids[eval_at])
    elif isinstance(validation, ConcatenationInput):
        held_out = select_rows(*_section(validation, read))
    else:
        assert isinstance(validation, NoneInput)
    if summary := bad_rows.summary():
        logger.warning("%s", summary)
    if not len(train) and require_rows:
        raise DataError(str(data_conf.training_data.datasets[0].path), None, "no usable prompts in the training data")
    return train, held_out


def _section(
    section: ConcatenationInput | WeightedMixInput, read: Callable[[str], RowFile]
) -> tuple[Dataset, np.ndarray]:
    """The rows of ``section``'s files one after the other, and the positions of its rows in them, in order."""
    if isinstance(section, ConcatenationInput):
        parts = [read(ref.path) for ref in section.datasets]
        return concatenated(parts), np.arange(sum(part.records for part in parts), dtype=np.int64)
    # weight-0 files are not read at all: a placeholder entry need not exist
    weights = [ref.sampling_weight for ref in section.datasets]
    mixed = [read(ref.path) if weight > 0 else None for ref, weight in zip(section.datasets, weights, strict=True)]
    ids = mix_indices([0 if part is None else part.records for part in mixed], weights, section.seed)
    return concatenated([part for part in mixed if part is not None]), ids
