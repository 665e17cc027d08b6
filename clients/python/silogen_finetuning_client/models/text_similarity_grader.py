from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.text_similarity_grader_metric import TextSimilarityGraderMetric, check_text_similarity_grader_metric
from ..types import UNSET, Unset

T = TypeVar("T", bound="TextSimilarityGrader")


@_attrs_define
class TextSimilarityGrader:
    """How close the answer is to the reference, from 0 (nothing alike) to 1 (the same), by ``metric``:
    fuzzy_ratio (rapidfuzz's ratio: 1 - normalised InDel distance), token_set_ratio (word sets, order ignored),
    levenshtein (1 - normalised edit distance), rouge_1 (F1 of shared words), rouge_l (F1 of the longest common
    word subsequence), bleu (sacrebleu's sentence BLEU, exponential smoothing), chrf (sacrebleu's character n-gram
    F-score).

        Attributes:
            name (str): Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then letters,
                digits, _ or - (64 at most).
            reference (str): The reference text; {{item.FIELD}} is replaced by that field of the row.
            case_sensitive (bool | Unset):  Default: True.
            metric (TextSimilarityGraderMetric | Unset):  Default: 'fuzzy_ratio'.
            pass_threshold (float | None | Unset): Null: the similarity is the reward. A number: the reward is 1 at or above
                it, else 0.
            type_ (Literal['text_similarity'] | Unset):  Default: 'text_similarity'.
            weight (float | Unset): The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or,
                inside multi, in the weighted sum. Default: 1.0.
    """

    name: str
    reference: str
    case_sensitive: bool | Unset = True
    metric: TextSimilarityGraderMetric | Unset = "fuzzy_ratio"
    pass_threshold: float | None | Unset = UNSET
    type_: Literal["text_similarity"] | Unset = "text_similarity"
    weight: float | Unset = 1.0

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        reference = self.reference

        case_sensitive = self.case_sensitive

        metric: str | Unset = UNSET
        if not isinstance(self.metric, Unset):
            metric = self.metric

        pass_threshold: float | None | Unset
        if isinstance(self.pass_threshold, Unset):
            pass_threshold = UNSET
        else:
            pass_threshold = self.pass_threshold

        type_ = self.type_

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "reference": reference,
            }
        )
        if case_sensitive is not UNSET:
            field_dict["case_sensitive"] = case_sensitive
        if metric is not UNSET:
            field_dict["metric"] = metric
        if pass_threshold is not UNSET:
            field_dict["pass_threshold"] = pass_threshold
        if type_ is not UNSET:
            field_dict["type"] = type_
        if weight is not UNSET:
            field_dict["weight"] = weight

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        reference = d.pop("reference")

        case_sensitive = d.pop("case_sensitive", UNSET)

        _metric = d.pop("metric", UNSET)
        metric: TextSimilarityGraderMetric | Unset
        if isinstance(_metric, Unset):
            metric = UNSET
        else:
            metric = check_text_similarity_grader_metric(_metric)

        def _parse_pass_threshold(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        pass_threshold = _parse_pass_threshold(d.pop("pass_threshold", UNSET))

        type_ = cast(Literal["text_similarity"] | Unset, d.pop("type", UNSET))
        if type_ != "text_similarity" and not isinstance(type_, Unset):
            raise ValueError(f"type must match const 'text_similarity', got '{type_}'")

        weight = d.pop("weight", UNSET)

        text_similarity_grader = cls(
            name=name,
            reference=reference,
            case_sensitive=case_sensitive,
            metric=metric,
            pass_threshold=pass_threshold,
            type_=type_,
            weight=weight,
        )

        return text_similarity_grader
