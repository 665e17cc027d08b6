from typing import Literal

GRPOTrainingArgsEvalStrategy = Literal["epoch", "no", "steps"]

GRPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES: set[GRPOTrainingArgsEvalStrategy] = {
    "epoch",
    "no",
    "steps",
}


def check_grpo_training_args_eval_strategy(value: str) -> GRPOTrainingArgsEvalStrategy:
    if value in GRPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_EVAL_STRATEGY_VALUES!r}")
