from typing import Literal

SFTTrainingArgsHubStrategy = Literal["all_checkpoints", "checkpoint", "end", "every_save"]

SFT_TRAINING_ARGS_HUB_STRATEGY_VALUES: set[SFTTrainingArgsHubStrategy] = {
    "all_checkpoints",
    "checkpoint",
    "end",
    "every_save",
}


def check_sft_training_args_hub_strategy(value: str) -> SFTTrainingArgsHubStrategy:
    if value in SFT_TRAINING_ARGS_HUB_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_TRAINING_ARGS_HUB_STRATEGY_VALUES!r}")
