from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.json_schema_grader_schema import JsonSchemaGraderSchema


T = TypeVar("T", bound="JsonSchemaGrader")


@_attrs_define
class JsonSchemaGrader:
    """1 when the answer is JSON (a surrounding Markdown code fence is allowed) that validates against the schema;
    ``partial_credit`` when it is JSON but fails the schema; 0 when it is not JSON.

        Attributes:
            name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
                digits, _ or - (64 at most).
            schema (JsonSchemaGraderSchema): A JSON Schema (draft 2020-12 unless its $schema names another); remote $refs
                are not fetched.
            partial_credit (float | Unset):  Default: 0.0.
            type_ (Literal['json_schema'] | Unset):  Default: 'json_schema'.
            weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
                inside multi, in the weighted sum. Default: 1.0.
    """

    name: str
    schema: JsonSchemaGraderSchema
    partial_credit: float | Unset = 0.0
    type_: Literal["json_schema"] | Unset = "json_schema"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        schema = self.schema.to_dict()

        partial_credit = self.partial_credit

        type_ = self.type_

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "schema": schema,
            }
        )
        if partial_credit is not UNSET:
            field_dict["partial_credit"] = partial_credit
        if type_ is not UNSET:
            field_dict["type"] = type_
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.json_schema_grader_schema import JsonSchemaGraderSchema  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        schema = JsonSchemaGraderSchema.from_dict(d.pop("schema"))

        partial_credit = d.pop("partial_credit", UNSET)

        type_ = cast(Literal["json_schema"] | Unset, d.pop("type", UNSET))
        if type_ != "json_schema" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'json_schema', got '{type_}'")

        weight = d.pop("weight", UNSET)

        json_schema_grader = cls(
            name=name,
            schema=schema,
            partial_credit=partial_credit,
            type_=type_,
            weight=weight,
        )

        return json_schema_grader
