from typing import Literal

GRPOTrainingArgsHubStrategy = Literal["all_checkpoints", "checkpoint", "end", "every_save"]

GRPO_TRAINING_ARGS_HUB_STRATEGY_VALUES: set[GRPOTrainingArgsHubStrategy] = {
    "all_checkpoints",
    "checkpoint",
    "end",
    "every_save",
}


def check_grpo_training_args_hub_strategy(value: str) -> GRPOTrainingArgsHubStrategy:
    if value in GRPO_TRAINING_ARGS_HUB_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_TRAINING_ARGS_HUB_STRATEGY_VALUES!r}")
