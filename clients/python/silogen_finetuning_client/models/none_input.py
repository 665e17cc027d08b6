from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.data_type import DataType, check_data_type
from ..types import UNSET, Unset

T = TypeVar("T", bound="NoneInput")


@_attrs_define
class NoneInput:
    """No validation set.

    Attributes:
        data_type (DataType | Unset):
        type_ (Literal['NONE'] | Unset):  Default: 'NONE'.
    """

    data_type: DataType | Unset = UNSET
    type_: Literal["NONE"] | Unset = "NONE"

    def to_dict(self) -> dict[str, Any]:
        data_type: str | Unset = UNSET
        if not isinstance(self.data_type, Unset):
            data_type = self.data_type

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if data_type is not UNSET:
            field_dict["data_type"] = data_type
        if type_ is not UNSET:
            field_dict["type"] = type_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _data_type = d.pop("data_type", UNSET)
        data_type: DataType | Unset
        if isinstance(_data_type, Unset):
            data_type = UNSET
        else:
            data_type = check_data_type(_data_type)

        type_ = cast(Literal["NONE"] | Unset, d.pop("type", UNSET))
        if type_ != "NONE" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'NONE', got '{type_}'")

        none_input = cls(
            data_type=data_type,
            type_=type_,
        )

        return none_input
