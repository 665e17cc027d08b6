from typing import Literal

Determinism = Literal["full", "half", "no"]

DETERMINISM_VALUES: set[Determinism] = {
    "full",
    "half",
    "no",
}


def check_determinism(value: str) -> Determinism:
    if value in DETERMINISM_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DETERMINISM_VALUES!r}")
