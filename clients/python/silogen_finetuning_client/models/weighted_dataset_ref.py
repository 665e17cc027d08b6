from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="WeightedDatasetRef")


@_attrs_define
class WeightedDatasetRef:
    """
    Attributes:
        path (str): A JSONL file or a JSON array of records.
        sampling_weight (float | Unset): Relative sampling weight; 0 skips the dataset. All 1.0 gives a strict round-
            robin. Default: 1.0.
    """

    path: str
    sampling_weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        path = self.path

        sampling_weight = self.sampling_weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "path": path,
            }
        )
        if sampling_weight is not UNSET:
            field_dict["sampling_weight"] = sampling_weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        path = d.pop("path")

        sampling_weight = d.pop("sampling_weight", UNSET)

        weighted_dataset_ref = cls(
            path=path,
            sampling_weight=sampling_weight,
        )

        return weighted_dataset_ref
