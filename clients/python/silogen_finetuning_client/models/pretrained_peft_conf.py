from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PretrainedPeftConf")


@_attrs_define
class PretrainedPeftConf:
    """Continue training an existing adapter.

    Attributes:
        name_or_path (str):
        peft_type (Literal['PRETRAINED_PEFT'] | Unset):  Default: 'PRETRAINED_PEFT'.
    """

    name_or_path: str
    peft_type: Literal["PRETRAINED_PEFT"] | Unset = "PRETRAINED_PEFT"

    def to_dict(self) -> dict[str, Any]:
        name_or_path = self.name_or_path

        peft_type = self.peft_type

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name_or_path": name_or_path,
            }
        )
        if peft_type is not UNSET:
            field_dict["peft_type"] = peft_type

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name_or_path = d.pop("name_or_path")

        peft_type = cast(Literal["PRETRAINED_PEFT"] | Unset, d.pop("peft_type", UNSET))
        if peft_type != "PRETRAINED_PEFT" and not isinstance(peft_type, Unset):
            raise ValueError(f"peft_type must match const 'PRETRAINED_PEFT', got '{peft_type}'")

        pretrained_peft_conf = cls(
            name_or_path=name_or_path,
            peft_type=peft_type,
        )

        return pretrained_peft_conf
