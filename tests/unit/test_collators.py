"""Completions-only label masking (pure), in-context marker tokenization, and the SFT collators' padding."""

import logging
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from transformers import AutoTokenizer

from finetuning.collators import (
    IGNORE_INDEX,
    CausalLMCollator,
    CompletionScan,
    CompletionsOnlyCollator,
    UnkToEosCollator,
    completion_only_labels,
    tokenize_markers_in_context,
)

X = IGNORE_INDEX

# ---------------------------------------------------------------------------------------------------------------------
# completion_only_labels: the original engine's four marker cases, then the cases it did not cover.


@pytest.mark.parametrize(
    ("start", "end", "input_ids", "expected"),
    [
        (
            [2],
            [3],
            [10, 11, 12, 2, 10, 11, 12, 3, 10, 11, 12, 1],
            [X, X, X, 2, 10, 11, 12, 3, X, X, X, X],
        ),
        (
            [2],
            [2],
            [10, 11, 12, 2, 10, 11, 12, 2, 10, 11, 12, 1],
            [X, X, X, 2, 10, 11, 12, 2, X, X, X, X],
        ),
        (
            [2, 3],
            [4, 5],
            [10, 11, 12, 2, 3, 10, 11, 12, 4, 5, 10, 11, 12, 1],
            [X, X, X, 2, 3, 10, 11, 12, 4, 5, X, X, X, X],
        ),
        (
            [2, 3],
            [2, 3],
            [10, 11, 12, 2, 3, 10, 11, 12, 2, 3, 10, 11, 12, 1],
            [X, X, X, 2, 3, 10, 11, 12, 2, 3, X, X, X, X],
        ),
    ],
    ids=["2/3", "2/2", "23/45", "23/23"],
)
def test_reference_marker_cases(start: list[int], end: list[int], input_ids: list[int], expected: list[int]) -> None:
    labels, scan = completion_only_labels(input_ids, start, end)
    assert labels == expected
    assert scan == CompletionScan(start_found=True, n_starts=1, n_ends=1)
    assert scan.balanced


@pytest.mark.parametrize(
    ("start", "end", "input_ids", "expected"),
    [
        ([2], [3], [10, 2, 20, 3, 11, 2, 21, 22, 3, 12], [X, 2, 20, 3, X, 2, 21, 22, 3, X]),
        ([2], [2], [10, 2, 20, 2, 11, 2, 21, 22, 2, 12], [X, 2, 20, 2, X, 2, 21, 22, 2, X]),
        ([2, 3], [2, 3], [10, 2, 3, 20, 2, 3, 11, 2, 3, 21, 2, 3], [X, 2, 3, 20, 2, 3, X, 2, 3, 21, 2, 3]),
    ],
)
def test_several_turns_mask_between_them(
    start: list[int], end: list[int], input_ids: list[int], expected: list[int]
) -> None:
    labels, scan = completion_only_labels(input_ids, start, end)
    assert labels == expected
    assert scan == CompletionScan(start_found=True, n_starts=2, n_ends=2)


def test_truncated_last_turn_keeps_its_tail() -> None:
    labels, scan = completion_only_labels([10, 2, 20, 3, 11, 2, 21, 22], [2], [3])
    assert labels == [X, 2, 20, 3, X, 2, 21, 22]
    assert scan == CompletionScan(start_found=True, n_starts=2, n_ends=1)
    assert not scan.balanced


def test_no_start_masks_the_whole_row() -> None:
    labels, scan = completion_only_labels([10, 3, 11, 2], [2, 4], [3])
    assert labels == [X, X, X, X]
    assert scan == CompletionScan(start_found=False, n_starts=0, n_ends=0)


def test_turn_at_the_very_start_and_empty_content() -> None:
    # The original's look-behind required idx > len(start), so a start at position 0 was never passed.
    assert completion_only_labels([2, 20, 3, 10], [2], [3])[0] == [2, 20, 3, X]
    assert completion_only_labels([2, 3, 10], [2], [3])[0] == [2, 3, X]


def test_end_is_searched_only_after_the_whole_start() -> None:
    # With start [2, 3] and end [3, 4], the 3 inside the start must not begin an end marker.
    labels, scan = completion_only_labels([9, 2, 3, 4, 5, 3, 4, 9], [2, 3], [3, 4])
    assert labels == [X, 2, 3, 4, 5, 3, 4, X]
    assert scan.n_ends == 1


def test_partial_start_marker_is_not_a_start() -> None:
    labels, scan = completion_only_labels([10, 2, 10, 2], [2, 3], [4])
    assert labels == [X, X, X, X]
    assert not scan.start_found


def test_empty_markers_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        completion_only_labels([1, 2], [], [2])
    with pytest.raises(ValueError, match="at least one token"):
        completion_only_labels([1, 2], [1], [])


