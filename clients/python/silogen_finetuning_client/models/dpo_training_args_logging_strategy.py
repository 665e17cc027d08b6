from typing import Literal

DPOTrainingArgsLoggingStrategy = Literal["epoch", "no", "steps"]

DPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES: set[DPOTrainingArgsLoggingStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_dpo_training_args_logging_strategy(value: str) -> DPOTrainingArgsLoggingStrategy:
    if value in DPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_LOGGING_STRATEGY_VALUES!r}")
