"""SFT preprocessing: conversations → token ids, with an on-disk cache keyed by everything that shapes the output.

Steps (the original engine's order): render each conversation with the tokenizer's chat template, tokenize
(truncating with ``truncate``), drop over-long examples with ``filter``, split off validation data, and sort
validation data longest first (so an out-of-memory batch shows up on the first evaluation step, not hours in).

:func:`prepare_sft_datasets` (the engine's path) works on Arrow from the file onwards: every data file is tokenized
once into memory-mapped shards (:mod:`finetuning.data.sources`, cached by content), and the mix, the filter, the
split and the ordering are index arrays over them (:func:`finetuning.data.mixing.mix_indices`), so memory does not
grow with the data. :func:`preprocess_sft` tokenizes a list of records (small inputs, tests) by the same rules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import datasets
import numpy as np
from datasets import Dataset

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput, WeightedMixInput
from finetuning.data.encoding import SFT_FEATURES, SFTEncoder, example_lengths
from finetuning.data.loading import BadRows
from finetuning.data.mixing import mix_indices
from finetuning.data.progress import StageProgress
from finetuning.data.sources import TokenizedSource, tokenize_sources

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from finetuning.config.training import SFTArgs
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

# Bump whenever the output of preprocess_sft changes for the same inputs, so stale cache entries are not reused.
# 2: int32 ids, int8 mask, int32 length (SFT_FEATURES)
PREPROCESS_VERSION = 2

LengthHandling = Literal["filter", "truncate"]

__all__ = ["SFT_FEATURES"]

_META_FILE = "preprocess.json"
_DATASET_DIR = "dataset"


@dataclass(frozen=True)
class Processed:
    """The tokenized dataset, whether it came from the cache, and how many examples ``filter`` dropped."""

    dataset: Dataset
    cache_hit: bool
    dropped: int
    fingerprint: str


def preprocess_sft(
    records: Sequence[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_seq_length: int,
    length_handling: LengthHandling,
    num_proc: int = 1,
    cache_dir: Path | None = None,
) -> Processed:
    """Tokenize ChatConversation records into ``input_ids``, ``attention_mask`` and ``length`` columns.

    With ``cache_dir``, the result is stored under ``cache_dir/<fingerprint>`` and reused by any later call with
    the same conversations, tokenizer, settings and PREPROCESS_VERSION, without tokenizing again.
    """
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
    if length_handling not in ("filter", "truncate"):
        raise ValueError(f"length_handling must be 'filter' or 'truncate', got {length_handling!r}")
    if not records:
        raise ValueError("there are no records to preprocess")

    # Serialised once: the same strings feed the fingerprint and the dataset column.
    conversations = [_conversation_json(record) for record in records]
    fingerprint = sft_fingerprint(conversations, tokenizer, max_seq_length, length_handling)

    entry = None if cache_dir is None else Path(cache_dir) / fingerprint
    if entry is not None:
        cached = _load_cached(entry)
        if cached is not None:
            dataset, dropped = cached
            logger.info("SFT preprocessing cache hit: %s (%d examples)", entry, len(dataset))
            return Processed(dataset, cache_hit=True, dropped=dropped, fingerprint=fingerprint)
        logger.info("SFT preprocessing cache miss: tokenizing %d conversations into %s", len(records), entry)

    dataset = Dataset.from_list([{"conversation": text} for text in conversations])
    dataset = dataset.map(
        _tokenize_batch,
        batched=True,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_seq_length": max_seq_length,
            "truncate": length_handling == "truncate",
        },
        remove_columns=["conversation"],
        features=SFT_FEATURES,
        # datasets 5 runs even num_proc=1 in a worker pool; None keeps the work in this process.
        num_proc=num_proc if num_proc > 1 else None,
        # Our fingerprint already covers the inputs; passing it skips datasets' dill-hashing of the
        # tokenizer (slow, and it warns when a tokenizer does not hash deterministically). Short, because
        # with num_proc datasets appends "_00000_of_00002" and rejects fingerprints over 64 characters.
        new_fingerprint=f"{fingerprint[:32]}-sft",
        desc="Tokenizing conversations",
    )

    dropped = 0
    if length_handling == "filter":
        lengths = example_lengths(dataset)
        keep = np.flatnonzero(lengths <= max_seq_length)
        dropped = len(dataset) - len(keep)
        if dropped:
            logger.warning(
                "dropped %d of %d examples longer than max_seq_length=%d (length_handling=filter)",
                dropped,
                len(dataset),
                max_seq_length,
            )
            dataset = dataset.select(keep, keep_in_memory=True)

    if entry is not None:
        dataset = _store(entry, dataset, dropped)
    return Processed(dataset, cache_hit=False, dropped=dropped, fingerprint=fingerprint)


def _conversation_json(record: dict[str, Any]) -> str:
    try:
        messages = record["messages"]
    except KeyError:
        raise ValueError("SFT preprocessing needs ChatConversation records (with 'messages')") from None
    # None-valued optional keys are dropped so templates testing "'tags' in message" see what the file held.
    cleaned = [{key: value for key, value in message.items() if value is not None} for message in messages]
    return json.dumps(cleaned, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _tokenize_batch(
    batch: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase, max_seq_length: int, truncate: bool
) -> dict[str, list[Any]]:
    # One BOS at the start, the same rule DPO's tokenization follows: the template's own where it renders one,
    # otherwise the tokenizer's; plus the training-mode EOS (finetuning.tokenizer.SpecialTokenFraming).
    encoder = SFTEncoder(tokenizer, max_seq_length=max_seq_length, truncate=truncate, fast_backend=False)
    input_ids = encoder.encode([encoder.render(json.loads(c)) for c in batch["conversation"]])
    # no padding here: every token is attended to
    attention_mask = [[1] * len(ids) for ids in input_ids]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "length": [len(ids) for ids in input_ids]}


def sft_fingerprint(
    conversations: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int, length_handling: str
) -> str:
    """A hex digest of everything that determines preprocess_sft's output."""
    digest = hashlib.sha256()
    settings = {
        "version": PREPROCESS_VERSION,
        "max_seq_length": max_seq_length,
        "length_handling": length_handling,
        "tokenizer": tokenizer_identity(tokenizer),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for conversation in conversations:
        digest.update(b"\n")
        digest.update(conversation.encode())
    return digest.hexdigest()


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """What makes two tokenizers produce the same tokens from the same conversations."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # The full tokenizer.json: vocab, merges, normalizer, pre/post-processor (which adds bos/eos), added tokens.
        model = backend.to_str()
    else:  # slow tokenizers: the vocabulary is the best available summary
        model = json.dumps(sorted(tokenizer.get_vocab().items()))
    return {
        "class": type(tokenizer).__name__,
        "model": hashlib.sha256(model.encode()).hexdigest(),
        "chat_template": tokenizer.chat_template,
        "special_tokens": {
            name: str(getattr(tokenizer, name, None))
            for name in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
        },
        "add_bos_token": getattr(tokenizer, "add_bos_token", None),
        "add_eos_token": getattr(tokenizer, "add_eos_token", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
    }


def _load_cached(entry: Path) -> tuple[Dataset, int] | None:
    meta_file = entry / _META_FILE
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        dataset = datasets.load_from_disk(str(entry / _DATASET_DIR))
        if not isinstance(dataset, Dataset):
            raise TypeError(f"expected a Dataset, found {type(dataset).__name__}")
        return dataset, int(meta["dropped"])
    except Exception as exc:  # a damaged or incompatible entry is rebuilt, not fatal
        logger.warning("ignoring unreadable preprocessing cache entry %s: %s", entry, exc)
        return None


def _store(entry: Path, dataset: Dataset, dropped: int) -> Dataset:
    """Write ``dataset`` to ``entry`` atomically and return it reloaded from there (memory-mapped)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling folder and renamed into place, so a reader (another rank, a later run) never sees a
    # half-written entry; the meta file is written last and marks the entry complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        dataset.save_to_disk(str(tmp / _DATASET_DIR))
        (tmp / _META_FILE).write_text(json.dumps({"dropped": dropped, "version": PREPROCESS_VERSION}))
        if entry.exists():  # an unreadable leftover (the hit check failed): replace it
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)
        except OSError:
            # Someone else renamed an equivalent entry into place first; use theirs.
            if not (entry / _META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(entry / _DATASET_DIR))


