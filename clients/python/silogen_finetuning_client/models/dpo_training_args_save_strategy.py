from typing import Literal

DPOTrainingArgsSaveStrategy = Literal["best", "epoch", "no", "steps"]

DPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES: set[DPOTrainingArgsSaveStrategy] = {
    "best",
    "epoch",
    "no",
    "steps",
}


def check_dpo_training_args_save_strategy(value: str) -> DPOTrainingArgsSaveStrategy:
    if value in DPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_SAVE_STRATEGY_VALUES!r}")
