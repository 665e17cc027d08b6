from typing import Literal

DataConfPaddingSide = Literal["left", "right"]

DATA_CONF_PADDING_SIDE_VALUES: set[DataConfPaddingSide] = {
    "left",
    "right",
}


def check_data_conf_padding_side(value: str) -> DataConfPaddingSide:
    if value in DATA_CONF_PADDING_SIDE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DATA_CONF_PADDING_SIDE_VALUES!r}")
