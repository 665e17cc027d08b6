from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.length_grader_unit import LengthGraderUnit, check_length_grader_unit
from ..types import UNSET, Unset

T = TypeVar("T", bound="LengthGrader")


@_attrs_define
class LengthGrader:
    """1 when the answer's length is within [min_length, max_length]; outside, falling linearly to 0 at ``falloff``
    units beyond the range (0: straight to 0).

        Attributes:
            name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
                digits, _ or - (64 at most).
            falloff (float | Unset):  Default: 0.0.
            max_length (int | None | Unset):
            min_length (int | Unset):  Default: 0.
            type_ (Literal['length'] | Unset):  Default: 'length'.
            unit (LengthGraderUnit | Unset): tokens: the completion's tokens as generated. Default: 'characters'.
            weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
                inside multi, in the weighted sum. Default: 1.0.
    """

    name: str
    falloff: float | Unset = 0.0
    max_length: int | None | Unset = UNSET
    min_length: int | Unset = 0
    type_: Literal["length"] | Unset = "length"
    unit: LengthGraderUnit | Unset = "characters"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        falloff = self.falloff

        max_length: int | None | Unset
        if isinstance(self.max_length, Unset):
            max_length = UNSET
        else:
            max_length = self.max_length

        min_length = self.min_length

        type_ = self.type_

        unit: str | Unset = UNSET
        if not isinstance(self.unit, Unset):
            unit = self.unit

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )
        if falloff is not UNSET:
            field_dict["falloff"] = falloff
        if max_length is not UNSET:
            field_dict["max_length"] = max_length
        if min_length is not UNSET:
            field_dict["min_length"] = min_length
        if type_ is not UNSET:
            field_dict["type"] = type_
        if unit is not UNSET:
            field_dict["unit"] = unit
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        falloff = d.pop("falloff", UNSET)

        def _parse_max_length(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_length = _parse_max_length(d.pop("max_length", UNSET))

        min_length = d.pop("min_length", UNSET)

        type_ = cast(Literal["length"] | Unset, d.pop("type", UNSET))
        if type_ != "length" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'length', got '{type_}'")

        _unit = d.pop("unit", UNSET)
        unit: LengthGraderUnit | Unset
        if isinstance(_unit, Unset):
            unit = UNSET
        else:
            unit = check_length_grader_unit(_unit)

        weight = d.pop("weight", UNSET)

        length_grader = cls(
            name=name,
            falloff=falloff,
            max_length=max_length,
            min_length=min_length,
            type_=type_,
            unit=unit,
            weight=weight,
        )

        return length_grader
