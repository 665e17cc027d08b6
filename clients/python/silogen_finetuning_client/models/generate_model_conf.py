from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.model_args import ModelArgs


T = TypeVar("T", bound="GenerateModelConf")


@_attrs_define
class GenerateModelConf:
    """
    Attributes:
        model (str):
        adapter (None | str | Unset):
        model_args (ModelArgs | Unset): Keyword arguments for ``AutoModelForCausalLM.from_pretrained``; other keys pass
            through unchanged.
        tokenizer (None | str | Unset): Defaults to the adapter if set, else the model.
    """

    model: str
    adapter: None | str | Unset = UNSET
    model_args: ModelArgs | Unset = UNSET
    tokenizer: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        model = self.model

        adapter: None | str | Unset
        if isinstance(self.adapter, Unset):
            adapter = UNSET
        else:
            adapter = self.adapter

        model_args: dict[str, Any] | Unset = UNSET
        if not isinstance(self.model_args, Unset):
            model_args = self.model_args.to_dict()

        tokenizer: None | str | Unset
        if isinstance(self.tokenizer, Unset):
            tokenizer = UNSET
        else:
            tokenizer = self.tokenizer

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model": model,
            }
        )
        if adapter is not UNSET:
            field_dict["adapter"] = adapter
        if model_args is not UNSET:
            field_dict["model_args"] = model_args
        if tokenizer is not UNSET:
            field_dict["tokenizer"] = tokenizer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.model_args import ModelArgs  # noqa: PLC0415

        d = dict(src_dict)
        model = d.pop("model")

        def _parse_adapter(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        adapter = _parse_adapter(d.pop("adapter", UNSET))

        _model_args = d.pop("model_args", UNSET)
        model_args: ModelArgs | Unset
        if isinstance(_model_args, Unset):
            model_args = UNSET
        else:
            model_args = ModelArgs.from_dict(_model_args)

        def _parse_tokenizer(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tokenizer = _parse_tokenizer(d.pop("tokenizer", UNSET))

        generate_model_conf = cls(
            model=model,
            adapter=adapter,
            model_args=model_args,
            tokenizer=tokenizer,
        )

        return generate_model_conf
