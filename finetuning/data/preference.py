"""Preference data for TRL's trainers: our records become conversational rows that TRL templates and tokenizes.

Paired (DirectPreference) rows are ``{prompt, chosen, rejected}``, each a list of ``{role, content}`` messages;
unpaired (KTO) rows are ``{prompt, completion, label}``. KTO can also train on paired data: each pair gives a
desirable and an undesirable row.

:func:`prepare_preference_datasets` works on Arrow from the file onwards, so memory does not grow with the data: each
file is read, validated and converted to TRL rows a batch at a time into an Arrow file, opened memory-mapped, and the
mix and the validation split are index arrays over records (:func:`finetuning.data.mixing.mix_indices`,
:func:`finetuning.data.preprocess.split_positions`): the same rows, order, mix and split as converting the records of
:func:`finetuning.data.mixing.build_training_records` with :func:`to_trl_rows`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput, WeightedMixInput
from finetuning.data.errors import DataError
from finetuning.data.loading import RECORD_TYPES, BadRows, iter_records, open_data_file
from finetuning.data.mixing import mix_indices

if TYPE_CHECKING:
    from datasets import Dataset, Features

logger = logging.getLogger(__name__)

# Bump whenever the rows written here change for the same file, so stale entries under a cache_dir are not reused.
PREFERENCE_VERSION = 1

_BATCH_RECORDS = 1000  # records converted and written at a time
_READ_BLOCK = 8 << 20
_ROWS_FILE = "rows.arrow"
_META_FILE = "preference.json"  # written last: marks an entry complete
_BAD_ROWS_KEPT = 1000  # bad rows an entry remembers (the count goes on)


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
    root = _temporary_root() if cache_dir is None else Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    bad_rows = BadRows(data_conf.max_bad_rows)  # across the training and validation files
    files: dict[str, _FileRows] = {}

    def read(path: str) -> _FileRows:
        if path not in files:  # a file named twice is read once
            files[path] = _file_rows(path, data_type, unpaired, root, bad_rows)
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

    train_base = _concatenated([part for part in train_files if part is not None])
    per_record = 2 if unpaired and data_type == DataType.DIRECT_PREFERENCE else 1
    if isinstance(validation, NoneInput):
        return _rows(train_base, train_ids, per_record), None
    if isinstance(validation, AutoSplitInput):
        from finetuning.data.preprocess import split_positions

        # split the records, not the rows, so both halves of an unpaired pair stay on one side
        train_positions, val_positions = split_positions(len(train_ids), validation)
        return (
            _rows(train_base, train_ids[train_positions], per_record),
            _rows(train_base, train_ids[val_positions], per_record),
        )
    assert isinstance(validation, ConcatenationInput)
    val_base = _concatenated(val_files)
    return _rows(train_base, train_ids, per_record), _rows(
        val_base, np.arange(sum(part.records for part in val_files), dtype=np.int64), per_record
    )


@dataclass
class _FileRows:
    """One data file's TRL rows, memory-mapped, and how many records gave them."""

    dataset: Dataset
    records: int


def _concatenated(parts: list[_FileRows]) -> Dataset:
    from datasets import concatenate_datasets

    return parts[0].dataset if len(parts) == 1 else concatenate_datasets([part.dataset for part in parts])


def _rows(base: Dataset, record_ids: np.ndarray, per_record: int) -> Dataset:
    """The rows of the records ``record_ids`` of ``base`` (``per_record`` consecutive rows each), in that order."""
    ids = record_ids if per_record == 1 else (record_ids[:, None] * per_record + np.arange(per_record)).reshape(-1)
    if len(ids) == len(base) and np.array_equal(ids, np.arange(len(base))):
        return base
    # keep_in_memory: the index mapping is 8 bytes a row; without it datasets writes an indices file beside the rows
    return base.select(ids, keep_in_memory=True)


class _FileBadRows(BadRows):
    """One file's bad rows, each also counted by the run's ``shared`` BadRows (which raises over its limit)."""

    def __init__(self, shared: BadRows) -> None:
        super().__init__(shared.limit)
        self.shared = shared
        self.last: DataError | None = None

    def add(self, error: DataError) -> None:
        self.count += 1
        self.last = error
        if len(self.kept) < _BAD_ROWS_KEPT:
            self.kept.append(error)
        self.shared.add(error)


