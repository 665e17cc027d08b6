from typing import Literal

GRPOTrainingArgsSaveStrategy = Literal["best", "epoch", "no", "steps"]

GRPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES: set[GRPOTrainingArgsSaveStrategy] = {
    "best",
    "epoch",
    "no",
    "steps",
}


def check_grpo_training_args_save_strategy(value: str) -> GRPOTrainingArgsSaveStrategy:
    if value in GRPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES!r}")
