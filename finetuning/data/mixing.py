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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from finetuning.config.data import ConcatenationInput, WeightedMixInput
from finetuning.data.loading import load_records

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


def build_training_records(conf: ConcatenationInput | WeightedMixInput) -> list[dict[str, Any]]:
    """Load every file of ``conf`` (validated as ``conf.data_type``) and join them as configured."""
    if isinstance(conf, ConcatenationInput):
        return concatenate([load_records(ref.path, conf.data_type) for ref in conf.datasets])
    # Weight-0 files are not read at all: a placeholder entry need not exist.
    sources = [load_records(ref.path, conf.data_type) if ref.sampling_weight > 0 else [] for ref in conf.datasets]
    return interleave(sources, [ref.sampling_weight for ref in conf.datasets], conf.seed)
