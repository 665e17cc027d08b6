from typing import Literal

LrBatchSizeScaling = Literal["linear", "none", "sqrt"]

LR_BATCH_SIZE_SCALING_VALUES: set[LrBatchSizeScaling] = {
    "linear",
    "none",
    "sqrt",
}


def check_lr_batch_size_scaling(value: str) -> LrBatchSizeScaling:
    if value in LR_BATCH_SIZE_SCALING_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {LR_BATCH_SIZE_SCALING_VALUES!r}")