def split_validation(dataset: Dataset, conf: AutoSplitInput) -> tuple[Dataset, Dataset]:
    """Hold out ``ceil(ratio * n)`` random examples (at least 1, leaving at least 1) as validation data.

    Both parts keep the dataset's order; the choice depends only on ``conf.seed`` and ``len(dataset)``.
    """
    train_indices, val_indices = split_positions(len(dataset), conf)
    # keep_in_memory: indices mappings are small, and a memory-mapped (cached) dataset would otherwise get
    # indices files written into its cache folder.
    return (
        dataset.select(train_indices, keep_in_memory=True),
        dataset.select(val_indices, keep_in_memory=True),
    )


def split_positions(total: int, conf: AutoSplitInput) -> tuple[np.ndarray, np.ndarray]:
    """The positions (sorted) of :func:`split_validation`'s training and validation parts of ``total`` examples."""
    if total < 2:
        raise ValueError(
            f"cannot auto-split {total} training example(s) into training and validation data: need at least 2"
        )
    # The small epsilon stops float noise (0.1 * 30 == 3.0000000000000004) from adding an example.
    n_val = min(total - 1, max(1, math.ceil(total * conf.ratio - 1e-9)))
    permutation = np.random.default_rng(conf.seed).permutation(total)
    return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])