# ---------------------------------------------------------------------------------------------------------------------
# tokenize_markers_in_context with hand-made offsets (as the original's test), then with a real tokenizer.


def _fixed_offsets(offsets: list[tuple[int, int]]) -> Any:
    return _FixedOffsetsTokenizer(offsets)  # typed as the tokenizer it stands in for


class _FixedOffsetsTokenizer:
    """A fast-tokenizer stand-in that returns fixed ids and offsets whatever the text."""

    is_fast = True

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.offsets = offsets

    def __call__(self, text: str, **kwargs: object) -> dict[str, list]:
        assert kwargs == {"add_special_tokens": False, "return_offsets_mapping": True}
        return {"input_ids": list(range(len(self.offsets))), "offset_mapping": self.offsets}

    def convert_ids_to_tokens(self, index: int) -> str:
        return f"tok{index}"


def test_in_context_drops_the_prefix_tokens() -> None:
    tokenizer = _fixed_offsets([(0, 1), (1, 2), (2, 3), (3, 4)])
    assert tokenize_markers_in_context(tokenizer, "abc") == [1, 2, 3]


def test_in_context_skips_zero_width_prefix_tokens() -> None:
    tokenizer = _fixed_offsets([(0, 0), (0, 1), (1, 3), (3, 4)])
    assert tokenize_markers_in_context(tokenizer, "abc") == [2, 3]


def test_in_context_refuses_a_marker_merged_with_the_prefix() -> None:
    tokenizer = _fixed_offsets([(0, 2), (2, 4)])
    with pytest.raises(ValueError, match="merge with the preceding newline"):
        tokenize_markers_in_context(tokenizer, "abc")


def test_in_context_needs_a_fast_tokenizer() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        tokenize_markers_in_context(cast(Any, Slow()), "abc")


