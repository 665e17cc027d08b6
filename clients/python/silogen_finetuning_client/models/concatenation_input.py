from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.data_type import DataType, check_data_type
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dataset_ref import DatasetRef


T = TypeVar("T", bound="ConcatenationInput")


@_attrs_define
class ConcatenationInput:
    """The files joined in the listed order.

    Attributes:
        datasets (list[DatasetRef]):
        data_type (DataType | Unset):
        type_ (Literal['CONCATENATION'] | Unset):  Default: 'CONCATENATION'.
    """

    datasets: list[DatasetRef]
    data_type: DataType | Unset = UNSET
    type_: Literal["CONCATENATION"] | Unset = "CONCATENATION"

    def to_dict(self) -> dict[str, Any]:
        datasets = []
        for datasets_item_data in self.datasets:
            datasets_item = datasets_item_data.to_dict()
            datasets.append(datasets_item)

        data_type: str | Unset = UNSET
        if not isinstance(self.data_type, Unset):
            data_type = self.data_type

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "datasets": datasets,
            }
        )
        if data_type is not UNSET:
            field_dict["data_type"] = data_type
        if type_ is not UNSET:
            field_dict["type"] = type_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dataset_ref import DatasetRef  # noqa: PLC0415

        d = dict(src_dict)
        datasets = []
        _datasets = d.pop("datasets")
        for datasets_item_data in _datasets:
            datasets_item = DatasetRef.from_dict(datasets_item_data)

            datasets.append(datasets_item)

        _data_type = d.pop("data_type", UNSET)
        data_type: DataType | Unset
        if isinstance(_data_type, Unset):
            data_type = UNSET
        else:
            data_type = check_data_type(_data_type)

        type_ = cast(Literal["CONCATENATION"] | Unset, d.pop("type", UNSET))
        if type_ != "CONCATENATION" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'CONCATENATION', got '{type_}'")

        concatenation_input = cls(
            datasets=datasets,
            data_type=data_type,
            type_=type_,
        )

        return concatenation_input
