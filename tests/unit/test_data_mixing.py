"""Concatenation and weighted interleaving of training files (pure functions plus the config entry point)."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from finetuning.config.data import ConcatenationInput, WeightedMixInput
from finetuning.data.mixing import build_training_records, concatenate, interleave, mix_indices, normalise_weights

A = ["a0", "a1", "a2"]
B = ["b0"]
C = ["c0", "c1"]


def _used_up_at(result: list[str], sources: list[list[str]]) -> int:
    """Index of the item after which every source has been fully used at least once."""
    seen: list[set[str]] = [set() for _ in sources]
    for index, item in enumerate(result):
        for source, got in zip(sources, seen, strict=True):
            if item in source:
                got.add(item)
        if all(len(got) == len(source) for got, source in zip(seen, sources, strict=True)):
            return index
    raise AssertionError("some source was never used up")


# --- round-robin -------------------------------------------------------------------------------------------


def test_round_robin_alternates_then_stops_when_all_used_up() -> None:
    assert interleave([["a0", "a1"], ["b0", "b1"]], None, seed=0) == ["a0", "b0", "a1", "b1"]


def test_round_robin_oversamples_shorter_sources_in_whole_rounds() -> None:
    # max(len) rounds, one item of each source per round; the short ones restart from their beginning.
    assert interleave([A, B, C], None, seed=0) == ["a0", "b0", "c0", "a1", "b0", "c1", "a2", "b0", "c0"]


@pytest.mark.parametrize("weights", [None, [1.0, 1.0, 1.0], [1, 1, 1]])
def test_all_weights_one_is_round_robin_regardless_of_seed(weights: list[float] | None) -> None:
    expected = ["a0", "b0", "c0", "a1", "b0", "c1", "a2", "b0", "c0"]
    assert interleave([A, B, C], weights, seed=1) == expected
    assert interleave([A, B, C], weights, seed=2) == expected


def test_zero_weight_is_skipped_and_the_rest_stays_round_robin() -> None:
    assert interleave([A, B, C], [1.0, 0.0, 1.0], seed=0) == ["a0", "c0", "a1", "c1", "a2", "c0"]


def test_zero_weight_source_may_be_empty() -> None:
    assert interleave([A, []], [1.0, 0.0], seed=0) == A


def test_concatenation_keeps_order() -> None:
    assert concatenate([A, B, C]) == A + B + C


# --- weighted ----------------------------------------------------------------------------------------------


def test_weights_10_to_1_iterate_and_use_every_source_up() -> None:
    big = [f"a{i}" for i in range(2000)]
    small = [f"b{i}" for i in range(200)]
    result = interleave([big, small], [10.0, 1.0], seed=7)

    # It stops exactly at the item that uses up the last source.
    assert _used_up_at(result, [big, small]) == len(result) - 1
    # Each source is read in order, cycling.
    from_big = [item for item in result if item.startswith("a")]
    from_small = [item for item in result if item.startswith("b")]
    assert from_big == [big[i % len(big)] for i in range(len(from_big))]
    assert from_small == [small[i % len(small)] for i in range(len(from_small))]
    # Draws follow the weights: about 10/11 from the big one.
    assert len(from_big) / len(result) == pytest.approx(10 / 11, abs=0.03)


def test_weighted_mix_is_deterministic_per_seed() -> None:
    sources = [[f"a{i}" for i in range(50)], [f"b{i}" for i in range(5)]]
    first = interleave(sources, [10.0, 1.0], seed=19851243)
    assert interleave(sources, [10.0, 1.0], seed=19851243) == first
    assert interleave(sources, [10.0, 1.0], seed=1) != first


def test_weighted_mix_oversamples_the_small_high_weight_source() -> None:
    result = interleave([["a0"], [f"b{i}" for i in range(100)]], [10.0, 1.0], seed=3)
    counts = Counter(result)
    assert all(counts[f"b{i}"] >= 1 for i in range(100))
    assert counts["a0"] > 100  # ~1000 draws of a single example


def test_weighted_zero_weight_skipped() -> None:
    result = interleave([A, B, C], [2.0, 0.0, 1.0], seed=0)
    assert "b0" not in result
    assert set(result) == set(A) | set(C)


def test_normalisation_maths() -> None:
    assert normalise_weights([4.5, 4.5, 1]) == pytest.approx([0.45, 0.45, 0.1])
    assert normalise_weights([3.0]) == [1.0]
    assert normalise_weights([0.0, 2.0]) == [0.0, 1.0]


@pytest.mark.parametrize("weights", [[1.0, -0.5], [0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0]])
def test_bad_weights_raise(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weight"):
        interleave([A, C], weights, seed=0)
    with pytest.raises(ValueError, match="weight"):
        normalise_weights(weights)


def test_weight_count_must_match_sources() -> None:
    with pytest.raises(ValueError, match="2 weights for 3 sources"):
        interleave([A, B, C], [1.0, 2.0], seed=0)


def test_empty_source_with_weight_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        interleave([A, []], [1.0, 2.0], seed=0)


# --- from the config ---------------------------------------------------------------------------------------


def _write(path: Path, ids: list[str]) -> str:
    rows = [{"id": i, "messages": [{"role": "user", "content": i}]} for i in ids]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_build_concatenation_keeps_file_order(tmp_path: Path) -> None:
    first = _write(tmp_path / "first.jsonl", ["x1", "x2"])
    second = _write(tmp_path / "second.jsonl", ["y1"])
    conf = ConcatenationInput.model_validate({"datasets": [{"path": second}, {"path": first}]})
    assert [r["id"] for r in build_training_records(conf)] == ["y1", "x1", "x2"]


def test_build_weighted_mix_round_robin_and_seeded(tmp_path: Path) -> None:
    first = _write(tmp_path / "first.jsonl", ["x1", "x2", "x3"])
    second = _write(tmp_path / "second.jsonl", ["y1"])
    round_robin = WeightedMixInput.model_validate({"datasets": [{"path": first}, {"path": second}]})
    assert [r["id"] for r in build_training_records(round_robin)] == ["x1", "y1", "x2", "y1", "x3", "y1"]

    weighted = WeightedMixInput.model_validate(
        {"datasets": [{"path": first, "sampling_weight": 10}, {"path": second, "sampling_weight": 1}], "seed": 5}
    )
    ids = [r["id"] for r in build_training_records(weighted)]
    assert ids == [r["id"] for r in build_training_records(weighted)]
    assert {"x1", "x2", "x3", "y1"} <= set(ids)


def test_build_weighted_mix_does_not_read_zero_weight_files(tmp_path: Path) -> None:
    present = _write(tmp_path / "present.jsonl", ["x1"])
    conf = WeightedMixInput.model_validate(
        {"datasets": [{"path": present}, {"path": str(tmp_path / "absent.jsonl"), "sampling_weight": 0}]}
    )
    assert [r["id"] for r in build_training_records(conf)] == ["x1"]


def test_build_missing_file_raises(tmp_path: Path) -> None:
    conf = ConcatenationInput.model_validate({"datasets": [{"path": str(tmp_path / "nope.jsonl")}]})
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        build_training_records(conf)


# --- the index form used for Arrow data --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_mix_indices_gives_the_order_of_interleave(seed: int) -> None:
    """The same items in the same order as the list-based rule, for generated sources, weights and seeds (sizes
    up to several draw blocks, zero weights, a single source, round-robin)."""
    rng = random.Random(seed)
    n_sources = rng.randint(1, 4)
    sizes = [rng.choice([1, 2, 7, 300, 5000, 9000]) for _ in range(n_sources)]
    weights: list[float] | None = [rng.choice([0.0, 0.5, 1.0, 1.0, 3.0, 10.0]) for _ in range(n_sources)]
    assert weights is not None
    if sum(weights) == 0:
        weights[0] = 2.0
    if seed % 5 == 0:
        weights = None
    sources = [[f"s{i}-{j}" for j in range(size)] for i, size in enumerate(sizes)]
    flat = [item for source in sources for item in source]
    indices = mix_indices(sizes, weights, seed=seed * 7919)
    assert indices.dtype == np.int64
    assert [flat[i] for i in indices] == interleave(sources, weights, seed=seed * 7919)


def test_mix_indices_errors_match_interleave() -> None:
    with pytest.raises(ValueError, match="empty"):
        mix_indices([3, 0], [1.0, 2.0], seed=0)
    with pytest.raises(ValueError, match="2 weights for 3 sources"):
        mix_indices([1, 1, 1], [1.0, 2.0], seed=0)
    with pytest.raises(ValueError, match="weight"):
        mix_indices([1, 1], [1.0, -1.0], seed=0)
    assert mix_indices([3, 0], [1.0, 0.0], seed=0).tolist() == [0, 1, 2]
