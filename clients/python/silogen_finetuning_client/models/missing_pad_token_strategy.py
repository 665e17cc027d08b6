from typing import Literal

MissingPadTokenStrategy = Literal["bos-repurpose", "eos-repurpose", "unk-convert-to-eos", "unk-repurpose"]

MISSING_PAD_TOKEN_STRATEGY_VALUES: set[MissingPadTokenStrategy] = {
    "bos-repurpose",
    "eos-repurpose",
    "unk-convert-to-eos",
    "unk-repurpose",
}


def check_missing_pad_token_strategy(value: str) -> MissingPadTokenStrategy:
    if value in MISSING_PAD_TOKEN_STRATEGY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {MISSING_PAD_TOKEN_STRATEGY_VALUES!r}")
