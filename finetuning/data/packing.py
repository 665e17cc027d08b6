"""Packing: tokenized SFT examples -> rows of up to ``seq_length`` tokens, several examples per row.

Labels are computed per example *before* packing (completions-only masking needs the example on its own), and each
example's first label is ``-100``: a causal LM predicts token *t* from the tokens before it, and in a packed row the
token before an example's first one belongs to another example. Unpacked, that first label is never a target either
(the loss shifts labels by one), so packed and unpacked training see exactly the same (context, target) pairs.

The rows keep ``seq_lengths`` (the lengths of the examples in them), from which the collator builds position ids that
restart at 0 for each example; transformers turns such position ids into a block-diagonal causal mask, so attention
never crosses examples.

Best-fit decreasing runs over the whole dataset's lengths at once, held in numpy (:func:`bfd_bins`: TRL's
``pack_dataset(strategy="bfd")`` packs each batch of 1000 examples on its own, with the same rule); the packed rows
are then written to Arrow a block of rows at a time (under the cache folder, keyed by the examples, the labels and
the row length, so a later run packs nothing; held while a process uses it, see
:mod:`finetuning.data.preprocessing_cache`), reading the examples through short-lived memory maps, so that memory
stays flat whatever the size of the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value
from datasets.table import ConcatenationTable, InMemoryTable, MemoryMappedTable

from finetuning.collators import IGNORE_INDEX, CausalLMCollator
from finetuning.data.bfd import bfd_bins
from finetuning.data.encoding import example_lengths
from finetuning.data.preprocessing_cache import record_use, use_entry
from finetuning.data.progress import StageProgress
from finetuning.models import causal_lm_of

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

# Bump when the labels or rows built here change for the same input, so no cache is reused.
# 2: completions-only markers also match the forms their edge tokens merge into (collators.MarkerPattern).
# 3: best-fit decreasing over the whole dataset (not per 1000 examples); int32 columns
PACKING_VERSION = 3

# packed rows written per Arrow record batch (and read per memory map)
_ROWS_PER_BLOCK = 2048
_META_FILE = "packing.json"
_DATA_FILE = "packed.arrow"
_PACKED_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "seq_lengths": List(Value("int32")),
    }
)

Labeler = Callable[[list[int], int], list[int]]

_LABELED_FEATURES = Features({"input_ids": List(Value("int64")), "labels": List(Value("int64"))})


@dataclass(frozen=True)
class PackingStats:
    examples: int
    rows: int
    tokens: int
    seq_length: int

    @property
    def fill(self) -> float:
        """Share of the rows' capacity holding example tokens."""
        return self.tokens / (self.rows * self.seq_length) if self.rows else 0.0

    def describe(self) -> dict[str, float | int]:
        return {
            "examples": self.examples,
            "rows": self.rows,
            "examples_per_row": round(self.examples / self.rows, 2) if self.rows else 0.0,
            "fill": round(self.fill, 4),
            "seq_length": self.seq_length,
        }


def label_examples(dataset: Dataset, labeler: Labeler, labeler_key: str, *, num_proc: int = 1) -> Dataset:
    """``input_ids`` and ``labels`` per example, with the first label of every example ``-100``.

    ``labeler_key`` names what ``labeler`` does (e.g. the completion markers' token ids): with the dataset's own
    fingerprint it keys datasets' cache, so a cached preprocessing result is labelled only once.
    """
    fingerprint = hashlib.sha256(f"{dataset._fingerprint}|{labeler_key}|{PACKING_VERSION}".encode()).hexdigest()
    return dataset.map(
        _label_batch,
        batched=True,
        with_indices=True,
        fn_kwargs={"labeler": labeler},
        remove_columns=[name for name in dataset.column_names if name != "input_ids"],
        features=_LABELED_FEATURES,
        num_proc=num_proc if num_proc > 1 else None,
        new_fingerprint=f"{fingerprint[:32]}-labels",
        desc="Labelling examples",
    )


