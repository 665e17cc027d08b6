from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="BatchsizeConf")


@_attrs_define
class BatchsizeConf:
    """
    Attributes:
        max_per_device_train_batch_size (int): The most one device can hold.
        total_train_batch_size (int): processes x per-device batch size x accumulation
        per_device_eval_batch_size (int | None | Unset): null: the resolved per-device training batch size.
    """

    max_per_device_train_batch_size: int
    total_train_batch_size: int
    per_device_eval_batch_size: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        max_per_device_train_batch_size = self.max_per_device_train_batch_size

        total_train_batch_size = self.total_train_batch_size

        per_device_eval_batch_size: int | None | Unset
        if isinstance(self.per_device_eval_batch_size, Unset):
            per_device_eval_batch_size = UNSET
        else:
            per_device_eval_batch_size = self.per_device_eval_batch_size

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "max_per_device_train_batch_size": max_per_device_train_batch_size,
                "total_train_batch_size": total_train_batch_size,
            }
        )
        if per_device_eval_batch_size is not UNSET:
            field_dict["per_device_eval_batch_size"] = per_device_eval_batch_size

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        max_per_device_train_batch_size = d.pop("max_per_device_train_batch_size")

        total_train_batch_size = d.pop("total_train_batch_size")

        def _parse_per_device_eval_batch_size(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        per_device_eval_batch_size = _parse_per_device_eval_batch_size(d.pop("per_device_eval_batch_size", UNSET))

        batchsize_conf = cls(
            max_per_device_train_batch_size=max_per_device_train_batch_size,
            total_train_batch_size=total_train_batch_size,
            per_device_eval_batch_size=per_device_eval_batch_size,
        )

        return batchsize_conf
