from typing import Literal

GRPOTrainingArgsDebugOption = Literal["tpu_metrics_debug", "underflow_overflow"]

GRPO_TRAINING_ARGS_DEBUG_OPTION_VALUES: set[GRPOTrainingArgsDebugOption] = {
    "tpu_metrics_debug",
    "underflow_overflow",
}


def check_grpo_training_args_debug_option(value: str) -> GRPOTrainingArgsDebugOption:
    if value in GRPO_TRAINING_ARGS_DEBUG_OPTION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_DEBUG_OPTION_VALUES!r}")
