from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.eval_data_ref import EvalDataRef


T = TypeVar("T", bound="EvalDataPrompt")


@_attrs_define
class EvalDataPrompt:
    """
    Attributes:
        data (EvalDataRef):
        type_ (Literal['eval-data'] | Unset):  Default: 'eval-data'.
    """

    data: EvalDataRef
    type_: Literal["eval-data"] | Unset = "eval-data"

    def to_dict(self) -> dict[str, Any]:
        data = self.data.to_dict()

        type_ = self.type_

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "data": data,
            }
        )
        if type_ is not UNSET:
            field_dict["type"] = type_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.eval_data_ref import EvalDataRef  # noqa: PLC0415

        d = dict(src_dict)
        data = EvalDataRef.from_dict(d.pop("data"))

        type_ = cast(Literal["eval-data"] | Unset, d.pop("type", UNSET))
        if type_ != "eval-data" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'eval-data', got '{type_}'")

        eval_data_prompt = cls(
            data=data,
            type_=type_,
        )

        return eval_data_prompt
