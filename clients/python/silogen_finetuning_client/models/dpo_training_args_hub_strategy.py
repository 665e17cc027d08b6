from typing import Literal

DPOTrainingArgsHubStrategy = Literal["all_checkpoints", "checkpoint", "end", "every_save"]

DPO_TRAINING_ARGS_HUB_STRATEGY_VALUES: set[DPOTrainingArgsHubStrategy] = {
    "all_checkpoints",
    "checkpoint",
    "end",
    "every_save",
}


def check_dpo_training_args_hub_strategy(value: str) -> DPOTrainingArgsHubStrategy:
    if value in DPO_TRAINING_ARGS_HUB_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DPO_TRAINING_ARGS_HUB_STRATEGY_VALUES!r}")
