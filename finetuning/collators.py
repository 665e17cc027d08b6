"""SFT data collators: padding, labels, and completions-only masking of everything but the assistant turns.

Padding positions are always found from lengths and attention masks, never by comparing ids with the pad id: under
the repurpose strategies the pad token is a real token (BOS, EOS or UNK) that also occurs in the data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.config.data import MissingPadTokenStrategy

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from finetuning.tokenizer import TokenizerSetup

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

# Prepended so a marker is tokenized as it appears mid-conversation rather than at the start of a text, where some
# tokenizers merge or prefix differently. A newline is a boundary in the usual pre-tokenizers.
_MARKER_CONTEXT = "\n"


def tokenize_markers_in_context(tokenizer: PreTrainedTokenizerBase, marker: str) -> list[int]:
    """The token ids of ``marker`` as it is tokenized in running text.

    Tokenizes a newline plus the marker without special tokens and keeps the tokens from the first one that starts
    at or after the end of the newline. Needs a fast tokenizer (for the offsets).
    """
    if not marker:
        raise ValueError("an assistant marker must not be empty")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"completions-only training needs a fast tokenizer (for offset mappings), got {type(tokenizer).__name__}; "
            "load the tokenizer with use_fast=True"
        )
    encoded = tokenizer(_MARKER_CONTEXT + marker, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in encoded["offset_mapping"]]
    prefix_len = len(_MARKER_CONTEXT)
    for index, (start, end) in enumerate(offsets):
        if start < prefix_len < end:
            # The context merged into the marker's first token, so no token sequence is the marker by itself.
            raise ValueError(
                f"cannot tokenize the assistant marker {marker!r} on its own: its first characters merge with the "
                f"preceding newline into one token ({tokenizer.convert_ids_to_tokens(ids[index])!r})"
            )
        if start >= prefix_len:
            return ids[index:]
    raise ValueError(f"the assistant marker {marker!r} produced no tokens after the context prefix")


# SentencePiece's byte-fallback pieces ("<0x0A>"): one byte each, never part of a longer piece.
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


@dataclass(frozen=True)
class MarkerPattern:
    """The token sequences an assistant marker takes in running text: for each position, the ids accepted there.

    A marker is tokenized once, in a neutral context (:func:`tokenize_markers_in_context`), but in a conversation
    its edge characters can merge with their neighbours. In a SentencePiece (Llama, Mistral) vocabulary the space
    mistral-with-system writes before ``[/INST]`` makes its first token ``▁[`` rather than ``[``, and an answer that
    begins with ``(``, ``.`` or ``:`` turns its last token ``]`` into ``](``, ``].`` or ``]:``. So the first position
    also accepts any token that ends with the marker's first token, and the last position any token that begins with
    its last one; a merged token is a marker token, a target like the rest of the marker. Added (special) tokens
    never merge and byte pieces are whole bytes, so those positions accept only the marker's own id.
    """

    positions: tuple[frozenset[int], ...]

    @classmethod
    def exact(cls, ids: Sequence[int]) -> MarkerPattern:
        return cls(tuple(frozenset((int(i),)) for i in ids))

    @classmethod
    def in_running_text(cls, tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> MarkerPattern:
        """The pattern of a marker whose in-context ids are ``ids``, for ``tokenizer``'s vocabulary."""
        if not ids:
            raise ValueError("an assistant marker must be at least one token")
        atomic = {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {})}
        mergeable = {
            token: int(index)
            for token, index in tokenizer.get_vocab().items()
            if int(index) not in atomic and not _BYTE_PIECE.fullmatch(token)
        }
        pieces = tokenizer.convert_ids_to_tokens(list(ids))
        positions = [{int(i)} for i in ids]

        def merges(k: int) -> bool:
            return int(ids[k]) not in atomic and pieces[k] in mergeable

        if merges(0):
            positions[0] |= {i for token, i in mergeable.items() if token.endswith(pieces[0])}
        last = len(ids) - 1
        if merges(last):
            positions[last] |= {i for token, i in mergeable.items() if token.startswith(pieces[last])}
        return cls(tuple(frozenset(p) for p in positions))

    def __len__(self) -> int:
        return len(self.positions)

    def matches(self, ids: Sequence[int], at: int) -> bool:
        """Whether the marker occurs in ``ids`` starting at index ``at``."""
        if at + len(self.positions) > len(ids):
            return False
        return all(ids[at + k] in accepted for k, accepted in enumerate(self.positions))


