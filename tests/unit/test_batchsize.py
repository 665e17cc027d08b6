import math

import pytest

from finetuning.batchsize import BatchSizeError, plan_batches, scaled_learning_rate
from finetuning.config.training import BatchsizeConf, Overrides


@pytest.mark.parametrize(
    ("total", "maximum", "processes", "per_device", "accumulation"),
    [
        (8, 4, 1, 4, 2),
        (8, 4, 2, 4, 1),
        (8, 4, 4, 2, 1),
        (8, 4, 8, 1, 1),
        (8, 8, 1, 8, 1),
        (8, 10, 8, 1, 1),
        (8, 10, 2, 4, 1),
        (8, 10, 1, 8, 1),
        (8, 3, 2, 2, 2),
        (512, 4, 1, 4, 128),
    ],
)
def test_reference_table(total: int, maximum: int, processes: int, per_device: int, accumulation: int) -> None:
    plan = plan_batches(BatchsizeConf(total_train_batch_size=total, max_per_device_train_batch_size=maximum), processes)
    assert (plan.per_device_train_batch_size, plan.gradient_accumulation_steps) == (per_device, accumulation)
    assert plan.total_train_batch_size == total
    assert plan.per_device_eval_batch_size == per_device


@pytest.mark.parametrize(("total", "maximum", "processes"), [(8, 4, 10), (8, 10, 10), (1, 10, 2)])
def test_total_not_divisible_is_an_error_naming_the_field(total: int, maximum: int, processes: int) -> None:
    conf = BatchsizeConf(total_train_batch_size=total, max_per_device_train_batch_size=maximum)
    with pytest.raises(BatchSizeError, match="total_train_batch_size"):
        plan_batches(conf, processes)


def test_explicit_eval_batch_size_is_kept() -> None:
    conf = BatchsizeConf(total_train_batch_size=8, max_per_device_train_batch_size=2, per_device_eval_batch_size=16)
    assert plan_batches(conf, 1).per_device_eval_batch_size == 16


def test_prime_total_falls_back_to_per_device_one() -> None:
    plan = plan_batches(BatchsizeConf(total_train_batch_size=7, max_per_device_train_batch_size=3), 1)
    assert (plan.per_device_train_batch_size, plan.gradient_accumulation_steps) == (1, 7)


@pytest.mark.parametrize(
    ("multiplier", "scaling", "expected"),
    [(1.0, "none", 1e-4), (2.0, "none", 2e-4), (1.0, "sqrt", 1e-4 * math.sqrt(64)), (0.5, "linear", 0.5e-4 * 64)],
)
def test_learning_rate_overrides(multiplier: float, scaling: str, expected: float) -> None:
    overrides = Overrides.model_validate({"lr_multiplier": multiplier, "lr_batch_size_scaling": scaling})
    assert scaled_learning_rate(1e-4, overrides, 64) == pytest.approx(expected)
