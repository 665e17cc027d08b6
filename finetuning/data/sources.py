"""SFT data files -> tokenized Arrow shards, once per file content, in parallel, with flat memory.

Each file is read once up front (hashed, its lines counted, cut into byte ranges at line ends); every range is then
parsed, validated, rendered, tokenized and written to its own Arrow shard by one worker process, streaming: a worker
holds one batch of rows at a time. The shards of a file are kept under ``cache_dir/src-<key>``, where the key covers
the file's bytes, the tokenizer (vocabulary, template, special tokens) and the settings that shape the tokens, so a
later job on the same volume (or another process of the same run) reuses them without reading the file again beyond
the hash. Entries are written to a temporary folder and renamed into place: a reader never sees half an entry. A
process holds each entry it uses (found or written) until it ends, so no eviction takes its shards meanwhile
(:mod:`finetuning.data.preprocessing_cache`).

Bad rows (not JSON, not a valid record, not renderable by the template) name their file and line; they fail the run
unless ``data_conf.max_bad_rows`` allows skipping them (:class:`finetuning.data.loading.BadRows`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from finetuning.data.encoding import SFT_SCHEMA, SFTEncoder
from finetuning.data.errors import DataError
from finetuning.data.loading import (
    BadRows,
    is_json_array,
    iter_items,
    iter_jsonl_lines,
    open_data_file,
    parse_record,
    validate,
)
from finetuning.data.preprocessing_cache import record_use, use_entry
from finetuning.data.progress import CacheState, StageProgress
from finetuning.data.records import ChatConversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Bump whenever the shards written here change for the same inputs, so stale cache entries are not reused.
SOURCES_VERSION = 1

_META_FILE = "source.json"
_READ_BLOCK = 8 << 20
_BATCH_ROWS = 1000
_MIN_RANGE = 1 << 20
_MAX_RANGE = 64 << 20
# bad rows a cache entry remembers (the count goes on)
_BAD_ROWS_KEPT = 1000


@dataclass(frozen=True)
class FileScan:
    """A data file as read once: its digest, its line count and the byte ranges the workers take."""

    path: str
    digest: str
    size: int
    lines: int
    json_array: bool
    ranges: tuple[tuple[int, int, int], ...]  # (start byte, end byte, line number at start)


@dataclass
class TokenizedSource:
    """A file's tokenized rows: shard files in line order (or in-memory tables without a cache dir)."""

    path: str
    key: str
    rows: int
    shards: list[Path] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)
    bad_rows: list[DataError] = field(default_factory=list)  # the first ones
    bad_count: int = 0
    last_bad: DataError | None = None
    cached: bool = False
    alias_of: int | None = None  # the same bytes as an earlier path of the list: its result is shared


@dataclass(frozen=True)
class _Task:
    source: int
    path: str
    start: int
    end: int
    first_line: int
    json_array: bool
    out: str


@dataclass
class _TaskResult:
    rows: int
    bad: list[DataError]  # the first ones
    bad_count: int
    last_bad: DataError | None


@dataclass
class _WorkerState:
    tokenizer: Any
    max_seq_length: int
    truncate: bool
    bad_limit: int
    report: Callable[[int], None]
    encoder: SFTEncoder | None = None


