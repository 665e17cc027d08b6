from typing import Literal

SFTTrainingArgsEvalStrategy = Literal["epoch", "no", "steps"]

SFT_TRAINING_ARGS_EVAL_STRATEGY_VALUES: set[SFTTrainingArgsEvalStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_sft_training_args_eval_strategy(value: str) -> SFTTrainingArgsEvalStrategy:
    if value in SFT_TRAINING_ARGS_EVAL_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_EVAL_STRATEGY_VALUES!r}")
