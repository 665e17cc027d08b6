from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.plan_problem_row import PlanProblemRow
    from ..models.plan_problems_by_kind import PlanProblemsByKind


T = TypeVar("T", bound="PlanProblems")


@_attrs_define
class PlanProblems:
    """
    Attributes:
        by_kind (PlanProblemsByKind):
        rows (list[PlanProblemRow]): The first 1000, by file and line.
        total (int):
    """

    by_kind: PlanProblemsByKind
    rows: list[PlanProblemRow]
    total: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        by_kind = self.by_kind.to_dict()

        rows = []
        for rows_item_data in self.rows:
            rows_item = rows_item_data.to_dict()
            rows.append(rows_item)

        total = self.total

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "by_kind": by_kind,
                "rows": rows,
                "total": total,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_problem_row import PlanProblemRow  # noqa: PLC0415
        from ..models.plan_problems_by_kind import PlanProblemsByKind  # noqa: PLC0415

        d = dict(src_dict)
        by_kind = PlanProblemsByKind.from_dict(d.pop("by_kind"))

        rows = []
        _rows = d.pop("rows")
        for rows_item_data in _rows:
            rows_item = PlanProblemRow.from_dict(rows_item_data)

            rows.append(rows_item)

        total = d.pop("total")

        plan_problems = cls(
            by_kind=by_kind,
            rows=rows,
            total=total,
        )

        plan_problems.additional_properties = d
        return plan_problems

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