def sort_longest_first(dataset: Dataset) -> Dataset:
    """The dataset ordered by ``length``, longest first (ties keep their order)."""
    # Not Dataset.sort: in datasets 5.2, sort(keep_in_memory=True) on a memory-mapped dataset raises
    # ("use either keep_in_memory or indices_cache_file_name"), and it trips a pyarrow FutureWarning.
    order = np.argsort(-example_lengths(dataset), kind="stable")
    return dataset.select(order, keep_in_memory=True)


def prepare_sft_datasets(
    data_conf: DataConf,
    sft_args: SFTArgs,
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_proc: int,
    cache_dir: Path | None,
    events: EventWriter | None = None,
) -> tuple[Dataset, Dataset | None]:
    """Training and (optional) validation datasets for SFT, tokenized, with validation sorted longest first.

    The same rows, mix, split and order as tokenizing the records of :func:`finetuning.data.build_training_records`
    with :func:`preprocess_sft` and splitting them with :func:`split_validation`, built on Arrow: each file is
    tokenized once (in ``num_proc`` processes, cached under ``cache_dir`` by content), and the datasets returned are
    index mappings over the memory-mapped shards. ``events`` gets ``preprocessing`` events (progress, cache hit).
    """
    for role, conf in (("training_data", data_conf.training_data), ("validation_data", data_conf.validation_data)):
        if not isinstance(conf, NoneInput) and conf.data_type != DataType.CHAT_CONVERSATION:
            raise ValueError(f"SFT needs {role}.data_type ChatConversation, got {conf.data_type}")
    max_seq_length, length_handling = sft_args.max_seq_length, sft_args.length_handling
    truncate = length_handling == "truncate"
    training, validation_conf = data_conf.training_data, data_conf.validation_data
    # weight-0 files are not read at all: a placeholder entry need not exist
    train_paths = [str(ref.path) for ref in training.datasets if _weight(ref) > 0]
    val_paths = (
        [str(ref.path) for ref in validation_conf.datasets] if isinstance(validation_conf, ConcatenationInput) else []
    )

    bad_rows = BadRows(data_conf.max_bad_rows)
    progress = StageProgress("tokenizing", events)
    settings = {
        "version": PREPROCESS_VERSION,
        # filter keeps whole rows whatever the limit: the same shards serve every max_seq_length
        "max_seq_length": max_seq_length if truncate else None,
        "length_handling": length_handling,
        "tokenizer": tokenizer_identity(tokenizer),
    }
    sources, cache = tokenize_sources(
        train_paths + val_paths,
        tokenizer,
        settings=settings,
        max_seq_length=max_seq_length,
        truncate=truncate,
        num_proc=num_proc,
        cache_dir=cache_dir,
        bad_rows=bad_rows,
        progress=progress,
    )
    by_path = {source.path: source for source in sources}
    progress.done(sum(source.rows for source in sources), cache=cache, bad_rows=bad_rows.count)
    if summary := bad_rows.summary():
        logger.warning("%s", summary)
        if events is not None:
            events.log("warning", summary)

    def examples(what: str, base: Dataset, ids: np.ndarray) -> np.ndarray:
        lengths = example_lengths(base)
        if length_handling == "filter":
            kept = ids[lengths[ids] <= max_seq_length]
            dropped = len(ids) - len(kept)
            if dropped:
                logger.warning(
                    "dropped %d of %d %s examples longer than max_seq_length=%d (length_handling=filter)",
                    dropped,
                    len(ids),
                    what,
                    max_seq_length,
                )
            if not len(kept):
                raise ValueError(
                    f"no {what} examples left: all {dropped} are longer than max_seq_length={max_seq_length}; raise "
                    "it or set length_handling: truncate"
                )
            ids = kept
        return ids

    train_refs = [(str(ref.path), _weight(ref)) for ref in training.datasets]
    train_base = _concatenated([by_path[path] for path, weight in train_refs if weight > 0])
    sizes = [by_path[path].rows if weight > 0 else 0 for path, weight in train_refs]
    if isinstance(training, WeightedMixInput):
        mixed = mix_indices(sizes, [weight for _, weight in train_refs], training.seed)
    else:
        mixed = np.arange(sum(sizes), dtype=np.int64)
    train_ids = examples("training", train_base, mixed)

    validation: Dataset | None = None
    if isinstance(validation_conf, ConcatenationInput):
        val_base = _concatenated([by_path[path] for path in val_paths])
        val_ids = examples("validation", val_base, np.arange(len(val_base), dtype=np.int64))
        validation = _select(val_base, _longest_first(val_base, val_ids))
    elif isinstance(validation_conf, AutoSplitInput):
        train_positions, val_positions = split_positions(len(train_ids), validation_conf)
        validation = _select(train_base, _longest_first(train_base, train_ids[val_positions]))
        train_ids = train_ids[train_positions]
    train = _select(train_base, train_ids)
    logger.info(
        "SFT data: %d training examples, %s validation examples",
        len(train),
        "no" if validation is None else len(validation),
    )
    return train, validation


