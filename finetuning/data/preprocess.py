"""SFT preprocessing: conversations → token ids, with an on-disk cache keyed by everything that shapes the output.

Steps (the original engine's order): render each conversation with the tokenizer's chat template, tokenize
(truncating with ``truncate``), drop over-long examples with ``filter``, split off validation data, and sort
validation data longest first (so an out-of-memory batch shows up on the first evaluation step, not hours in).
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
from datasets import Dataset, Features, List, Value

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput
from finetuning.data.mixing import build_training_records
from finetuning.tokenizer import SpecialTokenFraming

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from finetuning.config.training import SFTArgs

logger = logging.getLogger(__name__)

# Bump whenever the output of preprocess_sft changes for the same inputs, so stale cache entries are not reused.
PREPROCESS_VERSION = 1

LengthHandling = Literal["filter", "truncate"]

# Fixed column types, so that the result does not depend on type inference (or on num_proc).
SFT_FEATURES = Features(
    {
        "input_ids": List(Value("int64")),
        "attention_mask": List(Value("int64")),
        "length": Value("int64"),
    }
)

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
        lengths = _lengths(dataset)
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
    texts = [_render(tokenizer, json.loads(c)) for c in batch["conversation"]]
    # One BOS at the start, the same rule DPO's tokenization follows: the template's own where it renders one,
    # otherwise the tokenizer's; plus the training-mode EOS (finetuning.tokenizer.SpecialTokenFraming).
    framing = SpecialTokenFraming.of(tokenizer)
    encoded = tokenizer(texts, add_special_tokens=False)
    input_ids = [
        framing.frame(
            ids,
            with_suffix=True,
            max_length=max_seq_length if truncate else None,
            truncation_side=tokenizer.truncation_side,
        )
        for ids in encoded["input_ids"]
    ]
    # no padding here: every token is attended to
    attention_mask = [[1] * len(ids) for ids in input_ids]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "length": [len(ids) for ids in input_ids]}


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not isinstance(text, str):  # only a list of conversations or tokenize=True give anything else
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


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
    total = len(dataset)
    if total < 2:
        raise ValueError(
            f"cannot auto-split {total} training example(s) into training and validation data: need at least 2"
        )
    # The small epsilon stops float noise (0.1 * 30 == 3.0000000000000004) from adding an example.
    n_val = min(total - 1, max(1, math.ceil(total * conf.ratio - 1e-9)))
    permutation = np.random.default_rng(conf.seed).permutation(total)
    val_indices = np.sort(permutation[:n_val])
    train_indices = np.sort(permutation[n_val:])
    # keep_in_memory: indices mappings are small, and a memory-mapped (cached) dataset would otherwise get
    # indices files written into its cache folder.
    return (
        dataset.select(train_indices, keep_in_memory=True),
        dataset.select(val_indices, keep_in_memory=True),
    )


def sort_longest_first(dataset: Dataset) -> Dataset:
    """The dataset ordered by ``length``, longest first (ties keep their order)."""
    # Not Dataset.sort: in datasets 5.2, sort(keep_in_memory=True) on a memory-mapped dataset raises
    # ("use either keep_in_memory or indices_cache_file_name"), and it trips a pyarrow FutureWarning.
    order = np.argsort(-_lengths(dataset), kind="stable")
    return dataset.select(order, keep_in_memory=True)


def _lengths(dataset: Dataset) -> np.ndarray:
    # Through the arrow format so that an indices mapping (select, split) is honoured; dataset.data is not.
    return dataset.with_format("arrow")["length"].to_numpy()


def prepare_sft_datasets(
    data_conf: DataConf,
    sft_args: SFTArgs,
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_proc: int,
    cache_dir: Path | None,
) -> tuple[Dataset, Dataset | None]:
    """Training and (optional) validation datasets for SFT, tokenized, with validation sorted longest first."""
    for role, conf in (("training_data", data_conf.training_data), ("validation_data", data_conf.validation_data)):
        if not isinstance(conf, NoneInput) and conf.data_type != DataType.CHAT_CONVERSATION:
            raise ValueError(f"SFT needs {role}.data_type ChatConversation, got {conf.data_type}")

    def process(records: list[dict[str, Any]], what: str) -> Dataset:
        processed = preprocess_sft(
            records,
            tokenizer,
            max_seq_length=sft_args.max_seq_length,
            length_handling=sft_args.length_handling,
            num_proc=num_proc,
            cache_dir=cache_dir,
        )
        if len(processed.dataset) == 0:
            raise ValueError(
                f"no {what} examples left: all {processed.dropped} are longer than max_seq_length="
                f"{sft_args.max_seq_length}; raise it or set length_handling: truncate"
            )
        return processed.dataset

    train = process(build_training_records(data_conf.training_data), "training")
    validation_conf = data_conf.validation_data
    validation: Dataset | None
    if isinstance(validation_conf, ConcatenationInput):
        validation = process(build_training_records(validation_conf), "validation")
    elif isinstance(validation_conf, AutoSplitInput):
        train, validation = split_validation(train, validation_conf)
    else:
        validation = None

    if validation is not None:
        validation = sort_longest_first(validation)
    logger.info(
        "SFT data: %d training examples, %s validation examples",
        len(train),
        "no" if validation is None else len(validation),
    )
    return train, validation
