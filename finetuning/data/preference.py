"""Preference data for TRL's trainers: our records become conversational rows that TRL templates and tokenizes.

Paired (DirectPreference) rows are ``{prompt, chosen, rejected}``, each a list of ``{role, content}`` messages;
unpaired (KTO) rows are ``{prompt, completion, label}``. KTO can also train on paired data: each pair gives a
desirable and an undesirable row.

:func:`prepare_preference_datasets` works on Arrow from the file onwards, so memory does not grow with the data: each
file is read, validated and converted to TRL rows a batch at a time into an Arrow file, opened memory-mapped
(:mod:`finetuning.data.row_files`), and the mix and the validation split are index arrays over records
(:func:`finetuning.data.mixing.mix_indices`, :func:`finetuning.data.preprocess.split_positions`): the same rows,
order, mix and split as converting the records of :func:`finetuning.data.mixing.build_training_records` with
:func:`to_trl_rows`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput, WeightedMixInput
from finetuning.data.loading import RECORD_TYPES, BadRows
from finetuning.data.mixing import mix_indices
from finetuning.data.row_files import RowFile, RowFormat, concatenated, read_row_file, rows_root, select_rows

if TYPE_CHECKING:
    from datasets import Dataset, Features

logger = logging.getLogger(__name__)

# Bump whenever the rows written here change for the same file, so stale entries under a cache_dir are not reused.
PREFERENCE_VERSION = 1


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


def trl_features(data_type: DataType, *, unpaired: bool) -> Features:
    """The columns of :func:`to_trl_rows`' rows, as ``Dataset.from_list`` infers them."""
    from datasets import Features, List, Value

    messages = List({"role": Value("string"), "content": Value("string")})
    if data_type == DataType.UNPAIRED_PREFERENCE or unpaired:
        return Features({"prompt": messages, "completion": messages, "label": Value("bool")})
    return Features({"prompt": messages, "chosen": messages, "rejected": messages})


def prepare_preference_datasets(
    data_conf: DataConf, *, unpaired: bool, cache_dir: Path | None = None
) -> tuple[Dataset, Dataset | None]:
    """Training and validation rows (mixing and validation options as for SFT); TRL tokenizes them.

    Each data file becomes an Arrow file of TRL rows under ``cache_dir``, named by the file's content and kept for
    later calls (another process of the run, a later job); without ``cache_dir`` they go to a temporary folder of this
    process, removed when it exits. The datasets returned are memory-mapped (through an index mapping when mixed or
    split). Bad rows count across the training and validation files (``data_conf.max_bad_rows``).
    """
    training, validation = data_conf.training_data, data_conf.validation_data
    data_type = training.data_type
    if data_type not in (DataType.DIRECT_PREFERENCE, DataType.UNPAIRED_PREFERENCE):
        raise ValueError(f"preference training needs preference records, not {data_type}")
    if isinstance(validation, ConcatenationInput) and validation.data_type != data_type:
        raise ValueError(
            f"validation_data.data_type is {validation.data_type} but training_data.data_type is {data_type}: "
            "validation rows must be of the training rows' kind"
        )
    root = rows_root(cache_dir)
    bad_rows = BadRows(data_conf.max_bad_rows)  # across the training and validation files
    fmt = preference_format(data_type, unpaired=unpaired)
    files: dict[str, RowFile] = {}

    def read(path: str) -> RowFile:
        if path not in files:  # a file named twice is read once
            files[path] = read_row_file(path, fmt, root, bad_rows)
        return files[path]

    # weight-0 files are not read at all: a placeholder entry need not exist
    weights = [float(getattr(ref, "sampling_weight", 1.0)) for ref in training.datasets]
    train_files = [
        read(ref.path) if weight > 0 else None for ref, weight in zip(training.datasets, weights, strict=True)
    ]
    sizes = [0 if part is None else part.records for part in train_files]
    if isinstance(training, WeightedMixInput):
        train_ids = mix_indices(sizes, weights, training.seed)
    else:
        train_ids = np.arange(sum(sizes), dtype=np.int64)
    val_files = [read(ref.path) for ref in validation.datasets] if isinstance(validation, ConcatenationInput) else []
    if summary := bad_rows.summary():
        logger.warning("%s", summary)

    train_base = concatenated([part for part in train_files if part is not None])
    per_record = 2 if unpaired and data_type == DataType.DIRECT_PREFERENCE else 1
    if isinstance(validation, NoneInput):
        return select_rows(train_base, train_ids, per_record), None
    if isinstance(validation, AutoSplitInput):
        from finetuning.data.preprocess import split_positions

        # split the records, not the rows, so both halves of an unpaired pair stay on one side
        train_positions, val_positions = split_positions(len(train_ids), validation)
        return (
            select_rows(train_base, train_ids[train_positions], per_record),
            select_rows(train_base, train_ids[val_positions], per_record),
        )
    assert isinstance(validation, ConcatenationInput)
    val_base = concatenated(val_files)
    return select_rows(train_base, train_ids, per_record), select_rows(
        val_base, np.arange(sum(part.records for part in val_files), dtype=np.int64), per_record
    )


def preference_format(data_type: DataType, *, unpaired: bool) -> RowFormat:
    """How a preference file's records become TRL rows in its Arrow entry (:mod:`finetuning.data.row_files`)."""
    return RowFormat(
        prefix="pref",
        meta_name="preference.json",
        version=PREFERENCE_VERSION,
        record_type=RECORD_TYPES[data_type],
        features=trl_features(data_type, unpaired=unpaired),
        convert=lambda records: to_trl_rows(records, data_type, unpaired=unpaired),
        settings={"data_type": str(data_type), "unpaired": unpaired},
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
