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
        apply_chat_template (bool | Unset): false (the default, as in the original engine): input is sent as given, a
            raw continuation. true: input is rendered as one user turn with the tokenizer's chat template and the generation
            prompt. Default: False.
        input_ (str | Unset):  Default: ''.
        num_samples (int | Unset):  Default: 1.
        type_ (Literal['open-input'] | Unset):  Default: 'open-input'.
    """

    apply_chat_template: bool | Unset = False
    input_: str | Unset = ""
    num_samples: int | Unset = 1
    type_: Literal["open-input"] | Unset = "open-input"

    def to_dict(self) -> dict[str, Any]:
        apply_chat_template = self.apply_chat_template

        input_ = self.input_

        num_samples = self.num_samples

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if apply_chat_template is not UNSET:
            field_dict["apply_chat_template"] = apply_chat_template
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
        apply_chat_template = d.pop("apply_chat_template", UNSET)

        input_ = d.pop("input", UNSET)

        num_samples = d.pop("num_samples", UNSET)

        type_ = cast(Literal["open-input"] | Unset, d.pop("type", UNSET))
        if type_ != "open-input" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'open-input', got '{type_}'")

        open_input_prompt = cls(
            apply_chat_template=apply_chat_template,
            input_=input_,
            num_samples=num_samples,
            type_=type_,
        )

        return open_input_prompt
