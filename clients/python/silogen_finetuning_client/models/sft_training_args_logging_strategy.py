from typing import Literal

SFTTrainingArgsLoggingStrategy = Literal["epoch", "no", "steps"]

SFT_TRAINING_ARGS_LOGGING_STRATEGY_VALUES: set[SFTTrainingArgsLoggingStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_sft_training_args_logging_strategy(value: str) -> SFTTrainingArgsLoggingStrategy:
    if value in SFT_TRAINING_ARGS_LOGGING_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_LOGGING_STRATEGY_VALUES!r}")
