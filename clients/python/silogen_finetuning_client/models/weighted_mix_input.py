from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.data_type import DataType, check_data_type
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.weighted_dataset_ref import WeightedDatasetRef


T = TypeVar("T", bound="WeightedMixInput")


@_attrs_define
class WeightedMixInput:
    """Interleaved by weight until every dataset is used up (smaller ones are oversampled).

    Attributes:
        datasets (list[WeightedDatasetRef]):
        data_type (DataType | Unset):
        seed (int | Unset):  Default: 19851243.
        type_ (Literal['PRECOMPUTE_WEIGHTED_MIX'] | Unset):  Default: 'PRECOMPUTE_WEIGHTED_MIX'.
    """

    datasets: list[WeightedDatasetRef]
    data_type: DataType | Unset = UNSET
    seed: int | Unset = 19851243
    type_: Literal["PRECOMPUTE_WEIGHTED_MIX"] | Unset = "PRECOMPUTE_WEIGHTED_MIX"

    def to_dict(self) -> dict[str, Any]:
        datasets = []
        for datasets_item_data in self.datasets:
            datasets_item = datasets_item_data.to_dict()
            datasets.append(datasets_item)

        data_type: str | Unset = UNSET
        if not isinstance(self.data_type, Unset):
            data_type = self.data_type

        seed = self.seed

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "datasets": datasets,
            }
        )
        if data_type is not UNSET:
            field_dict["data_type"] = data_type
        if seed is not UNSET:
            field_dict["seed"] = seed
        if type_ is not UNSET:
            field_dict["type"] = type_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.weighted_dataset_ref import WeightedDatasetRef  # noqa: PLC0415

        d = dict(src_dict)
        datasets = []
        _datasets = d.pop("datasets")
        for datasets_item_data in _datasets:
            datasets_item = WeightedDatasetRef.from_dict(datasets_item_data)

            datasets.append(datasets_item)

        _data_type = d.pop("data_type", UNSET)
        data_type: DataType | Unset
        if isinstance(_data_type, Unset):
            data_type = UNSET
        else:
            data_type = check_data_type(_data_type)

        seed = d.pop("seed", UNSET)

        type_ = cast(Literal["PRECOMPUTE_WEIGHTED_MIX"] | Unset, d.pop("type", UNSET))
        if type_ != "PRECOMPUTE_WEIGHTED_MIX" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'PRECOMPUTE_WEIGHTED_MIX', got '{type_}'")

        weighted_mix_input = cls(
            datasets=datasets,
            data_type=data_type,
            seed=seed,
            type_=type_,
        )

        return weighted_mix_input
