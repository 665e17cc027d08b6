from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.sft_args_length_handling import SFTArgsLengthHandling, check_sft_args_length_handling
from ..types import UNSET, Unset

T = TypeVar("T", bound="SFTArgs")


@_attrs_define
class SFTArgs:
    """
    Attributes:
        length_handling (SFTArgsLengthHandling | Unset): filter drops examples over max_seq_length; truncate cuts them.
            Default: 'filter'.
        max_seq_length (int | Unset):  Default: 2048.
        save_name_if_new_basemodel (str | Unset):  Default: 'checkpoint-new-basemodel'.
        train_on_completions_only (bool | Unset):  Default: False.
    """

    length_handling: SFTArgsLengthHandling | Unset = "filter"
    max_seq_length: int | Unset = 2048
    save_name_if_new_basemodel: str | Unset = "checkpoint-new-basemodel"
    train_on_completions_only: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        length_handling: str | Unset = UNSET
        if not isinstance(self.length_handling, Unset):
            length_handling = self.length_handling

        max_seq_length = self.max_seq_length

        save_name_if_new_basemodel = self.save_name_if_new_basemodel

        train_on_completions_only = self.train_on_completions_only

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if length_handling is not UNSET:
            field_dict["length_handling"] = length_handling
        if max_seq_length is not UNSET:
            field_dict["max_seq_length"] = max_seq_length
        if save_name_if_new_basemodel is not UNSET:
            field_dict["save_name_if_new_basemodel"] = save_name_if_new_basemodel
        if train_on_completions_only is not UNSET:
            field_dict["train_on_completions_only"] = train_on_completions_only

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _length_handling = d.pop("length_handling", UNSET)
        length_handling: SFTArgsLengthHandling | Unset
        if isinstance(_length_handling, Unset):
            length_handling = UNSET
        else:
            length_handling = check_sft_args_length_handling(_length_handling)

        max_seq_length = d.pop("max_seq_length", UNSET)

        save_name_if_new_basemodel = d.pop("save_name_if_new_basemodel", UNSET)

        train_on_completions_only = d.pop("train_on_completions_only", UNSET)

        sft_args = cls(
            length_handling=length_handling,
            max_seq_length=max_seq_length,
            save_name_if_new_basemodel=save_name_if_new_basemodel,
            train_on_completions_only=train_on_completions_only,
        )

        return sft_args
