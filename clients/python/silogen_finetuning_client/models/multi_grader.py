from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.multi_grader_aggregate import MultiGraderAggregate, check_multi_grader_aggregate
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.json_schema_grader import JsonSchemaGrader
    from ..models.length_grader import LengthGrader
    from ..models.number_match_grader import NumberMatchGrader
    from ..models.string_check_grader import StringCheckGrader
    from ..models.text_similarity_grader import TextSimilarityGrader


T = TypeVar("T", bound="MultiGrader")


@_attrs_define
class MultiGrader:
    """Several graders as one reward: the weighted sum of their rewards (each sub-grader's ``weight``), or the
    lowest of them (every check must pass). Each sub-grader's mean is reported too (rewards/<name>/<sub>/mean).

        Attributes:
            graders (list[JsonSchemaGrader | LengthGrader | NumberMatchGrader | StringCheckGrader | TextSimilarityGrader]):
            name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
                digits, _ or - (64 at most).
            aggregate (MultiGraderAggregate | Unset):  Default: 'weighted_sum'.
            type_ (Literal['multi'] | Unset):  Default: 'multi'.
            weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
                inside multi, in the weighted sum. Default: 1.0.
    """

    graders: list[JsonSchemaGrader | LengthGrader | NumberMatchGrader | StringCheckGrader | TextSimilarityGrader]
    name: str
    aggregate: MultiGraderAggregate | Unset = "weighted_sum"
    type_: Literal["multi"] | Unset = "multi"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        from ..models.json_schema_grader import JsonSchemaGrader  # noqa: PLC0415
        from ..models.number_match_grader import NumberMatchGrader  # noqa: PLC0415
        from ..models.string_check_grader import StringCheckGrader  # noqa: PLC0415
        from ..models.text_similarity_grader import TextSimilarityGrader  # noqa: PLC0415

        graders = []
        for graders_item_data in self.graders:
            graders_item: dict[str, Any]
            if isinstance(graders_item_data, StringCheckGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, NumberMatchGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, JsonSchemaGrader):
                graders_item = graders_item_data.to_dict()
            elif isinstance(graders_item_data, TextSimilarityGrader):
                graders_item = graders_item_data.to_dict()
            else:
                graders_item = graders_item_data.to_dict()

            graders.append(graders_item)

        name = self.name

        aggregate: str | Unset = UNSET
        if not isinstance(self.aggregate, Unset):
            aggregate = self.aggregate

        type_ = self.type_

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "graders": graders,
                "name": name,
            }
        )
        if aggregate is not UNSET:
            field_dict["aggregate"] = aggregate
        if type_ is not UNSET:
            field_dict["type"] = type_
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.json_schema_grader import JsonSchemaGrader  # noqa: PLC0415
        from ..models.length_grader import LengthGrader  # noqa: PLC0415
        from ..models.number_match_grader import NumberMatchGrader  # noqa: PLC0415
        from ..models.string_check_grader import StringCheckGrader  # noqa: PLC0415
        from ..models.text_similarity_grader import TextSimilarityGrader  # noqa: PLC0415

        d = dict(src_dict)
        graders = []
        _graders = d.pop("graders")
        for graders_item_data in _graders:

            def _parse_graders_item(
                data: object,
            ) -> JsonSchemaGrader | LengthGrader | NumberMatchGrader | StringCheckGrader | TextSimilarityGrader:
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_0 = StringCheckGrader.from_dict(data)

                    return graders_item_type_0
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_1 = NumberMatchGrader.from_dict(data)

                    return graders_item_type_1
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_2 = JsonSchemaGrader.from_dict(data)

                    return graders_item_type_2
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                try:
                    if not isinstance(data, dict):
                        raise TypeError()
                    graders_item_type_3 = TextSimilarityGrader.from_dict(data)

                    return graders_item_type_3
                except (TypeError, ValueError, AttributeError, KeyError):
                    pass
                if not isinstance(data, dict):
                    raise TypeError()
                graders_item_type_4 = LengthGrader.from_dict(data)

                return graders_item_type_4

            graders_item = _parse_graders_item(graders_item_data)

            graders.append(graders_item)

        name = d.pop("name")

        _aggregate = d.pop("aggregate", UNSET)
        aggregate: MultiGraderAggregate | Unset
        if isinstance(_aggregate, Unset):
            aggregate = UNSET
        else:
            aggregate = check_multi_grader_aggregate(_aggregate)

        type_ = cast(Literal["multi"] | Unset, d.pop("type", UNSET))
        if type_ != "multi" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'multi', got '{type_}'")

        weight = d.pop("weight", UNSET)

        multi_grader = cls(
            graders=graders,
            name=name,
            aggregate=aggregate,
            type_=type_,
            weight=weight,
        )

        return multi_grader
