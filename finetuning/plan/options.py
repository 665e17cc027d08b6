"""What a plan is asked for: the world size, the card, a row limit, where the tokenized shards go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finetuning.config.jobs import DPOConfig, GRPOConfig, SFTConfig

# the configs a plan is made for
TrainingConfig = SFTConfig | DPOConfig | GRPOConfig


@dataclass(frozen=True)
class PlanOptions:
    """``num_processes``: training processes (GPUs) in all; ``gpu``: the card to give a verdict for (a name of
    :data:`finetuning.throughput_table.ACCELERATORS`), else every known card and the CPU; ``max_rows``: read at most
    this many rows of each JSONL file and extrapolate (None: all); ``cache_dir``: where tokenized shards go (the
    run's preprocessing cache: the plan fills it for the run; None: a temporary folder, removed)."""

    num_processes: int = 1
    gpu: str | None = None
    max_rows: int | None = None
    cache_dir: Path | None = None
    num_proc: int = 1
