from typing import Literal

DPOTrainingArgsEvalStrategy = Literal["epoch", "no", "steps"]

DPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES: set[DPOTrainingArgsEvalStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_dpo_training_args_eval_strategy(value: str) -> DPOTrainingArgsEvalStrategy:
    if value in DPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES!r}")
