from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="OpenInputPrompt")


@_attrs_define
class OpenInputPrompt:
    """
    Attributes:
        input_ (str | Unset):  Default: ''.
        num_samples (int | Unset):  Default: 1.
        type_ (Literal['open-input'] | Unset):  Default: 'open-input'.
    """

    input_: str | Unset = ""
    num_samples: int | Unset = 1
    type_: Literal["open-input"] | Unset = "open-input"

    def to_dict(self) -> dict[str, Any]:
        input_ = self.input_

        num_samples = self.num_samples

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if input_ is not UNSET:
            field_dict["input"] = input_
        if num_samples is not UNSET:
            field_dict["num_samples"] = num_samples
        if type_ is not UNSET:
            field_dict["type"] = type_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        input_ = d.pop("input", UNSET)

        num_samples = d.pop("num_samples", UNSET)

        type_ = cast(Literal["open-input"] | Unset, d.pop("type", UNSET))
        if type_ != "open-input" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'open-input', got '{type_}'")

        open_input_prompt = cls(
            input_=input_,
            num_samples=num_samples,
            type_=type_,
        )

        return open_input_prompt
