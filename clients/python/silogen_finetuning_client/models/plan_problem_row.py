from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="PlanProblemRow")


@_attrs_define
class PlanProblemRow:
    """
    Attributes:
        file (str):
        kind (str): not_json, not_utf8, not_an_object, bad_role, invalid_record, template_error, missing_chosen,
            missing_rejected, empty_assistant_turn, no_assistant_turn, too_long_filtered, truncated, prompt_truncated,
            completion_truncated.
        line (int | None): 1-based line of the record (JSONL), or where its JSON array element starts.
        reason (str):
        skipped (bool): A bad row: the run skips it (within data_conf.max_bad_rows) or fails on it.
    """

    file: str
    kind: str
    line: int | None
    reason: str
    skipped: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        file = self.file

        kind = self.kind

        line: int | None
        line = self.line

        reason = self.reason

        skipped = self.skipped

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "file": file,
                "kind": kind,
                "line": line,
                "reason": reason,
                "skipped": skipped,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        file = d.pop("file")

        kind = d.pop("kind")

        def _parse_line(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        line = _parse_line(d.pop("line"))

        reason = d.pop("reason")

        skipped = d.pop("skipped")

        plan_problem_row = cls(
            file=file,
            kind=kind,
            line=line,
            reason=reason,
            skipped=skipped,
        )

        plan_problem_row.additional_properties = d
        return plan_problem_row

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
