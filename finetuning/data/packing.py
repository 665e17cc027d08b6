"""Packing: tokenized SFT examples -> rows of up to ``seq_length`` tokens, several examples per row.

Labels are computed per example *before* packing (completions-only masking needs the example on its own), and each
example's first label is ``-100``: a causal LM predicts token *t* from the tokens before it, and in a packed row the
token before an example's first one belongs to another example. Unpacked, that first label is never a target either
(the loss shifts labels by one), so packed and unpacked training see exactly the same (context, target) pairs.

The rows keep ``seq_lengths`` (the lengths of the examples in them), from which the collator builds position ids that
restart at 0 for each example; transformers turns such position ids into a block-diagonal causal mask, so attention
never crosses examples.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, Features, List, Value

from finetuning.collators import IGNORE_INDEX
from finetuning.models import causal_lm_of

logger = logging.getLogger(__name__)

# Bump when the labels or rows built here change for the same input, so datasets' cache is not reused.
# 2: completions-only markers also match the forms their edge tokens merge into (collators.MarkerPattern).
PACKING_VERSION = 2

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


def pack_examples(labeled: Dataset, seq_length: int, *, num_proc: int = 1) -> tuple[Dataset, PackingStats]:
    """Best-fit-decreasing packing (TRL's ``pack_dataset``) of ``input_ids``/``labels`` rows into rows of at most
    ``seq_length`` tokens, with a ``seq_lengths`` column. Examples longer than ``seq_length`` must not occur (the
    preprocessing filters or truncates them to ``max_seq_length``)."""
    from trl import pack_dataset

    lengths = labeled.with_format("arrow")["input_ids"]
    total = int(np.sum(_list_lengths(lengths)))
    # num_proc splits the data before packing, and each part is packed on its own: only worth it for large data
    packed = pack_dataset(
        labeled,
        seq_length,
        strategy="bfd",
        map_kwargs={"num_proc": num_proc if num_proc > 1 and len(labeled) >= 50_000 else None},
    )
    stats = PackingStats(examples=len(labeled), rows=len(packed), tokens=total, seq_length=seq_length)
    logger.info(
        "packed %d examples into %d rows of up to %d tokens (%.1f%% full)",
        stats.examples,
        stats.rows,
        seq_length,
        100 * stats.fill,
    )
    return packed, stats


def _list_lengths(column: object) -> np.ndarray:
    import pyarrow.compute as pc

    return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False))


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
