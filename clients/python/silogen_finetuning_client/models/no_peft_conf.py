from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NoPeftConf")


@_attrs_define
class NoPeftConf:
    """Full-parameter training.

    Attributes:
        peft_type (Literal['NO_PEFT'] | Unset):  Default: 'NO_PEFT'.
    """

    peft_type: Literal["NO_PEFT"] | Unset = "NO_PEFT"

    def to_dict(self) -> dict[str, Any]:
        peft_type = self.peft_type

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if peft_type is not UNSET:
            field_dict["peft_type"] = peft_type

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        peft_type = cast(Literal["NO_PEFT"] | Unset, d.pop("peft_type", UNSET))
        if peft_type != "NO_PEFT" and not isinstance(peft_type, Unset):
            raise ValueError(f"peft_type must match const 'NO_PEFT', got '{peft_type}'")

        no_peft_conf = cls(
            peft_type=peft_type,
        )

        return no_peft_conf
