from typing import Literal

MultiGraderAggregate = Literal["min", "weighted_sum"]

MULTI_GRADER_AGGREGATE_VALUES: set[MultiGraderAggregate] = {
    "min",
    "weighted_sum",
}


def check_multi_grader_aggregate(value: str) -> MultiGraderAggregate:
    if value in MULTI_GRADER_AGGREGATE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {MULTI_GRADER_AGGREGATE_VALUES!r}")
