"""A data file's rows as a memory-mapped Arrow file, once per content and settings.

A :class:`RowFormat` says how a file's records become rows: the record type they are validated as, an optional check
of each validated record (a :class:`DataError` makes it a bad row), a converter from a batch of accepted records to
rows, the rows' columns (``Features``) and the settings that shape the rows. :func:`read_row_file` reads, validates
and converts a file a batch at a time into an Arrow stream file in an entry folder under ``root``, named by the file's
bytes, the format's version and its settings, and opens it memory-mapped; a later call with the same file and
settings (another process of the run, a later job sharing the cache folder) opens the entry instead of reading the
file. An entry is written in a staging folder renamed into place, so a reader never sees half of one; it remembers the
file's bad rows, so a reuse still counts them against the run's limit. A process holds each entry of the cache folder
it uses until it ends, so no eviction takes its rows meanwhile (:mod:`finetuning.data.preprocessing_cache`).

:func:`rows_root` gives the folder: the cache folder, or without one a temporary folder of this process, removed when
it exits. :func:`concatenated` and :func:`select_rows` join entries and pick rows by index (a mix, a split) without
copying them.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from finetuning.data.errors import DataError
from finetuning.data.loading import BadRows, iter_records, open_data_file
from finetuning.data.preprocessing_cache import record_use, use_entry

if TYPE_CHECKING:
    from datasets import Dataset, Features

logger = logging.getLogger(__name__)

BATCH_RECORDS = 1000  # records converted and written at a time
_READ_BLOCK = 8 << 20
_ROWS_FILE = "rows.arrow"
_BAD_ROWS_KEPT = 1000  # bad rows an entry remembers (the count goes on)


@dataclass(frozen=True)
class RowFormat:
    """How a data file's records become rows, and what names their entry.

    ``convert`` turns a batch of accepted records (in file order) into their rows, as many per record as the caller
    expects; ``check`` (optional) sees each validated record in file order, with the file (as configured) and its
    1-based line, and raises :class:`DataError` to make it a bad row. ``settings`` (JSON values) go into the entry's
    key with ``version``: give everything that shapes the rows or which records are bad, and bump ``version`` when
    the code that makes the rows changes.
    """

    prefix: str  # entries are folders "<prefix>-<key>"
    meta_name: str  # the entry's description, written last: marks it complete
    version: int
    record_type: type[BaseModel]
    features: Features
    convert: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[str, int, dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if {"version", "file"} & set(self.settings):
            raise ValueError("RowFormat.settings cannot use the names 'version' and 'file'")


@dataclass
class RowFile:
    """One data file's rows, memory-mapped; how many records gave them; the bad rows met reading it (the first
    ones kept, their count, the last)."""

    path: str
    dataset: Dataset
    records: int
    bad_kept: list[DataError]
    bad_count: int
    last_bad: DataError | None

    def count_bad_rows(self, bad_rows: BadRows) -> None:
        """Count this file's bad rows in ``bad_rows`` (raising as it does over its limit)."""
        bad_rows.absorb(self.bad_kept, self.bad_count, self.last_bad)


def read_row_file(path: str, fmt: RowFormat, root: Path, bad_rows: BadRows) -> RowFile:
    """``path``'s rows from its entry under ``root``, written there first unless an entry has them. Its bad rows are
    counted in ``bad_rows`` either way, in file order: over its limit the error names the row that went over it."""
    from datasets import Dataset

    key = _entry_key(path, fmt)
    entry = root / f"{fmt.prefix}-{key}"
    if root != _TEMPORARY_ROOT:
        use_entry(entry)  # before looking: from now on no eviction takes it
    meta = _load_meta(entry, fmt)
    if meta is not None:
        record_use(entry / fmt.meta_name)
        row_file = _row_file(path, entry, meta)
        row_file.count_bad_rows(bad_rows)
        return row_file
    staging = Path(tempfile.mkdtemp(prefix=f".{fmt.prefix}-{key[:16]}.tmp-", dir=root))
    try:
        file_bad = _FileBadRows(bad_rows)
        records = _write_rows(path, fmt, staging / _ROWS_FILE, file_bad)
        meta = {
            "version": fmt.version,
            "path": str(path),
            "records": records,
            "bad_count": file_bad.count,
            "bad_rows": [[error.line, error.message] for error in file_bad.kept],
            "last_bad": None if file_bad.last is None else [file_bad.last.line, file_bad.last.message],
        }
        (staging / fmt.meta_name).write_text(json.dumps(meta))
        _commit(staging, entry, fmt)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RowFile(
        str(path), Dataset.from_file(str(entry / _ROWS_FILE)), records, file_bad.kept, file_bad.count, file_bad.last
    )


