from typing import Literal

GRPOArgsMultiObjectiveAggregation = Literal["normalize_then_sum", "sum_then_normalize"]

GRPO_ARGS_MULTI_OBJECTIVE_AGGREGATION_VALUES: set[GRPOArgsMultiObjectiveAggregation] = {
    "normalize_then_sum",
    "sum_then_normalize",
}


def check_grpo_args_multi_objective_aggregation(value: str) -> GRPOArgsMultiObjectiveAggregation:
    if value in GRPO_ARGS_MULTI_OBJECTIVE_AGGREGATION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {GRPO_ARGS_MULTI_OBJECTIVE_AGGREGATION_VALUES!r}")
