from typing import Literal

SFTTrainingArgsSaveStrategy = Literal["best", "epoch", "no", "steps"]

SFT_TRAINING_ARGS_SAVE_STRATEGY_VALUES: set[SFTTrainingArgsSaveStrategy] = {
    "best",
    "epoch",
    "no",
    "steps",
}


def check_sft_training_args_save_strategy(value: str) -> SFTTrainingArgsSaveStrategy:
    if value in SFT_TRAINING_ARGS_SAVE_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_SAVE_STRATEGY_VALUES!r}")