def test_in_context_rejects_an_empty_marker(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        tokenize_markers_in_context(tokenizer, "")


def test_in_context_real_tokenizer(tokenizer: Any) -> None:
    ids = tokenize_markers_in_context(tokenizer, "<|im_start|>assistant\n")
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tokenizer.decode(ids) == "<|im_start|>assistant\n"
    assert tokenize_markers_in_context(tokenizer, "<|im_end|>") == [tokenizer.convert_tokens_to_ids("<|im_end|>")]


# ---------------------------------------------------------------------------------------------------------------------
# Collators on hand-made features, with the tiny tokenizer (bos <s>=0, eos </s>=1, unk <unk>=2).


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_special_tokens({"extra_special_tokens": ["<|im_start|>", "<|im_end|>"]}, replace_extra_special_tokens=False)
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    return tok


def _bos_padded(tokenizer: Any, side: str) -> Any:
    tokenizer.pad_token = tokenizer.bos_token
    tokenizer.padding_side = side
    return tokenizer


def _assert_batch(batch: dict[str, torch.Tensor], input_ids: list, attention_mask: list, labels: list) -> None:
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["input_ids"].tolist() == input_ids
    assert batch["attention_mask"].tolist() == attention_mask
    assert batch["labels"].tolist() == labels


def test_causal_collator_right_padding(tokenizer: Any) -> None:
    collator = CausalLMCollator(_bos_padded(tokenizer, "right"))
    batch = collator([{"input_ids": [0, 5, 6, 7]}, {"input_ids": [0, 8]}])
    _assert_batch(
        batch,
        input_ids=[[0, 5, 6, 7], [0, 8, 0, 0]],
        attention_mask=[[1, 1, 1, 1], [1, 1, 0, 0]],
        # The real BOS (same id as the pad) stays a target: padding is found by length, not by id.
        labels=[[0, 5, 6, 7], [0, 8, X, X]],
    )


def test_causal_collator_left_padding(tokenizer: Any) -> None:
    collator = CausalLMCollator(_bos_padded(tokenizer, "left"))
    batch = collator([{"input_ids": [0, 5, 6, 7]}, {"input_ids": [0, 8]}])
    _assert_batch(
        batch,
        input_ids=[[0, 5, 6, 7], [0, 0, 0, 8]],
        attention_mask=[[1, 1, 1, 1], [0, 0, 1, 1]],
        labels=[[0, 5, 6, 7], [X, X, 0, 8]],
    )


def test_causal_collator_tensors_masks_and_multiple(tokenizer: Any) -> None:
    collator = CausalLMCollator(_bos_padded(tokenizer, "right"), pad_to_multiple_of=4)
    batch = collator(
        [
            {"input_ids": torch.tensor([5, 6, 7, 8, 9]), "attention_mask": torch.tensor([1, 1, 1, 1, 0]), "length": 5},
            {"input_ids": [5]},
        ]
    )
    _assert_batch(
        batch,
        input_ids=[[5, 6, 7, 8, 9, 0, 0, 0], [5, 0, 0, 0, 0, 0, 0, 0]],
        attention_mask=[[1, 1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]],
        labels=[[5, 6, 7, 8, X, X, X, X], [5, X, X, X, X, X, X, X]],
    )


def test_causal_collator_errors(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="no pad token"):
        CausalLMCollator(tokenizer)
    collator = CausalLMCollator(_bos_padded(tokenizer, "right"))
    with pytest.raises(ValueError, match="empty batch"):
        collator([])
    with pytest.raises(ValueError, match="attention_mask has 1 entries for 2"):
        collator([{"input_ids": [5, 6], "attention_mask": [1]}])
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        CausalLMCollator(tokenizer, pad_to_multiple_of=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_unk_to_eos_collator(tokenizer: Any, side: str) -> None:
    tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = side
    collator = UnkToEosCollator(tokenizer)
    # As the original's test: [2, 2, 3, eos] padded by one. Here 2 is the real UNK, which must survive.
    batch = collator([{"input_ids": [2, 2, 3, 1]}, {"input_ids": [2, 2, 3, 1, 7]}])
    if side == "right":
        _assert_batch(
            batch,
            input_ids=[[2, 2, 3, 1, 1], [2, 2, 3, 1, 7]],
            attention_mask=[[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
            labels=[[2, 2, 3, 1, X], [2, 2, 3, 1, 7]],
        )
    else:
        _assert_batch(
            batch,
            input_ids=[[1, 2, 2, 3, 1], [2, 2, 3, 1, 7]],
            attention_mask=[[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
            labels=[[X, 2, 2, 3, 1], [2, 2, 3, 1, 7]],
        )


def test_unk_to_eos_collator_needs_unk_padding(tokenizer: Any) -> None:
    tokenizer.pad_token = tokenizer.bos_token
    with pytest.raises(ValueError, match="pad with UNK"):
        UnkToEosCollator(tokenizer)


@pytest.mark.parametrize("side", ["right", "left"])
def test_completions_only_collator(tokenizer: Any, side: str, caplog: pytest.LogCaptureFixture) -> None:
    collator = CompletionsOnlyCollator(
        _bos_padded(tokenizer, side),
        assistant_start="<|im_start|>assistant\n",
        assistant_end="<|im_end|>",
    )
    start, end = collator.start_ids, collator.end_ids
    assert end == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    row = [10, 11, 12, *start, 10, 11, 12, *end, 10, 11, 12, 1]
    row_labels = [X, X, X, *start, 10, 11, 12, *end, X, X, X, X]
    short = [0, 10]  # no assistant turn at all
    pad = len(row) - len(short)
    with caplog.at_level(logging.WARNING, logger="finetuning.collators"):
        batch = collator([{"input_ids": row}, {"input_ids": short}])
    if side == "right":
        _assert_batch(
            batch,
            input_ids=[row, short + [0] * pad],
            attention_mask=[[1] * len(row), [1, 1] + [0] * pad],
            labels=[row_labels, [X] * len(row)],
        )
    else:
        _assert_batch(
            batch,
            input_ids=[row, [0] * pad + short],
            attention_mask=[[1] * len(row), [0] * pad + [1, 1]],
            labels=[row_labels, [X] * len(row)],
        )
    assert [r.getMessage() for r in caplog.records] == [
        f"No assistant turn start '<|im_start|>assistant\\n' (ids {start}) in batch row 1 (2 tokens): "
        "the whole row is ignored by the loss"
    ]


def test_completions_only_collator_warns_on_truncation(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    collator = CompletionsOnlyCollator(
        _bos_padded(tokenizer, "right"),
        assistant_start="<|im_start|>assistant\n",
        assistant_end="<|im_end|>",
    )
    start = collator.start_ids
    with caplog.at_level(logging.WARNING, logger="finetuning.collators"):
        batch = collator([{"input_ids": [10, *start, 20, 21]}])
    assert batch["labels"].tolist() == [[X, *start, 20, 21]]
    assert len(caplog.records) == 1
    assert "1 assistant turn starts" in caplog.records[0].getMessage()
    assert "but 0 ends" in caplog.records[0].getMessage()


def test_marker_patterns_accept_merged_edges() -> None:
    """A pattern position holds every id accepted there (finetuning.collators.MarkerPattern): here 2 may also be 7
    (its first token merged with what precedes it) and 3 may also be 8 (merged with the answer's first character)."""
    from finetuning.collators import MarkerPattern

    start = MarkerPattern((frozenset({2, 7}), frozenset({3, 8})))
    labels, scan = completion_only_labels([10, 7, 8, 11, 4, 12], start, [4])
    assert labels == [X, 7, 8, 11, 4, X]
    assert scan == CompletionScan(start_found=True, n_starts=1, n_ends=1)
    assert completion_only_labels([10, 2, 3, 11, 4], start, MarkerPattern.exact([4]))[0] == [X, 2, 3, 11, 4]
    assert not completion_only_labels([10, 3, 2, 11, 4], start, [4])[1].start_found
