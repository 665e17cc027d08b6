from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.data_type import DataType, check_data_type
from ..types import UNSET, Unset

T = TypeVar("T", bound="AutoSplitInput")


@_attrs_define
class AutoSplitInput:
    """Hold out a random fraction of the processed training data for validation.

    Attributes:
        data_type (DataType | Unset):
        ratio (float | Unset):  Default: 0.2.
        seed (int | Unset):  Default: 1289525893.
        type_ (Literal['AUTO_SPLIT'] | Unset):  Default: 'AUTO_SPLIT'.
    """

    data_type: DataType | Unset = UNSET
    ratio: float | Unset = 0.2
    seed: int | Unset = 1289525893
    type_: Literal["AUTO_SPLIT"] | Unset = "AUTO_SPLIT"

    def to_dict(self) -> dict[str, Any]:
        data_type: str | Unset = UNSET
        if not isinstance(self.data_type, Unset):
            data_type = self.data_type

        ratio = self.ratio

        seed = self.seed

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if data_type is not UNSET:
            field_dict["data_type"] = data_type
        if ratio is not UNSET:
            field_dict["ratio"] = ratio
        if seed is not UNSET:
            field_dict["seed"] = seed
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

        ratio = d.pop("ratio", UNSET)

        seed = d.pop("seed", UNSET)

        type_ = cast(Literal["AUTO_SPLIT"] | Unset, d.pop("type", UNSET))
        if type_ != "AUTO_SPLIT" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'AUTO_SPLIT', got '{type_}'")

        auto_split_input = cls(
            data_type=data_type,
            ratio=ratio,
            seed=seed,
            type_=type_,
        )

        return auto_split_input