def scan_file(path: str, num_proc: int) -> FileScan:
    """Hash ``path``, count its lines and cut it into ranges (at line ends) for ``num_proc`` workers."""
    json_array = is_json_array(path)  # also: DataError for an empty file, FileNotFoundError naming the path
    size = os.path.getsize(path)
    target = min(_MAX_RANGE, max(_MIN_RANGE, size // (max(1, num_proc) * 4)))
    digest = hashlib.sha256()
    cuts = [(0, 1)]  # (byte offset, line number there)
    offset = lines = 0
    next_cut = target
    last = b""
    with open_data_file(path) as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
            while not json_array and next_cut < offset + len(block):
                at = block.find(b"\n", max(next_cut - offset, 0))
                if at < 0:
                    next_cut = offset + len(block)  # the next line end is in a later block
                    break
                cut = offset + at + 1
                if cut < size:
                    cuts.append((cut, lines + block.count(b"\n", 0, at + 1) + 1))
                next_cut = cut + target
            lines += block.count(b"\n")
            offset += len(block)
            last = block[-1:]
    if last and last != b"\n":
        lines += 1
    ends = [start for start, _ in cuts[1:]] + [size]
    ranges = tuple((start, end, line) for (start, line), end in zip(cuts, ends, strict=True))
    return FileScan(path, digest.hexdigest(), size, lines, json_array, ranges)


def source_key(scan: FileScan, settings: dict[str, Any]) -> str:
    """The cache key of a file's shards: its bytes and everything that shapes their tokens."""
    payload = {"version": SOURCES_VERSION, "file": scan.digest, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def tokenize_sources(
    paths: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    settings: dict[str, Any],
    max_seq_length: int,
    truncate: bool,
    num_proc: int,
    cache_dir: Path | None,
    bad_rows: BadRows,
    progress: StageProgress,
) -> tuple[list[TokenizedSource], CacheState]:
    """Every file of ``paths`` (each distinct path once, in order) tokenized, from the cache where it has them.

    ``settings`` identifies the tokenizer and settings for the cache key. Without ``cache_dir`` the shards are
    built in a temporary folder and loaded into memory.
    """
    unique = list(dict.fromkeys(paths))
    scans = [scan_file(path, num_proc) for path in unique]
    owned_tmp = None
    if cache_dir is None:
        owned_tmp = Path(tempfile.mkdtemp(prefix="finetuning-sources-"))
        root = owned_tmp
    else:
        root = Path(cache_dir)
        root.mkdir(parents=True, exist_ok=True)
    try:
        sources = [TokenizedSource(scan.path, source_key(scan, settings), rows=0) for scan in scans]
        tasks: list[_Task] = []
        staging: dict[int, Path] = {}
        first_of_key: dict[str, int] = {}
        for index, (scan, source) in enumerate(zip(scans, sources, strict=True)):
            if source.key in first_of_key:  # the same bytes under another name: read once
                source.alias_of = first_of_key[source.key]
                continue
            first_of_key[source.key] = index
            if owned_tmp is None:
                use_entry(root / f"src-{source.key}")  # before looking: from now on no eviction takes it
                if _load_entry(root / f"src-{source.key}", source):
                    continue
            folder = Path(tempfile.mkdtemp(prefix=f".src-{source.key[:16]}.tmp-", dir=root))
            staging[index] = folder
            for number, (start, end, line) in enumerate(scan.ranges):
                out = str(folder / f"shard-{number:05d}.arrow")
                tasks.append(_Task(index, scan.path, start, end, line, scan.json_array, out))
        # what is left to read: its line count (an estimate of its rows; unknown for JSON arrays)
        to_read = [scan for index, scan in enumerate(scans) if index in staging]
        progress.rows_total = None if any(s.json_array for s in to_read) else sum(s.lines for s in to_read) or None
        try:
            results = _run_tasks(tasks, tokenizer, max_seq_length, truncate, bad_rows.limit, num_proc, progress)
            # bad rows count across files in file order, as a sequential read would meet them
            for index, source in enumerate(sources):
                if source.alias_of is not None:
                    continue
                if source.cached:
                    bad_rows.absorb(source.bad_rows, source.bad_count, source.last_bad)
                    continue
                # results stop early only after a task went over the bad-row limit: bad_rows.absorb raises for it
                for task, result in zip(tasks, results, strict=False):
                    if task.source == index:
                        source.rows += result.rows
                        source.shards.append(Path(task.out))
                        bad_rows.absorb(result.bad, result.bad_count, result.last_bad)
                        source.bad_rows.extend(result.bad[: _BAD_ROWS_KEPT - len(source.bad_rows)])
                        source.bad_count += result.bad_count
                        source.last_bad = result.last_bad or source.last_bad
                if source.rows == 0 and source.bad_count == 0:
                    raise DataError(source.path, None, "the file holds no records")
            for index, folder in staging.items():
                entry = root / f"src-{sources[index].key}"
                _commit(folder, entry, sources[index])
                if owned_tmp is not None:
                    sources[index].tables = [_read_in_memory(path) for path in sources[index].shards]
                    sources[index].shards = []
            for source in sources:
                if source.alias_of is not None:
                    original = sources[source.alias_of]
                    source.rows, source.shards, source.tables = original.rows, original.shards, original.tables
                    source.cached = original.cached
        finally:
            for folder in staging.values():
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if owned_tmp is not None:
            shutil.rmtree(owned_tmp, ignore_errors=True)
    hits = sum(source.cached for source in sources)
    cache: CacheState = "hit" if hits == len(sources) else "miss" if hits == 0 else "partial"
    return sources, cache


def _load_entry(entry: Path, source: TokenizedSource) -> bool:
    meta_file = entry / _META_FILE
    if not meta_file.is_file():
        return False
    try:
        meta = json.loads(meta_file.read_text())
        if meta["version"] != SOURCES_VERSION:
            return False
        shards = [entry / name for name in meta["shards"]]
        if not all(path.is_file() for path in shards):
            raise FileNotFoundError(f"missing shards in {entry}")
        source.rows = int(meta["rows"])
        source.shards = shards
        source.bad_count = int(meta["bad_count"])
        source.bad_rows = [DataError(source.path, line, message) for line, message in meta["bad_rows"]]
        if meta["last_bad"] is not None:
            source.last_bad = DataError(source.path, *meta["last_bad"])
        source.cached = True
        record_use(meta_file)
        return True
    except Exception as exc:  # a damaged entry is rebuilt, not fatal
        logger.warning("ignoring unreadable preprocessing cache entry %s: %s", entry, exc)
        return False


def _commit(folder: Path, entry: Path, source: TokenizedSource) -> None:
    """Write the meta file (last: it marks the entry complete) and rename the folder into place."""
    meta = {
        "version": SOURCES_VERSION,
        "path": source.path,
        "rows": source.rows,
        "shards": [path.name for path in source.shards],
        "bad_count": source.bad_count,
        "bad_rows": [[error.line, error.message] for error in source.bad_rows],
        "last_bad": None if source.last_bad is None else [source.last_bad.line, source.last_bad.message],
    }
    (folder / _META_FILE).write_text(json.dumps(meta))
    if entry.exists() and not (entry / _META_FILE).is_file():
        shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover (a killed run): replace it
    try:
        os.rename(folder, entry)
    except OSError:
        # another process put an equivalent entry in place meanwhile (its shards may be in use): use theirs
        if not _load_entry(entry, source):
            raise
        source.cached = False
        return
    source.shards = [entry / path.name for path in source.shards]


def _read_in_memory(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_stream(f).read_all()


# -- the work itself ------------------------------------------------------------------------------------------------

_STATE: _WorkerState | None = None


def _run_tasks(
    tasks: list[_Task],
    tokenizer: Any,
    max_seq_length: int,
    truncate: bool,
    bad_limit: int,
    num_proc: int,
    progress: StageProgress,
) -> list[_TaskResult]:
    """The tasks' results in task order: in this process, or in ``num_proc`` forked workers."""
    global _STATE
    if not tasks:
        return []
    if num_proc <= 1 or len(tasks) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        done = [0]

        def report(rows: int) -> None:
            done[0] += rows
            progress.update(done[0])

        state = _WorkerState(tokenizer, max_seq_length, truncate, bad_limit, report)
        results: list[_TaskResult] = []
        for task in tasks:
            result = _run_task(task, state)
            results.append(result)
            if result.bad_count > bad_limit:
                break  # the caller raises for it
        return results

    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)

    def count(rows: int) -> None:
        with counter.get_lock():
            counter.value += rows

    # forked: the workers inherit the tokenizer and the counter; tasks and results are small
    _STATE = _WorkerState(tokenizer, max_seq_length, truncate, bad_limit, count)
    executor = ProcessPoolExecutor(max_workers=min(num_proc, len(tasks)), mp_context=context)
    finished = False
    try:
        futures = [executor.submit(_run_in_worker, task) for task in tasks]
        results = []
        for task, future in zip(tasks, futures, strict=True):
            while True:
                try:
                    result = future.result(timeout=1.0)
                    break
                except TimeoutError:
                    progress.update(int(counter.value))
                except BrokenProcessPool:
                    raise RuntimeError(
                        f"a preprocessing worker process died (out of memory?) while tokenizing {task.path} from "
                        f"line {task.first_line} on; try fewer --num-preprocess-workers"
                    ) from None
            results.append(result)
            progress.update(int(counter.value))
            if result.bad_count > bad_limit:
                break  # the caller raises for it
        finished = len(results) == len(tasks)
        return results
    finally:
        _STATE = None
        if not finished:  # stopping early (too many bad rows, an error): the workers' ranges are not wanted
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def _run_in_worker(task: _Task) -> _TaskResult:
    assert _STATE is not None
    return _run_task(task, _STATE)


def _run_task(task: _Task, state: _WorkerState) -> _TaskResult:
    """Parse, validate, render and tokenize one byte range of a file into one Arrow shard."""
    if state.encoder is None:
        state.encoder = SFTEncoder(state.tokenizer, max_seq_length=state.max_seq_length, truncate=state.truncate)
    encoder = state.encoder
    bad: list[DataError] = []
    last_bad: DataError | None = None
    bad_count = rows = 0
    texts: list[str] = []
    with pa.OSFile(task.out, "wb") as sink, pa.ipc.new_stream(sink, SFT_SCHEMA) as writer:

        def flush() -> None:
            nonlocal rows
            if texts:
                writer.write_batch(encoder.batch(texts))
                state.report(len(texts))
                rows += len(texts)
                texts.clear()

        for line, record in _task_records(task):
            if not isinstance(record, DataError):
                try:
                    texts.append(encoder.render(record["messages"]))
                except Exception as exc:  # the template rejects this conversation (raise_exception, bad roles)
                    record = DataError(task.path, line, f"the chat template cannot render this conversation: {exc}")
            if isinstance(record, DataError):
                bad_count += 1
                last_bad = record
                if len(bad) < _BAD_ROWS_KEPT:
                    bad.append(record)
                if bad_count > state.bad_limit:
                    break
                continue
            if len(texts) >= _BATCH_ROWS:
                flush()
        flush()
    return _TaskResult(rows, bad, bad_count, last_bad)


def _task_records(task: _Task) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """The range's records, validated as ChatConversation, or the DataError of a bad one."""
    if task.json_array:
        for line, item in iter_items(task.path):
            try:
                if isinstance(item, DataError):
                    raise item
                yield line, validate(task.path, line, item, ChatConversation)
            except DataError as exc:
                yield line, exc
        return
    with open_data_file(task.path) as f:
        f.seek(task.start)
        for line, text in iter_jsonl_lines(task.path, f, task.first_line, task.end):
            try:
                yield line, parse_record(task.path, line, text, ChatConversation)
            except DataError as exc:
                yield line, exc
