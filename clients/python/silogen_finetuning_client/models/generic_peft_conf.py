from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.generic_peft_conf_peft_type import GenericPeftConfPeftType, check_generic_peft_conf_peft_type
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.generic_peft_conf_peft_kwargs import GenericPeftConfPeftKwargs


T = TypeVar("T", bound="GenericPeftConf")


@_attrs_define
class GenericPeftConf:
    """A new adapter of any PEFT type; ``peft_kwargs`` go to the matching PEFT config class.

    Attributes:
        peft_type (GenericPeftConfPeftType):
        peft_kwargs (GenericPeftConfPeftKwargs | Unset):
        task_type (str | Unset):  Default: 'CAUSAL_LM'.
    """

    peft_type: GenericPeftConfPeftType
    peft_kwargs: GenericPeftConfPeftKwargs | Unset = UNSET
    task_type: str | Unset = "CAUSAL_LM"

    def to_dict(self) -> dict[str, Any]:
        peft_type: str = self.peft_type

        peft_kwargs: dict[str, Any] | Unset = UNSET
        if not isinstance(self.peft_kwargs, Unset):
            peft_kwargs = self.peft_kwargs.to_dict()

        task_type = self.task_type

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "peft_type": peft_type,
            }
        )
        if peft_kwargs is not UNSET:
            field_dict["peft_kwargs"] = peft_kwargs
        if task_type is not UNSET:
            field_dict["task_type"] = task_type

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.generic_peft_conf_peft_kwargs import GenericPeftConfPeftKwargs  # noqa: PLC0415

        d = dict(src_dict)
        peft_type = check_generic_peft_conf_peft_type(d.pop("peft_type"))

        _peft_kwargs = d.pop("peft_kwargs", UNSET)
        peft_kwargs: GenericPeftConfPeftKwargs | Unset
        if isinstance(_peft_kwargs, Unset):
            peft_kwargs = UNSET
        else:
            peft_kwargs = GenericPeftConfPeftKwargs.from_dict(_peft_kwargs)

        task_type = d.pop("task_type", UNSET)

        generic_peft_conf = cls(
            peft_type=peft_type,
            peft_kwargs=peft_kwargs,
            task_type=task_type,
        )

        return generic_peft_conf
