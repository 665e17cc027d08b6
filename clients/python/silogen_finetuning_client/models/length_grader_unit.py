from typing import Literal

LengthGraderUnit = Literal["characters", "tokens", "words"]

LENGTH_GRADER_UNIT_VALUES: set[LengthGraderUnit] = {
    "characters",
    "tokens",
    "words",
}


def check_length_grader_unit(value: str) -> LengthGraderUnit:
    if value in LENGTH_GRADER_UNIT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {LENGTH_GRADER_UNIT_VALUES!r}")
