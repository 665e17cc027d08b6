from typing import Literal

GRPOArgsLossType = Literal["bnpo", "cispo", "dapo", "dr_grpo", "grpo", "luspo", "sapo", "vespo"]

GRPO_ARGS_LOSS_TYPE_VALUES: set[GRPOArgsLossType] = {
    "bnpo",
    "cispo",
    "dapo",
    "dr_grpo",
    "grpo",
    "luspo",
    "sapo",
    "vespo",
}


def check_grpo_args_loss_type(value: str) -> GRPOArgsLossType:
    if value in GRPO_ARGS_LOSS_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_ARGS_LOSS_TYPE_VALUES!r}")
