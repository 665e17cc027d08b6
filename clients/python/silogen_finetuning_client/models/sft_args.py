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
        chunked_loss (bool | Unset): Compute the output projection and cross-entropy in chunks of tokens (each chunk's
            gradients computed with its logits), so the logits of the whole batch over a large vocabulary never exist at
            once. Skipped for models whose logits are post-processed (soft-capping, scaling), under FSDP/DeepSpeed, and when
            Liger kernels fuse the loss instead. Default: True.
        length_handling (SFTArgsLengthHandling | Unset): filter drops examples over max_seq_length; truncate cuts them.
            Default: 'filter'.
        max_seq_length (int | Unset):  Default: 2048.
        packing (bool | Unset): Pack examples into rows of max_seq_length tokens (best-fit decreasing) with position ids
            that restart per example, so attention never crosses examples and almost no compute goes to padding. Batch sizes
            then count packed rows, not examples. Used where the model's attention implementation isolates packed examples
            (sdpa, eager, flash and flex attention in transformers); false pads each batch instead. Default: True.
        save_name_if_new_basemodel (str | Unset):  Default: 'checkpoint-new-basemodel'.
        train_on_completions_only (bool | Unset):  Default: False.
    """

    chunked_loss: bool | Unset = True
    length_handling: SFTArgsLengthHandling | Unset = "filter"
    max_seq_length: int | Unset = 2048
    packing: bool | Unset = True
    save_name_if_new_basemodel: str | Unset = "checkpoint-new-basemodel"
    train_on_completions_only: bool | Unset = False

    def to_dict(self) -> dict[str, Any]:
        chunked_loss = self.chunked_loss

        length_handling: str | Unset = UNSET
        if not isinstance(self.length_handling, Unset):
            length_handling = self.length_handling

        max_seq_length = self.max_seq_length

        packing = self.packing

        save_name_if_new_basemodel = self.save_name_if_new_basemodel

        train_on_completions_only = self.train_on_completions_only

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if chunked_loss is not UNSET:
            field_dict["chunked_loss"] = chunked_loss
        if length_handling is not UNSET:
            field_dict["length_handling"] = length_handling
        if max_seq_length is not UNSET:
            field_dict["max_seq_length"] = max_seq_length
        if packing is not UNSET:
            field_dict["packing"] = packing
        if save_name_if_new_basemodel is not UNSET:
            field_dict["save_name_if_new_basemodel"] = save_name_if_new_basemodel
        if train_on_completions_only is not UNSET:
            field_dict["train_on_completions_only"] = train_on_completions_only

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        chunked_loss = d.pop("chunked_loss", UNSET)

        _length_handling = d.pop("length_handling", UNSET)
        length_handling: SFTArgsLengthHandling | Unset
        if isinstance(_length_handling, Unset):
            length_handling = UNSET
        else:
            length_handling = check_sft_args_length_handling(_length_handling)

        max_seq_length = d.pop("max_seq_length", UNSET)

        packing = d.pop("packing", UNSET)

        save_name_if_new_basemodel = d.pop("save_name_if_new_basemodel", UNSET)

        train_on_completions_only = d.pop("train_on_completions_only", UNSET)

        sft_args = cls(
            chunked_loss=chunked_loss,
            length_handling=length_handling,
            max_seq_length=max_seq_length,
            packing=packing,
            save_name_if_new_basemodel=save_name_if_new_basemodel,
            train_on_completions_only=train_on_completions_only,
        )

        return sft_args
