from typing import Literal

GRPOArgsImportanceSamplingLevel = Literal["sequence", "token"]

GRPO_ARGS_IMPORTANCE_SAMPLING_LEVEL_VALUES: set[GRPOArgsImportanceSamplingLevel] = {
    "sequence",
    "token",
}


def check_grpo_args_importance_sampling_level(value: str) -> GRPOArgsImportanceSamplingLevel:
    if value in GRPO_ARGS_IMPORTANCE_SAMPLING_LEVEL_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_ARGS_IMPORTANCE_SAMPLING_LEVEL_VALUES!r}")