@dataclass(frozen=True)
class CompletionScan:
    """What :func:`completion_only_labels` found in one row."""

    start_found: bool
    n_starts: int
    n_ends: int

    @property
    def balanced(self) -> bool:
        """Every assistant turn that started also ended (otherwise the row was probably truncated)."""
        return self.n_starts == self.n_ends


def completion_only_labels(
    input_ids: Sequence[int], start: Sequence[int] | MarkerPattern, end: Sequence[int] | MarkerPattern
) -> tuple[list[int], CompletionScan]:
    """Labels that train only on assistant turns: ``-100`` elsewhere.

    A turn runs from the start marker through the next end marker; both markers and the content between them stay
    targets. Outside turns everything is masked, so masking resumes right after each end marker. The end is only
    searched for after the whole start marker, so start and end may be the same sequence. A turn with no end (a
    truncated row) stays a target up to the end of the row. A marker is a list of ids (matched exactly) or a
    :class:`MarkerPattern` (also matching the forms a vocabulary merges its edges into).
    """
    start_pattern = start if isinstance(start, MarkerPattern) else MarkerPattern.exact(start)
    end_pattern = end if isinstance(end, MarkerPattern) else MarkerPattern.exact(end)
    if not len(start_pattern) or not len(end_pattern):
        raise ValueError("assistant start and end markers must each be at least one token")
    ids = list(input_ids)
    labels = [IGNORE_INDEX] * len(ids)
    n_starts = n_ends = 0
    in_turn = False
    i = 0
    while i < len(ids):
        if not in_turn:
            if start_pattern.matches(ids, i):
                labels[i : i + len(start_pattern)] = ids[i : i + len(start_pattern)]
                i += len(start_pattern)
                n_starts += 1
                in_turn = True
            else:
                i += 1
        elif end_pattern.matches(ids, i):
            labels[i : i + len(end_pattern)] = ids[i : i + len(end_pattern)]
            i += len(end_pattern)
            n_ends += 1
            in_turn = False
        else:
            labels[i] = ids[i]
            i += 1
    return labels, CompletionScan(start_found=n_starts > 0, n_starts=n_starts, n_ends=n_ends)


