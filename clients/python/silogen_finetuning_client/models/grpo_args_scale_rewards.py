from typing import Literal

GRPOArgsScaleRewards = Literal["batch", "group", "none"]

GRPO_ARGS_SCALE_REWARDS_VALUES: set[GRPOArgsScaleRewards] = {
    "batch",
    "group",
    "none",
}


def check_grpo_args_scale_rewards(value: str) -> GRPOArgsScaleRewards:
    if value in GRPO_ARGS_SCALE_REWARDS_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_ARGS_SCALE_REWARDS_VALUES!r}")
