from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.lr_batch_size_scaling import LrBatchSizeScaling, check_lr_batch_size_scaling
from ..types import UNSET, Unset

T = TypeVar("T", bound="Overrides")


@_attrs_define
class Overrides:
    """
    Attributes:
        lr_batch_size_scaling (LrBatchSizeScaling | Unset):
        lr_multiplier (float | Unset):  Default: 1.0.
    """

    lr_batch_size_scaling: LrBatchSizeScaling | Unset = UNSET
    lr_multiplier: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        lr_batch_size_scaling: str | Unset = UNSET
        if not isinstance(self.lr_batch_size_scaling, Unset):
            lr_batch_size_scaling = self.lr_batch_size_scaling

        lr_multiplier = self.lr_multiplier

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if lr_batch_size_scaling is not UNSET:
            field_dict["lr_batch_size_scaling"] = lr_batch_size_scaling
        if lr_multiplier is not UNSET:
            field_dict["lr_multiplier"] = lr_multiplier

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _lr_batch_size_scaling = d.pop("lr_batch_size_scaling", UNSET)
        lr_batch_size_scaling: LrBatchSizeScaling | Unset
        if isinstance(_lr_batch_size_scaling, Unset):
            lr_batch_size_scaling = UNSET
        else:
            lr_batch_size_scaling = check_lr_batch_size_scaling(_lr_batch_size_scaling)

        lr_multiplier = d.pop("lr_multiplier", UNSET)

        overrides = cls(
            lr_batch_size_scaling=lr_batch_size_scaling,
            lr_multiplier=lr_multiplier,
        )

        return overrides
