from typing import Literal

SFTArgsLengthHandling = Literal["filter", "truncate"]

SFT_ARGS_LENGTH_HANDLING_VALUES: set[SFTArgsLengthHandling] = {
    "filter",
    "truncate",
}


def check_sft_args_length_handling(value: str) -> SFTArgsLengthHandling:
    if value in SFT_ARGS_LENGTH_HANDLING_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {SFT_ARGS_LENGTH_HANDLING_VALUES!r}")