def rows_root(cache_dir: Path | None) -> Path:
    """The folder entries go to: ``cache_dir`` (created), or without one this process's temporary folder."""
    root = _temporary_root() if cache_dir is None else Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root


def concatenated(parts: Sequence[RowFile]) -> Dataset:
    """The rows of ``parts`` one after the other (no copy)."""
    from datasets import concatenate_datasets

    return parts[0].dataset if len(parts) == 1 else concatenate_datasets([part.dataset for part in parts])


def select_rows(base: Dataset, record_ids: np.ndarray, per_record: int = 1) -> Dataset:
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


def _row_file(path: str, entry: Path, meta: dict[str, Any]) -> RowFile:
    from datasets import Dataset

    return RowFile(
        str(path),
        Dataset.from_file(str(entry / _ROWS_FILE)),
        int(meta["records"]),
        [DataError(path, line, message) for line, message in meta["bad_rows"]],
        int(meta["bad_count"]),
        None if meta["last_bad"] is None else DataError(path, *meta["last_bad"]),
    )


def _write_rows(path: str, fmt: RowFormat, out: Path, bad_rows: BadRows) -> int:
    """Validate ``path``'s records and write their rows to the Arrow stream ``out``, a batch at a time; the number
    of records accepted."""
    import pyarrow as pa

    schema = fmt.features.arrow_schema
    records = 0
    batch: list[dict[str, Any]] = []
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def flush() -> None:
            if batch:
                writer.write_batch(pa.RecordBatch.from_pylist(fmt.convert(batch), schema=schema))
                batch.clear()

        for line, record in iter_records(path, fmt.record_type, bad_rows):
            if fmt.check is not None:
                try:
                    fmt.check(path, line, record)
                except DataError as exc:
                    bad_rows.add(exc)  # in file order with the records that failed validation
                    continue
            batch.append(record)
            records += 1
            if len(batch) >= BATCH_RECORDS:
                flush()
        flush()
    return records


def _entry_key(path: str, fmt: RowFormat) -> str:
    """The name of ``path``'s entry: its bytes and everything that shapes its rows."""
    digest = hashlib.sha256()
    with open_data_file(path) as f:  # FileNotFoundError naming the path as configured
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    payload = {"version": fmt.version, "file": digest.hexdigest(), **fmt.settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _load_meta(entry: Path, fmt: RowFormat) -> dict[str, Any] | None:
    meta_file = entry / fmt.meta_name
    if not meta_file.is_file():
        return None
    try:
        meta: dict[str, Any] = json.loads(meta_file.read_text())
        if meta["version"] != fmt.version or not (entry / _ROWS_FILE).is_file():
            return None
        return meta
    except Exception as exc:  # a damaged entry is rebuilt, not fatal
        logger.warning("ignoring unreadable data entry %s: %s", entry, exc)
        return None


def _commit(staging: Path, entry: Path, fmt: RowFormat) -> None:
    """Rename the complete ``staging`` folder to ``entry`` (a reader never sees half an entry)."""
    if entry.exists() and _load_meta(entry, fmt) is None:
        shutil.rmtree(entry, ignore_errors=True)  # an incomplete or stale leftover (a killed run): replace it
    try:
        os.rename(staging, entry)
    except OSError:
        # another process put an equivalent entry in place meanwhile (it may be in use): use theirs
        if _load_meta(entry, fmt) is None:
            raise


_TEMPORARY_ROOT: Path | None = None


def _temporary_root() -> Path:
    """This process's folder for the rows without a ``cache_dir``, removed at exit (memory-mapped files stay
    readable until then; on Linux even after)."""
    global _TEMPORARY_ROOT
    if _TEMPORARY_ROOT is None or not _TEMPORARY_ROOT.is_dir():
        _TEMPORARY_ROOT = Path(tempfile.mkdtemp(prefix="finetuning-rows-"))
        atexit.register(_remove_temporary_root, _TEMPORARY_ROOT, os.getpid())
    return _TEMPORARY_ROOT


def _remove_temporary_root(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # not a forked child exiting through atexit: the folder is its parent's
        shutil.rmtree(folder, ignore_errors=True)
