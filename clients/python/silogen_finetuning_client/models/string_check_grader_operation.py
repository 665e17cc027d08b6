from typing import Literal

StringCheckGraderOperation = Literal[
    "contains", "ends_with", "equals", "not_contains", "not_equals", "regex", "starts_with"
]

STRING_CHECK_GRADER_OPERATION_VALUES: set[StringCheckGraderOperation] = {
    "contains",
    "ends_with",
    "equals",
    "not_contains",
    "not_equals",
    "regex",
    "starts_with",
}


def check_string_check_grader_operation(value: str) -> StringCheckGraderOperation:
    if value in STRING_CHECK_GRADER_OPERATION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {STRING_CHECK_GRADER_OPERATION_VALUES!r}")
