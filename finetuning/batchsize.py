"""Per-device batch size and gradient accumulation from the total batch size and the number of processes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from finetuning.config.training import BatchsizeConf, LrBatchSizeScaling, Overrides


class BatchSizeError(ValueError):
    """The total batch size cannot be split over the processes."""


@dataclass(frozen=True)
class BatchPlan:
    num_processes: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    per_device_eval_batch_size: int

    @property
    def total_train_batch_size(self) -> int:
        return self.num_processes * self.per_device_train_batch_size * self.gradient_accumulation_steps


def plan_batches(conf: BatchsizeConf, num_processes: int) -> BatchPlan:
    """The largest per-device batch not above the maximum that keeps the total exact.

    Accumulation grows one step at a time; the per-device size changes only where the total divides evenly,
    so the total is always processes x per-device x accumulation.
    """
    total, maximum = conf.total_train_batch_size, conf.max_per_device_train_batch_size
    if num_processes < 1:
        raise BatchSizeError(f"the number of processes must be at least 1, got {num_processes}")
    if total % num_processes:
        raise BatchSizeError(
            f"batchsize_conf.total_train_batch_size ({total}) is not divisible by the number of processes "
            f"({num_processes}); choose a total that is a multiple of {num_processes}"
        )
    per_device, accumulation = total // num_processes, 1
    while per_device > maximum:
        accumulation += 1
        if total % (num_processes * accumulation) == 0:
            per_device = total // (num_processes * accumulation)
    eval_size = conf.per_device_eval_batch_size or per_device
    return BatchPlan(num_processes, per_device, accumulation, eval_size)


def scaled_learning_rate(base: float, overrides: Overrides, total_train_batch_size: int) -> float:
    """Apply ``lr_multiplier``, then ``lr_batch_size_scaling`` (sqrt or linear in the total batch size)."""
    lr = base * overrides.lr_multiplier
    if overrides.lr_batch_size_scaling == LrBatchSizeScaling.SQRT:
        lr *= math.sqrt(total_train_batch_size)
    elif overrides.lr_batch_size_scaling == LrBatchSizeScaling.LINEAR:
        lr *= total_train_batch_size
    return lr