def _weight(ref: Any) -> float:
    return float(getattr(ref, "sampling_weight", 1.0))


def _concatenated(sources: list[TokenizedSource]) -> Dataset:
    """The sources' rows one after the other: memory-mapped shards (or in-memory tables), nothing copied."""
    parts: list[Dataset] = []
    for source in sources:
        parts.extend(Dataset.from_file(str(path)) for path in source.shards)
        parts.extend(Dataset(datasets.table.InMemoryTable(table)) for table in source.tables)
    if not parts:
        return Dataset(datasets.table.InMemoryTable(SFT_FEATURES.arrow_schema.empty_table()))
    combined = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    # the fingerprint names the content, for the caches downstream (packing)
    combined._fingerprint = hashlib.sha256(
        json.dumps([PREPROCESS_VERSION, [(s.key, s.rows) for s in sources]]).encode()
    ).hexdigest()[:32]
    return combined


def _longest_first(base: Dataset, ids: np.ndarray) -> np.ndarray:
    return ids[np.argsort(-example_lengths(base)[ids], kind="stable")]


def _select(base: Dataset, ids: np.ndarray) -> Dataset:
    """``base`` through the index mapping ``ids`` (kept in memory: 8 bytes a row), named by its content."""
    digest = hashlib.sha256(f"{base._fingerprint}|".encode())
    digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    fingerprint = digest.hexdigest()[:32]
    if len(ids) == len(base) and np.array_equal(ids, np.arange(len(base))):
        selected = base
    else:
        selected = base.select(ids, keep_in_memory=True, new_fingerprint=fingerprint)
    selected._fingerprint = fingerprint
    return selected
