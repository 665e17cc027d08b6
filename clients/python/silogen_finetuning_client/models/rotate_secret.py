from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="RotateSecret")


@_attrs_define
class RotateSecret:
    """
    Attributes:
        keep_previous_seconds (int | Unset): How long the previous secret still signs (every request then carries both
            signatures), so receivers can switch without missing a webhook; 0 revokes it at once. Default: 86400.
    """

    keep_previous_seconds: int | Unset = 86400

    def to_dict(self) -> dict[str, Any]:
        keep_previous_seconds = self.keep_previous_seconds

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if keep_previous_seconds is not UNSET:
            field_dict["keep_previous_seconds"] = keep_previous_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        keep_previous_seconds = d.pop("keep_previous_seconds", UNSET)

        rotate_secret = cls(
            keep_previous_seconds=keep_previous_seconds,
        )

        return rotate_secret