class CausalLMCollator:
    """Pads a batch and sets ``labels`` to the input ids, with ``-100`` on padding.

    Features are mappings with ``input_ids`` (lists or 1-d tensors) and optionally ``attention_mask``; other keys
    are dropped. Positions with attention mask 0 are treated as padding too. Pads go on the tokenizer's padding side.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> None:
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        if tokenizer.padding_side not in ("left", "right"):
            raise ValueError(f"unsupported padding side {tokenizer.padding_side!r}")
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding_side: str = tokenizer.padding_side
        self.input_pad_id = self._input_pad_id()

    def _input_pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token: apply a missing_pad_token_strategy first")
        return int(pad_id)

    def row_labels(self, input_ids: list[int], row: int) -> list[int]:
        """Labels for one unpadded row."""
        return list(input_ids)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate ``features`` into ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
        import torch

        if not features:
            raise ValueError("cannot collate an empty batch")
        rows = [_as_int_list(f["input_ids"]) for f in features]
        masks = [
            _as_int_list(f["attention_mask"]) if f.get("attention_mask") is not None else [1] * len(ids)
            for f, ids in zip(features, rows, strict=True)
        ]
        width = max(len(ids) for ids in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of

        batch_ids, batch_mask, batch_labels = [], [], []
        for row, (ids, mask) in enumerate(zip(rows, masks, strict=True)):
            if len(mask) != len(ids):
                raise ValueError(f"row {row}: attention_mask has {len(mask)} entries for {len(ids)} input ids")
            labels = self.row_labels(ids, row)
            labels = [label if keep else IGNORE_INDEX for label, keep in zip(labels, mask, strict=True)]
            n_pad = width - len(ids)
            batch_ids.append(self._pad(ids, self.input_pad_id, n_pad))
            batch_mask.append(self._pad(mask, 0, n_pad))
            batch_labels.append(self._pad(labels, IGNORE_INDEX, n_pad))
        return {
            "input_ids": torch.tensor(batch_ids, dtype=torch.long),
            "attention_mask": torch.tensor(batch_mask, dtype=torch.long),
            "labels": torch.tensor(batch_labels, dtype=torch.long),
        }

    def _pad(self, values: list[int], pad_value: int, n_pad: int) -> list[int]:
        padding = [pad_value] * n_pad
        return padding + values if self.padding_side == "left" else values + padding


class UnkToEosCollator(CausalLMCollator):
    """The ``unk-convert-to-eos`` strategy: the tokenizer pads with UNK, but the model sees EOS on padding.

    Input-side pads become EOS while their labels are ``-100``. Unlike a search for the UNK id, real UNK tokens in
    the data are left alone.
    """

    def _input_pad_id(self) -> int:
        tokenizer = self.tokenizer
        if tokenizer.unk_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("the unk-convert-to-eos collator needs a tokenizer with both an unk and an eos token")
        if tokenizer.pad_token_id != tokenizer.unk_token_id:
            raise ValueError(
                "the unk-convert-to-eos collator expects the tokenizer to pad with UNK "
                f"(pad {tokenizer.pad_token!r}, unk {tokenizer.unk_token!r})"
            )
        return int(tokenizer.eos_token_id)


class CompletionsOnlyCollator(CausalLMCollator):
    """Trains only on assistant turns (see :func:`completion_only_labels`); the markers are strings, searched for
    as :class:`MarkerPattern` s.

    Logs a warning for a row with no assistant start (the whole row is ignored by the loss) and for a row whose
    start and end counts differ (usually truncation).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        assistant_start: str,
        assistant_end: str,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        super().__init__(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
        self.assistant_start = assistant_start
        self.assistant_end = assistant_end
        self.start_ids = tokenize_markers_in_context(tokenizer, assistant_start)
        self.end_ids = tokenize_markers_in_context(tokenizer, assistant_end)
        # what the rows are searched for: the ids above plus the forms their edges take in running text
        self.start_pattern = MarkerPattern.in_running_text(tokenizer, self.start_ids)
        self.end_pattern = MarkerPattern.in_running_text(tokenizer, self.end_ids)

    def row_labels(self, input_ids: list[int], row: int) -> list[int]:
        """Completion-only labels for one row, warning about rows the markers do not explain."""
        labels, scan = completion_only_labels(input_ids, self.start_pattern, self.end_pattern)
        if not scan.start_found:
            logger.warning(
                "No assistant turn start %r (ids %s) in batch row %d (%d tokens): the whole row is ignored by the loss",
                self.assistant_start,
                self.start_ids,
                row,
                len(input_ids),
            )
        elif not scan.balanced:
            logger.warning(
                "Batch row %d has %d assistant turn starts %r but %d ends %r: it was probably truncated on the right",
                row,
                scan.n_starts,
                self.assistant_start,
                scan.n_ends,
                self.assistant_end,
            )
        return labels


# The batch key holding a batch's count of real (example) tokens, as a Python int: counted on the host while
# collating, so tokens-per-second needs no device synchronisation. The trainer removes it before the forward pass.
REAL_TOKENS = "real_tokens"


class PackedCollator:
    """Collates packed rows (``input_ids``, ``labels``, ``seq_lengths`` from :mod:`finetuning.data.packing`).

    Position ids restart at 0 for each example, and there is no attention mask: transformers builds the
    block-diagonal causal mask from the position ids. Rows are padded to a common width, a multiple of
    ``pad_to_multiple_of`` capped at ``max_length`` (rows are nearly full, so the width is almost always
    ``max_length``: one shape, no per-shape cost); the padding forms a sequence of its own that no example attends
    to and that has no targets.

    ``flatten`` puts the whole batch in one row, as flash attention's variable-length kernels want it (they find
    the examples from position ids only in a batch of one row), and adds their ``cu_seq_lens``/``max_length``
    arguments so that they need not be computed from the position ids on the device in every layer.
    """

    def __init__(self, pad_id: int, max_length: int, *, pad_to_multiple_of: int = 64, flatten: bool = False) -> None:
        if max_length < 1 or pad_to_multiple_of < 1:
            raise ValueError("max_length and pad_to_multiple_of must be positive")
        self.pad_id = pad_id
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.flatten = flatten

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise ValueError("cannot collate an empty batch")
        rows = [
            (_as_int_list(f["input_ids"]), _as_int_list(f["labels"]), _as_int_list(f["seq_lengths"])) for f in features
        ]
        for index, (ids, labels, lengths) in enumerate(rows):
            if len(labels) != len(ids) or sum(lengths) != len(ids):
                raise ValueError(f"packed row {index}: {len(ids)} ids, {len(labels)} labels, example lengths {lengths}")
        real = sum(len(ids) for ids, _, _ in rows)
        if self.flatten:
            return self._flattened(rows, real)
        longest = max(len(ids) for ids, _, _ in rows)
        width = max(longest, min(self.max_length, -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of))
        batch_ids, batch_labels, batch_positions = [], [], []
        for ids, labels, lengths in rows:
            n_pad = width - len(ids)
            batch_ids.append(ids + [self.pad_id] * n_pad)
            batch_labels.append(labels + [IGNORE_INDEX] * n_pad)
            batch_positions.append(_positions(lengths) + list(range(n_pad)))
        return {
            "input_ids": torch.tensor(batch_ids, dtype=torch.long),
            "labels": torch.tensor(batch_labels, dtype=torch.long),
            "position_ids": torch.tensor(batch_positions, dtype=torch.long),
            REAL_TOKENS: real,
        }

    def _flattened(self, rows: list[tuple[list[int], list[int], list[int]]], real: int) -> dict[str, Any]:
        import torch

        ids = [token for row_ids, _, _ in rows for token in row_ids]
        labels = [label for _, row_labels, _ in rows for label in row_labels]
        lengths = [length for _, _, row_lengths in rows for length in row_lengths]
        cumulative = [0]
        for length in lengths:
            cumulative.append(cumulative[-1] + length)
        cu_seq_lens = torch.tensor(cumulative, dtype=torch.int32)
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([_positions(lengths)], dtype=torch.long),
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens,
            "max_length_q": max(lengths),
            "max_length_k": max(lengths),
            REAL_TOKENS: real,
        }


