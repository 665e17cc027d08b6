from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NumberMatchGrader")


@_attrs_define
class NumberMatchGrader:
    """1 when the last number in the answer equals the reference within the tolerances, else 0 (also when the answer
    has no number). Numbers may have a sign, thousands commas, decimals and an exponent (-1,234.5e3).

        Attributes:
            name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
                digits, _ or - (64 at most).
            reference (float | str): The expected number, or a template that gives it from the row, e.g. '{{item.answer}}'.
            abs_tolerance (float | Unset): |answer - reference| <= abs_tolerance passes. Default: 0.0.
            rel_tolerance (float | Unset): |answer - reference| <= rel_tolerance * |reference| passes. Default: 0.0.
            type_ (Literal['number_match'] | Unset):  Default: 'number_match'.
            weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
                inside multi, in the weighted sum. Default: 1.0.
    """

    name: str
    reference: float | str
    abs_tolerance: float | Unset = 0.0
    rel_tolerance: float | Unset = 0.0
    type_: Literal["number_match"] | Unset = "number_match"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        reference: float | str
        reference = self.reference

        abs_tolerance = self.abs_tolerance

        rel_tolerance = self.rel_tolerance

        type_ = self.type_

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "reference": reference,
            }
        )
        if abs_tolerance is not UNSET:
            field_dict["abs_tolerance"] = abs_tolerance
        if rel_tolerance is not UNSET:
            field_dict["rel_tolerance"] = rel_tolerance
        if type_ is not UNSET:
            field_dict["type"] = type_
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        def _parse_reference(data: object) -> float | str:
            return cast(float | str, data)

        reference = _parse_reference(d.pop("reference"))

        abs_tolerance = d.pop("abs_tolerance", UNSET)

        rel_tolerance = d.pop("rel_tolerance", UNSET)

        type_ = cast(Literal["number_match"] | Unset, d.pop("type", UNSET))
        if type_ != "number_match" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'number_match', got '{type_}'")

        weight = d.pop("weight", UNSET)

        number_match_grader = cls(
            name=name,
            reference=reference,
            abs_tolerance=abs_tolerance,
            rel_tolerance=rel_tolerance,
            type_=type_,
            weight=weight,
        )

        return number_match_grader
