"""Preference data for TRL's trainers: our records become conversational rows that TRL templates and tokenizes.

Paired (DirectPreference) rows are ``{prompt, chosen, rejected}``, each a list of ``{role, content}`` messages;
unpaired (KTO) rows are ``{prompt, completion, label}``. KTO can also train on paired data: each pair gives a
desirable and an undesirable row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput
from finetuning.data.loading import BadRows, load_records
from finetuning.data.mixing import build_training_records, concatenate

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    # TRL renders with the chat template: only role and content mean anything to it
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def to_trl_rows(records: list[dict[str, Any]], data_type: DataType, *, unpaired: bool) -> list[dict[str, Any]]:
    """Rows in TRL's conversational format; ``unpaired`` gives KTO rows (a pair becomes two labelled rows)."""
    rows: list[dict[str, Any]] = []
    for record in records:
        prompt = _messages(record["prompt_messages"])
        if data_type == DataType.UNPAIRED_PREFERENCE:
            rows.append(
                {"prompt": prompt, "completion": _messages(record["completion_messages"]), "label": record["label"]}
            )
        elif unpaired:
            rows.append({"prompt": prompt, "completion": _messages(record["chosen_messages"]), "label": True})
            rows.append({"prompt": prompt, "completion": _messages(record["rejected_messages"]), "label": False})
        else:
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": _messages(record["chosen_messages"]),
                    "rejected": _messages(record["rejected_messages"]),
                }
            )
    return rows


def prepare_preference_datasets(data_conf: DataConf, *, unpaired: bool) -> tuple[Dataset, Dataset | None]:
    """Training and validation rows (mixing and validation options as for SFT); TRL tokenizes them."""
    from datasets import Dataset

    from finetuning.data.preprocess import split_validation

    training = data_conf.training_data
    if training.data_type not in (DataType.DIRECT_PREFERENCE, DataType.UNPAIRED_PREFERENCE):
        raise ValueError(f"preference training needs preference records, not {training.data_type}")
    bad_rows = BadRows(data_conf.max_bad_rows)  # across the training and validation files
    records = build_training_records(training, bad_rows)

    def rows(chosen: list[dict[str, Any]]) -> Dataset:
        return Dataset.from_list(to_trl_rows(chosen, training.data_type, unpaired=unpaired))

    if summary := bad_rows.summary():
        logger.warning("%s", summary)
    validation = data_conf.validation_data
    if isinstance(validation, NoneInput):
        return rows(records), None
    if isinstance(validation, AutoSplitInput):
        # split the records, not the rows, so both halves of an unpaired pair stay on one side
        train_part, eval_part = split_validation(Dataset.from_dict({"index": list(range(len(records)))}), validation)
        return rows([records[i] for i in train_part["index"]]), rows([records[i] for i in eval_part["index"]])
    assert isinstance(validation, ConcatenationInput)
    return rows(records), rows(
        concatenate([load_records(ref.path, validation.data_type, bad_rows) for ref in validation.datasets])
    )


@dataclass
class TruncatingPreferenceCollator:
    """TRL's preference collator, with each example's prompt cut to its last ``max_prompt_length`` tokens (its
    leading BOS kept) and each answer to its first ``max_completion_length`` tokens first: the original engine's
    (TRL 0.x's) truncation, which TRL 1 no longer does. ``inner`` is the trainer's own collator, so padding and the
    pad token stay TRL's."""

    inner: Callable[[list[dict[str, Any]]], Any]
    max_prompt_length: int | None
    max_completion_length: int | None
    # A prompt that starts with the BOS keeps it when cut: every row starts with one BOS, as in SFT
    # (finetuning.tokenizer.SpecialTokenFraming); cutting it off would train on rows that inference never produces.
    bos_token_id: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> Any:
        return self.inner([self._truncated(example) for example in examples])

    def _truncated(self, example: dict[str, Any]) -> dict[str, Any]:
        out = dict(example)
        if self.max_prompt_length is not None:
            prompt = list(example["prompt_ids"])
            head = prompt[:1] if self.bos_token_id is not None and prompt[:1] == [self.bos_token_id] else []
            if len(prompt) > self.max_prompt_length:
                keep = max(self.max_prompt_length - len(head), 0)
                prompt = head + (prompt[len(prompt) - keep :] if keep else [])
            out["prompt_ids"] = prompt
        if self.max_completion_length is not None:
            for key in ("chosen_ids", "rejected_ids"):
                out[key] = list(example[key])[: self.max_completion_length]
        return out
