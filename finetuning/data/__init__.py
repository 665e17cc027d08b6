"""Training data: record types, loading, mixing and SFT preprocessing.

``records``, ``loading`` and ``mixing`` need only pydantic and numpy; the preprocessing names import
``datasets`` (and expect a transformers tokenizer), so they are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetuning.data.errors import DataError
from finetuning.data.loading import BadRows, load_records
from finetuning.data.mixing import build_training_records, concatenate, interleave, mix_indices, normalise_weights
from finetuning.data.records import ChatConversation, DirectPreference, Message

if TYPE_CHECKING:
    from finetuning.data.preprocess import (
        PREPROCESS_VERSION,
        Processed,
        prepare_sft_datasets,
        preprocess_sft,
        sort_longest_first,
        split_validation,
    )

_LAZY = {
    "PREPROCESS_VERSION",
    "Processed",
    "prepare_sft_datasets",
    "preprocess_sft",
    "sort_longest_first",
    "split_validation",
}

__all__ = [
    "PREPROCESS_VERSION",
    "BadRows",
    "ChatConversation",
    "DataError",
    "DirectPreference",
    "Message",
    "Processed",
    "build_training_records",
    "concatenate",
    "interleave",
    "load_records",
    "mix_indices",
    "normalise_weights",
    "prepare_sft_datasets",
    "preprocess_sft",
    "sort_longest_first",
    "split_validation",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from finetuning.data import preprocess

        return getattr(preprocess, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
