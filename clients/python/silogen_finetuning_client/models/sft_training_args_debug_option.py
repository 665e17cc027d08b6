from typing import Literal

SFTTrainingArgsDebugOption = Literal["tpu_metrics_debug", "underflow_overflow"]

SFT_TRAINING_ARGS_DEBUG_OPTION_VALUES: set[SFTTrainingArgsDebugOption] = {
    "tpu_metrics_debug",
    "underflow_overflow",
}


def check_sft_training_args_debug_option(value: str) -> SFTTrainingArgsDebugOption:
    if value in SFT_TRAINING_ARGS_DEBUG_OPTION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_DEBUG_OPTION_VALUES!r}")
