from typing import Literal

DataType = Literal["ChatConversation", "DirectPreference", "UnpairedPreference"]

DATA_TYPE_VALUES: set[DataType] = {
    "ChatConversation",
    "DirectPreference",
    "UnpairedPreference",
}


def check_data_type(value: str) -> DataType:
    if value in DATA_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {DATA_TYPE_VALUES!r}")