def _positions(lengths: Sequence[int]) -> list[int]:
    return [position for length in lengths for position in range(length)]


def build_sft_collator(
    tokenizer: PreTrainedTokenizerBase,
    setup: TokenizerSetup,
    *,
    completions_only: bool,
    pad_to_multiple_of: int | None = None,
) -> CausalLMCollator:
    """The SFT collator for a tokenizer prepared by :func:`finetuning.tokenizer.load_tokenizer`."""
    unk_to_eos = setup.pad_strategy == MissingPadTokenStrategy.UNK_CONVERT_TO_EOS
    if completions_only:
        if unk_to_eos:
            raise ValueError(
                "missing_pad_token_strategy 'unk-convert-to-eos' cannot be combined with train_on_completions_only: "
                "choose another pad strategy (e.g. bos-repurpose or unk-repurpose)"
            )
        if setup.assistant_start is None:
            raise ValueError(
                f"train_on_completions_only needs an assistant start marker, which the {setup.template.name.value!r} "
                "chat template does not define: choose a built-in template"
            )
        return CompletionsOnlyCollator(
            tokenizer, setup.assistant_start, setup.assistant_end, pad_to_multiple_of=pad_to_multiple_of
        )
    if unk_to_eos:
        return UnkToEosCollator(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return CausalLMCollator(tokenizer, pad_to_multiple_of=pad_to_multiple_of)


def _as_int_list(values: Any) -> list[int]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    return [int(v) for v in values]
