"""Conversations -> SFT token rows, a batch at a time, straight into Arrow.

Each conversation is rendered with the tokenizer's chat template, encoded without special tokens and framed with one
BOS and the training-mode EOS (:class:`finetuning.tokenizer.SpecialTokenFraming`), truncated when asked. The rows
become Arrow arrays built from flat numpy buffers, never lists of Python ints held for the whole dataset.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Features, List, Value

from finetuning.tokenizer import SpecialTokenFraming

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

# Fixed column types, so that the result does not depend on type inference (or on num_proc). int32 ids and an int8
# mask: half and an eighth of int64's disk and page cache; collators build int64 tensors from them.
SFT_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "attention_mask": List(Value("int8")),
        "length": Value("int32"),
    }
)
SFT_SCHEMA = SFT_FEATURES.arrow_schema


def conversation(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the chat template sees them: None-valued optional keys dropped (so a template testing
    ``'tags' in message`` sees what the file held), keys sorted at every level (the order the preprocessing cache's
    JSON gave them before)."""
    return [{key: _sorted(message[key]) for key in sorted(message) if message[key] is not None} for message in messages]


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not isinstance(text, str):  # only a list of conversations or tokenize=True give anything else
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


class SFTEncoder:
    """Rendered conversations -> framed token ids -> an Arrow record batch of :data:`SFT_SCHEMA`.

    A fast tokenizer's Rust backend is called directly (``encode_batch``: a third less time per row than going
    through ``tokenizer(...)``), once the first batch has shown that both give the same ids.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, *, max_seq_length: int, truncate: bool, fast_backend: bool = True
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_seq_length if truncate else None
        self.framing = SpecialTokenFraming.of(tokenizer)
        fast = fast_backend and getattr(tokenizer, "is_fast", False)
        self._backend = getattr(tokenizer, "backend_tokenizer", None) if fast else None
        self._backend_checked = False

    def render(self, messages: Sequence[dict[str, Any]]) -> str:
        return render(self.tokenizer, conversation(messages))

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Framed (and truncated) token ids of each rendered text."""
        if not texts:
            return []
        ids = self._encode(texts)
        side = self.tokenizer.truncation_side
        return [
            self.framing.frame(row, with_suffix=True, max_length=self.max_length, truncation_side=side) for row in ids
        ]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if self._backend is not None:
            fast = [encoding.ids for encoding in self._backend.encode_batch(texts, add_special_tokens=False)]
            if self._backend_checked:
                return fast
            self._backend_checked = True
            reference = [list(row) for row in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
            if fast == reference:
                return fast
            self._backend = None  # the wrapper does more than the backend for this tokenizer: go through it
            return reference
        return [list(row) for row in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def batch(self, texts: list[str]) -> pa.RecordBatch:
        return rows_batch(self.encode(texts))


def rows_batch(rows: list[list[int]]) -> pa.RecordBatch:
    """Token rows as a record batch of :data:`SFT_SCHEMA` (every token attended to: no padding here)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=total)
    offsets_array = pa.array(offsets)
    return pa.RecordBatch.from_arrays(
        [
            pa.ListArray.from_arrays(offsets_array, pa.array(values)),
            pa.ListArray.from_arrays(offsets_array, pa.array(np.ones(total, dtype=np.int8))),
            pa.array(lengths),
        ],
        schema=SFT_SCHEMA,
    )


def example_lengths(dataset: Dataset, column: str = "input_ids") -> np.ndarray:
    """Tokens per example (the ``length`` column, else the lengths of ``column``'s lists) through the dataset's index
    mapping (select, split), read from that one column of the underlying table: no other column is touched."""
    if "length" in dataset.column_names:
        lengths = np.asarray(dataset.data.column("length").to_numpy(), dtype=np.int64)
    else:
        lengths = np.asarray(pc.list_value_length(dataset.data.column(column)).to_numpy(zero_copy_only=False))
    indices = dataset._indices
    return lengths if indices is None else lengths[indices.column(0).to_numpy()]
