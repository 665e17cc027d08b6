from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NoQuantizationConf")


@_attrs_define
class NoQuantizationConf:
    """
    Attributes:
        quantization_type (Literal['no-quantization'] | Unset):  Default: 'no-quantization'.
    """

    quantization_type: Literal["no-quantization"] | Unset = "no-quantization"

    def to_dict(self) -> dict[str, Any]:
        quantization_type = self.quantization_type

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if quantization_type is not UNSET:
            field_dict["quantization_type"] = quantization_type

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        quantization_type = cast(Literal["no-quantization"] | Unset, d.pop("quantization_type", UNSET))
        if quantization_type != "no-quantization" and not isinstance(quantization_type, Unset):
            raise ValueError(f"quantization_type must match const 'no-quantization', got '{quantization_type}'")

        no_quantization_conf = cls(
            quantization_type=quantization_type,
        )

        return no_quantization_conf
