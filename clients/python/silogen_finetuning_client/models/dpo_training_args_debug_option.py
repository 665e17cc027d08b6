from typing import Literal

DPOTrainingArgsDebugOption = Literal["tpu_metrics_debug", "underflow_overflow"]

DPO_TRAINING_ARGS_DEBUG_OPTION_VALUES: set[DPOTrainingArgsDebugOption] = {
    "tpu_metrics_debug",
    "underflow_overflow",
}


def check_dpo_training_args_debug_option(value: str) -> DPOTrainingArgsDebugOption:
    if value in DPO_TRAINING_ARGS_DEBUG_OPTION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_DEBUG_OPTION_VALUES!r}")