def _file_rows(path: str, data_type: DataType, unpaired: bool, root: Path, bad_rows: BadRows) -> _FileRows:
    """``path``'s rows from its entry under ``root``, written there first unless an entry has them."""
    from datasets import Dataset

    features = trl_features(data_type, unpaired=unpaired)
    key = _entry_key(path, data_type, unpaired)
    entry = root / f"pref-{key}"
    meta = _load_meta(entry)
    if meta is not None:
        bad_rows.absorb(
            [DataError(path, line, message) for line, message in meta["bad_rows"]],
            int(meta["bad_count"]),
            None if meta["last_bad"] is None else DataError(path, *meta["last_bad"]),
        )
    else:
        staging = Path(tempfile.mkdtemp(prefix=f".pref-{key[:16]}.tmp-", dir=root))
        try:
            file_bad = _FileBadRows(bad_rows)
            records = _write_rows(path, data_type, unpaired, features, staging / _ROWS_FILE, file_bad)
            meta = {
                "version": PREFERENCE_VERSION,
                "path": str(path),
                "records": records,
                "bad_count": file_bad.count,
                "bad_rows": [[error.line, error.message] for error in file_bad.kept],
                "last_bad": None if file_bad.last is None else [file_bad.last.line, file_bad.last.message],
            }
            (staging / _META_FILE).write_text(json.dumps(meta))
            _commit(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _FileRows(Dataset.from_file(str(entry / _ROWS_FILE)), int(meta["records"]))


def _write_rows(
    path: str, data_type: DataType, unpaired: bool, features: Features, out: Path, bad_rows: BadRows
) -> int:
    """Validate ``path``'s records and write their TRL rows to the Arrow stream ``out``, a batch at a time; the
    number of records."""
    import pyarrow as pa

    schema = features.arrow_schema
    records = 0
    batch: list[dict[str, Any]] = []
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def flush() -> None:
            if batch:
                rows = to_trl_rows(batch, data_type, unpaired=unpaired)
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
                batch.clear()

        for _, record in iter_records(path, RECORD_TYPES[data_type], bad_rows):
            batch.append(record)
            records += 1
            if len(batch) >= _BATCH_RECORDS:
                flush()
        flush()
    return records


def _entry_key(path: str, data_type: DataType, unpaired: bool) -> str:
    """The name of ``path``'s entry: its bytes and everything that shapes its rows."""
    digest = hashlib.sha256()
    with open_data_file(path) as f:  # FileNotFoundError naming the path as configured
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    payload = {
        "version": PREFERENCE_VERSION,
        "file": digest.hexdigest(),
        "data_type": str(data_type),
        "unpaired": unpaired,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _load_meta(entry: Path) -> dict[str, Any] | None:
    meta_file = entry / _META_FILE
    if not meta_file.is_file():
        return None
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text())
        if meta["version"] != PREFERENCE_VERSION or not (entry / _ROWS_FILE).is_file():
            return None
        return meta
    except Exception as exc:  # a damaged entry is rebuilt, not fatal
        logger.warning("ignoring unreadable preference data entry %s: %s", entry, exc)
        return None


def _commit(staging: Path, entry: Path) -> None:
    """Rename the complete ``staging`` folder to ``entry`` (a reader never sees half an entry)."""
    if entry.exists() and _load_meta(entry) is None:
        shutil.rmtree(entry, ignore_errors=True)  # an incomplete or stale leftover (a killed run): replace it
    try:
        os.rename(staging, entry)
    except OSError:
        # another process put an equivalent entry in place meanwhile (it may be in use): use theirs
        if _load_meta(entry) is None:
            raise


_TEMPORARY_ROOT: Path | None = None


def _temporary_root() -> Path:
    """This process's folder for the rows without a ``cache_dir``, removed at exit (memory-mapped files stay
    readable until then; on Linux even after)."""
    global _TEMPORARY_ROOT
    if _TEMPORARY_ROOT is None or not _TEMPORARY_ROOT.is_dir():
        _TEMPORARY_ROOT = Path(tempfile.mkdtemp(prefix="finetuning-preference-"))
        atexit.register(_remove_temporary_root, _TEMPORARY_ROOT, os.getpid())
    return _TEMPORARY_ROOT


def _remove_temporary_root(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # not a forked child exiting through atexit: the folder is its parent's
        shutil.rmtree(folder, ignore_errors=True)


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