def _label_batch(batch: dict[str, list[list[int]]], indices: list[int], labeler: Labeler) -> dict[str, list[list[int]]]:
    labels = []
    for ids, index in zip(batch["input_ids"], indices, strict=True):
        row = list(labeler(list(ids), index))
        if row:
            row[0] = IGNORE_INDEX
        labels.append(row)
    return {"input_ids": batch["input_ids"], "labels": labels}


def pack_examples(
    labeled: Dataset, seq_length: int, *, num_proc: int = 1, cache_dir: Path | None = None
) -> tuple[Dataset, PackingStats]:
    """Best-fit-decreasing packing (:func:`bfd_bins`) of the list columns of ``labeled`` (``input_ids``,
    ``labels``) into rows of at most ``seq_length`` tokens, with a ``seq_lengths`` column. Longer examples are cut
    to ``seq_length`` and empty ones left out, as TRL's ``pack_dataset`` does. ``num_proc`` is not used (the
    packing is one pass over the lengths); kept for callers."""
    columns = list(labeled.column_names)

    def example_columns(table: pa.Table, positions: np.ndarray) -> dict[str, pa.Array]:
        return {name: _column(table, name) for name in columns}

    return _pack(labeled, seq_length, example_columns, columns, cache_dir, key=None)


def pack_sft(
    dataset: Dataset,
    labeler: Labeler,
    labeler_key: str,
    seq_length: int,
    *,
    cache_dir: Path | None = None,
    events: EventWriter | None = None,
) -> tuple[Dataset, PackingStats]:
    """Label (``labeler``, each example's first label ``-100``) and pack (:func:`bfd_bins`) SFT examples in one pass
    into ``input_ids``, ``labels`` and ``seq_lengths`` rows, written to Arrow under ``cache_dir`` (reused while the
    examples, ``labeler_key`` and ``seq_length`` stay the same). The labels of a plain causal LM collator (every
    token a target) are computed on whole arrays, other labelers example by example."""
    plain = getattr(labeler, "__func__", None) is CausalLMCollator.row_labels

    def example_columns(table: pa.Table, positions: np.ndarray) -> dict[str, pa.Array]:
        ids = _column(table, "input_ids")
        if plain:
            values = np.array(ids.values.to_numpy(zero_copy_only=False), dtype=np.int32)  # a copy, then edited
            starts = ids.offsets.to_numpy()[:-1]
            values[starts[ids.value_lengths().to_numpy() > 0]] = IGNORE_INDEX
        else:
            rows = ids.to_pylist()
            labels = [_first_ignored(labeler(row, int(at))) for row, at in zip(rows, positions.tolist(), strict=True)]
            values = np.fromiter((label for row in labels for label in row), dtype=np.int32, count=len(ids.values))
        return {"input_ids": ids, "labels": pa.ListArray.from_arrays(ids.offsets, pa.array(values))}

    key = hashlib.sha256(f"{dataset._fingerprint}|{labeler_key}|{seq_length}|{PACKING_VERSION}".encode()).hexdigest()
    progress = StageProgress("packing", events, rows_total=len(dataset))
    return _pack(dataset, seq_length, example_columns, ["input_ids", "labels"], cache_dir, key=key, progress=progress)


def _first_ignored(labels: list[int]) -> list[int]:
    row = list(labels)
    if row:
        row[0] = IGNORE_INDEX
    return row


def _column(table: pa.Table, name: str) -> pa.ListArray:
    column = table.column(name).combine_chunks()
    return column


ExampleColumns = Callable[[pa.Table, np.ndarray], dict[str, pa.Array]]


