from typing import Literal

GRPOTrainingArgsLoggingStrategy = Literal["epoch", "no", "steps"]

GRPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES: set[GRPOTrainingArgsLoggingStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_grpo_training_args_logging_strategy(value: str) -> GRPOTrainingArgsLoggingStrategy:
    if value in GRPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES!r}")
