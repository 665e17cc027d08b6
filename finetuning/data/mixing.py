"""Build the training records: concatenate files, or interleave them by weight.

Interleaving rules (``interleave``), reproducing the original engine's
``interleave_datasets(..., stopping_strategy="all_exhausted")``:

* Weight-0 sources are dropped first; they contribute nothing.
* No weights, or every remaining weight exactly 1.0: **strict round-robin in whole rounds**. Round ``r`` takes
  item ``r mod len(source)`` from each source, in source order. There are ``max(len(source))`` rounds, so the
  result has ``n_sources * max_len`` items and ends with the round in which the longest source is used up;
  shorter sources restart from their beginning (oversampling). Lengths [3, 1] give a0 b0 a1 b0 a2 b0.
* Otherwise weights are normalised to probabilities. Each step draws a source with those probabilities and
  takes that source's next item, cycling back to its start once it is used up. Drawing stops right after the
  step on which the last not-yet-used-up source yields its final item, i.e. as soon as every source has been
  used in full at least once.

Both are deterministic for a given seed; the round-robin does not use the seed.

``interleave`` mixes lists of records (preference data, small inputs); :func:`mix_indices` computes the same order as
an index array from the sources' sizes alone, for data held in Arrow (SFT): the same draws, the same stopping step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from finetuning.config.data import ConcatenationInput, WeightedMixInput
from finetuning.data.loading import BadRows, load_records

T = TypeVar("T")

# Source draws are taken from the generator in blocks: per-draw numpy calls would dominate the loop.
_DRAW_BLOCK = 4096


def normalise_weights(weights: Sequence[float]) -> list[float]:
    """Weights scaled to probabilities summing to 1; ValueError on a negative/non-finite weight or a zero sum."""
    for index, weight in enumerate(weights):
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"sampling weight {index} is {weight}: weights must be finite and >= 0")
    total = math.fsum(weights)
    if total <= 0:
        raise ValueError("the sampling weights sum to zero: give at least one dataset a positive weight")
    return [weight / total for weight in weights]


def concatenate(sources: Sequence[Sequence[T]]) -> list[T]:
    """All items of every source, in source order."""
    return [item for source in sources for item in source]


def interleave(sources: Sequence[Sequence[T]], weights: Sequence[float] | None, seed: int) -> list[T]:
    """Mix ``sources`` until every one is used up (see the module docstring for the exact rule)."""
    if weights is None:
        weights = [1.0] * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"got {len(weights)} weights for {len(sources)} sources")
    normalise_weights(weights)  # validates: negative, non-finite, zero sum
    kept = [(source, weight) for source, weight in zip(sources, weights, strict=True) if weight > 0]
    for source, _ in kept:
        if not source:
            # An empty source could never be "used up", so the mix would never end.
            raise ValueError("a source with a positive weight is empty")

    if all(weight == 1.0 for _, weight in kept):
        rounds = max(len(source) for source, _ in kept)
        return [source[r % len(source)] for r in range(rounds) for source, _ in kept]

    probabilities = normalise_weights([weight for _, weight in kept])
    rng = np.random.default_rng(seed)
    positions = [0] * len(kept)
    unfinished = len(kept)
    out: list[T] = []
    while unfinished:
        for choice in rng.choice(len(kept), size=_DRAW_BLOCK, p=probabilities).tolist():
            source = kept[choice][0]
            out.append(source[positions[choice] % len(source)])
            positions[choice] += 1
            if positions[choice] == len(source):  # first time this source is used up
                unfinished -= 1
                if not unfinished:
                    break
    return out


def mix_indices(sizes: Sequence[int], weights: Sequence[float] | None, seed: int) -> np.ndarray:
    """:func:`interleave` of sources of ``sizes`` items as indices into their concatenation (int64).

    ``interleave(sources, weights, seed) == [flat[i] for i in mix_indices([len(s) for s in sources], weights, seed)]``
    where ``flat`` is the sources concatenated, sources of weight 0 included (their items are never picked).
    """
    if weights is None:
        weights = [1.0] * len(sizes)
    if len(weights) != len(sizes):
        raise ValueError(f"got {len(weights)} weights for {len(sizes)} sources")
    normalise_weights(weights)  # validates: negative, non-finite, zero sum
    offsets = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
    kept = [(int(offsets[i]), int(size), weight) for i, (size, weight) in enumerate(zip(sizes, weights, strict=True))]
    kept = [source for source in kept if source[2] > 0]
    if any(size == 0 for _, size, _ in kept):
        raise ValueError("a source with a positive weight is empty")

    if all(weight == 1.0 for _, _, weight in kept):
        rounds = np.arange(max(size for _, size, _ in kept), dtype=np.int64)
        # one column per source, one row per round: read row by row
        return np.stack([start + rounds % size for start, size, _ in kept], axis=1).reshape(-1)

    probabilities = normalise_weights([weight for _, _, weight in kept])
    rng = np.random.default_rng(seed)
    drawn = np.zeros(len(kept), dtype=np.int64)  # items taken from each source so far
    unfinished = set(range(len(kept)))
    blocks: list[np.ndarray] = []
    while True:
        choices = rng.choice(len(kept), size=_DRAW_BLOCK, p=probabilities)
        block = np.empty(_DRAW_BLOCK, dtype=np.int64)
        finished_at: list[int] = []  # the step within the block on which a source is used up
        for source, (start, size, _) in enumerate(kept):
            steps = np.flatnonzero(choices == source)
            block[steps] = start + (drawn[source] + np.arange(len(steps))) % size
            if source in unfinished and drawn[source] + len(steps) >= size:
                finished_at.append(int(steps[size - drawn[source] - 1]))
                unfinished.discard(source)
            drawn[source] += len(steps)
        if not unfinished:
            # drawing stops right after the step that used up the last source
            blocks.append(block[: max(finished_at) + 1])
            return np.concatenate(blocks)
        blocks.append(block)


def build_training_records(
    conf: ConcatenationInput | WeightedMixInput, bad_rows: BadRows | None = None
) -> list[dict[str, Any]]:
    """Load every file of ``conf`` (validated as ``conf.data_type``) and join them as configured."""
    if isinstance(conf, ConcatenationInput):
        return concatenate([load_records(ref.path, conf.data_type, bad_rows) for ref in conf.datasets])
    # Weight-0 files are not read at all: a placeholder entry need not exist.
    sources = [
        load_records(ref.path, conf.data_type, bad_rows) if ref.sampling_weight > 0 else [] for ref in conf.datasets
    ]
    return interleave(sources, [ref.sampling_weight for ref in conf.datasets], conf.seed)