def _pack(
    dataset: Dataset,
    seq_length: int,
    example_columns: ExampleColumns,
    columns: list[str],
    cache_dir: Path | None,
    *,
    key: str | None,
    progress: StageProgress | None = None,
) -> tuple[Dataset, PackingStats]:
    progress = progress or StageProgress("packing", rows_total=len(dataset))
    entry = None if cache_dir is None or key is None else Path(cache_dir) / f"packed-{key[:40]}"
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        use_entry(entry)  # before looking: from now on no eviction takes it
    if entry is not None and (cached := _load_packed(entry)) is not None:
        packed, stats = cached
        progress.done(stats.examples, cache="hit")
        return packed, stats

    lengths = example_lengths(dataset, columns[0])
    usable = np.flatnonzero(lengths > 0)  # empty examples are left out, as TRL does
    clipped = np.minimum(lengths[usable], seq_length)
    order, row_sizes = bfd_bins(clipped, seq_length)
    positions = usable[order]
    schema = _schema(columns)
    tokens = int(clipped.sum())
    stats = PackingStats(examples=len(positions), rows=len(row_sizes), tokens=tokens, seq_length=seq_length)

    if entry is None:
        batches = list(_packed_batches(dataset, positions, row_sizes, seq_length, example_columns, schema, progress))
        packed = Dataset(InMemoryTable(pa.Table.from_batches(batches, schema=schema)))
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
        try:
            with pa.OSFile(str(tmp / _DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in _packed_batches(
                    dataset, positions, row_sizes, seq_length, example_columns, schema, progress
                ):
                    writer.write_batch(batch)
            (tmp / _META_FILE).write_text(json.dumps({"version": PACKING_VERSION, "stats": stats.__dict__}))
            if entry.exists() and not (entry / _META_FILE).is_file():
                shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover (a killed run): replace it
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / _META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        packed = Dataset.from_file(str(entry / _DATA_FILE))
    progress.done(stats.examples, cache=None if entry is None else "miss")
    logger.info(
        "packed %d examples into %d rows of up to %d tokens (%.1f%% full)",
        stats.examples,
        stats.rows,
        seq_length,
        100 * stats.fill,
    )
    return packed, stats


def _load_packed(entry: Path) -> tuple[Dataset, PackingStats] | None:
    meta_file = entry / _META_FILE
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if meta["version"] != PACKING_VERSION:
            return None
        packed = Dataset.from_file(str(entry / _DATA_FILE)), PackingStats(**meta["stats"])
        record_use(meta_file)
        return packed
    except Exception as exc:  # a damaged entry is rebuilt, not fatal
        logger.warning("ignoring unreadable packing cache entry %s: %s", entry, exc)
        return None


def _schema(columns: list[str]) -> pa.Schema:
    if columns == ["input_ids", "labels"]:
        return _PACKED_FEATURES.arrow_schema
    return pa.schema(
        [*(pa.field(name, pa.list_(pa.int32())) for name in columns), ("seq_lengths", pa.list_(pa.int32()))]
    )


def _packed_batches(
    dataset: Dataset,
    positions: np.ndarray,
    row_sizes: np.ndarray,
    seq_length: int,
    example_columns: ExampleColumns,
    schema: pa.Schema,
    progress: StageProgress,
) -> Iterator[pa.RecordBatch]:
    """The packed rows, ``_ROWS_PER_BLOCK`` at a time: the block's examples taken in row order and laid end to end."""
    row_ends = np.cumsum(row_sizes)
    done = 0
    with _Rows(dataset) as rows:
        for first in range(0, len(row_sizes), _ROWS_PER_BLOCK):
            sizes = row_sizes[first : first + _ROWS_PER_BLOCK]
            start = int(row_ends[first - 1]) if first else 0
            block = positions[start : start + int(sizes.sum())]
            table = rows.take(block)
            values = example_columns(table, block)
            arrays = []
            example_lengths = None
            for name in schema.names[:-1]:
                column = values[name]
                if example_lengths is None:
                    example_lengths = np.minimum(column.value_lengths().to_numpy(), seq_length).astype(np.int32)
                column = (
                    pc.list_slice(column, 0, seq_length)
                    if column.value_lengths().to_numpy().max() > seq_length
                    else column
                )
                flat = pc.list_flatten(column).cast(pa.int32())
                offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
                np.cumsum(np.add.reduceat(example_lengths, _starts(sizes)), out=offsets[1:])
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets), flat))
            assert example_lengths is not None
            row_offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
            np.cumsum(sizes, out=row_offsets[1:])
            arrays.append(pa.ListArray.from_arrays(pa.array(row_offsets), pa.array(example_lengths)))
            done += len(block)
            progress.update(done)
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _starts(sizes: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts


class _Rows:
    """Rows of a dataset by position, taken through memory maps that are dropped after each take: the pages read
    do not stay in the process's resident memory (the page cache keeps them)."""

    def __init__(self, dataset: Dataset) -> None:
        indices = dataset._indices
        self.indices = None if indices is None else indices.column(0).to_numpy().astype(np.int64)
        self.files = _file_blocks(dataset.data)
        self.table = None if self.files is not None else dataset.data.table
        if self.files is not None:
            self.starts = np.cumsum([0] + [rows for _, rows in self.files], dtype=np.int64)

    def __enter__(self) -> _Rows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.table = None

    def take(self, positions: np.ndarray) -> pa.Table:
        rows = positions if self.indices is None else self.indices[positions]
        if self.files is None:
            assert self.table is not None
            return self.table.take(pa.array(rows))
        # record batch by record batch, in row order: Table.take on a many-chunk list column would first copy
        # the whole column into one chunk
        by_row = np.argsort(rows, kind="stable")
        sorted_rows = rows[by_row]
        parts: list[pa.RecordBatch] = []
        bounds = np.searchsorted(sorted_rows, self.starts)
        for index, (path, _) in enumerate(self.files):
            wanted = sorted_rows[bounds[index] : bounds[index + 1]] - self.starts[index]
            if not len(wanted):
                continue
            with pa.memory_map(path) as source:
                offset = 0
                for batch in pa.ipc.open_stream(source):
                    first, last = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                    if last > first:
                        parts.append(batch.take(pa.array(wanted[first:last] - offset)))
                    offset += batch.num_rows
                    if last == len(wanted):
                        break
        combined = pa.Table.from_batches(parts).combine_chunks()
        back = np.empty(len(rows), dtype=np.int64)
        back[by_row] = np.arange(len(rows))
        return combined.take(pa.array(back))


def _file_blocks(data: Any) -> list[tuple[str, int]] | None:
    """(Arrow file, rows) of each block of a dataset's table read from files untouched, else None."""
    if isinstance(data, MemoryMappedTable):
        # replays: what was done to the table since it was read; new schema metadata leaves the rows as in the file
        untouched = all(replay[0] == "replace_schema_metadata" for replay in data.replays)
        return [(data.path, data.num_rows)] if untouched else None
    if isinstance(data, ConcatenationTable):
        files: list[tuple[str, int]] = []
        for row in data.blocks:
            if len(row) != 1:
                return None
            block = _file_blocks(row[0])
            if block is None:
                return None
            files.extend(block)
        return files
    return None


# Attention implementations that isolate packed examples: transformers builds their mask (sdpa, eager, flex) or
# their variable-length calls (flash) from position ids that restart per example.
_PACKING_ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3")


def packing_problem(model: object) -> str | None:
    """Why packed rows would let ``model``'s examples attend to each other, or None when packing is safe."""
    causal_lm = causal_lm_of(model)
    module = type(causal_lm).__module__
    if not module.startswith("transformers.models."):
        return f"{type(causal_lm).__name__} is not a transformers model ({module}): its masking is unknown"
    attention = str(getattr(getattr(causal_lm, "config", None), "_attn_implementation", None))
    if attention not in _PACKING_ATTENTION and "flash" not in attention:
        return f"attention implementation {attention!r} is not known to isolate packed examples"
    return None


def flattens_batches(model: object) -> bool:
    """Whether packed batches go in one row: flash attention finds examples by position ids only in one-row batches."""
    causal_lm = causal_lm_of(model)
    return "flash" in str(getattr(getattr(causal_lm, "config", None), "_attn_implementation", ""))
