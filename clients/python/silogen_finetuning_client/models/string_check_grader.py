from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.string_check_grader_operation import StringCheckGraderOperation, check_string_check_grader_operation
from ..types import UNSET, Unset

T = TypeVar("T", bound="StringCheckGrader")


@_attrs_define
class StringCheckGrader:
    """1 when the answer passes a string comparison with the reference, else 0.

    Attributes:
        name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
            digits, _ or - (64 at most).
        operation (StringCheckGraderOperation): equals, not_equals, contains, not_contains (the reference in the
            answer), starts_with, ends_with, or regex (the reference is a pattern searched for anywhere in the answer;
            anchor it with ^ and $ to match the whole answer).
        reference (str): The text to compare with (for regex: the pattern). {{item.FIELD}} is replaced by that field of
            the data row, e.g. '{{item.answer}}'.
        case_sensitive (bool | Unset):  Default: True.
        strip (bool | Unset): Compare without leading and trailing whitespace. Default: True.
        type_ (Literal['string_check'] | Unset):  Default: 'string_check'.
        weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
            inside multi, in the weighted sum. Default: 1.0.
    """

    name: str
    operation: StringCheckGraderOperation
    reference: str
    case_sensitive: bool | Unset = True
    strip: bool | Unset = True
    type_: Literal["string_check"] | Unset = "string_check"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        operation: str = self.operation

        reference = self.reference

        case_sensitive = self.case_sensitive

        strip = self.strip

        type_ = self.type_

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "operation": operation,
                "reference": reference,
            }
        )
        if case_sensitive is not UNSET:
            field_dict["case_sensitive"] = case_sensitive
        if strip is not UNSET:
            field_dict["strip"] = strip
        if type_ is not UNSET:
            field_dict["type"] = type_
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        operation = check_string_check_grader_operation(d.pop("operation"))

        reference = d.pop("reference")

        case_sensitive = d.pop("case_sensitive", UNSET)

        strip = d.pop("strip", UNSET)

        type_ = cast(Literal["string_check"] | Unset, d.pop("type", UNSET))
        if type_ != "string_check" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'string_check', got '{type_}'")

        weight = d.pop("weight", UNSET)

        string_check_grader = cls(
            name=name,
            operation=operation,
            reference=reference,
            case_sensitive=case_sensitive,
            strip=strip,
            type_=type_,
            weight=weight,
        )

        return string_check_grader
