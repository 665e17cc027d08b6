"""``graders``: how a GRPO run scores each sampled answer, with built-in graders only (no user code).

Every grader gives a reward in [0, 1] for one answer (the text of the completion) and the data row it answers (its
reference fields, read through ``{{item.FIELD}}`` templates). A run's reward is the weighted sum of its graders'
rewards (``weight``); ``multi`` combines graders into one reward (a weighted sum or the minimum).

Everything that can be checked without data is checked here, when the config is validated (at submission, in the
API): regular expressions compile (with the ``regex`` module, the one that grades), JSON schemas are valid schemas,
names are unique. The grading itself is :mod:`finetuning.graders`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from finetuning.config.base import StrictModel

# {{item.answer}} / {{ item.answer }}: a field of the data row
TEMPLATE = re.compile(r"\{\{\s*item\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
GraderName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="Names the grader in the metrics (rewards/<name>/mean, /std) and in errors: a letter, then "
        "letters, digits, _ or - (64 at most).",
    ),
]
MAX_PATTERN_CHARS = 10_000


def template_fields(text: str) -> list[str]:
    """The data-row fields a reference template reads (``{{item.answer}}`` -> ``answer``), in order, once each."""
    return list(dict.fromkeys(TEMPLATE.findall(text)))


def regex_flags(case_sensitive: bool) -> int:
    import regex

    return regex.V0 | (0 if case_sensitive else regex.IGNORECASE)


def compile_pattern(pattern: str, case_sensitive: bool) -> Any:
    """``pattern`` compiled by the ``regex`` module (the grader's; its matches can time out); ValueError if invalid."""
    import regex

    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the pattern is {len(pattern)} characters long; {MAX_PATTERN_CHARS} at most")
    try:
        return regex.compile(pattern, regex_flags(case_sensitive))
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


class _Grader(StrictModel):
    name: GraderName
    weight: float = Field(
        default=1.0,
        description="The grader's weight: in the run's reward (the weighted sum of its graders' rewards) or, inside "
        "multi, in the weighted sum.",
    )

    def fields(self) -> list[str]:
        """The data-row fields this grader reads (every row must have them)."""
        return []


StringOperation = Literal["equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with", "regex"]


class StringCheckGrader(_Grader):
    """1 when the answer passes a string comparison with the reference, else 0."""

    type: Literal["string_check"] = "string_check"
    operation: StringOperation = Field(
        description="equals, not_equals, contains, not_contains (the reference in the answer), starts_with, "
        "ends_with, or regex (the reference is a pattern searched for anywhere in the answer; anchor it with ^ and "
        "$ to match the whole answer)."
    )
    reference: str = Field(
        description="The text to compare with (for regex: the pattern). {{item.FIELD}} is replaced by that field of "
        "the data row, e.g. '{{item.answer}}'."
    )
    case_sensitive: bool = True
    strip: bool = Field(default=True, description="Compare without leading and trailing whitespace.")

    def fields(self) -> list[str]:
        return template_fields(self.reference)

    @model_validator(mode="after")
    def _pattern_compiles(self) -> StringCheckGrader:
        # a pattern that depends on the row is compiled when the data is read (the engine checks every row first)
        if self.operation == "regex" and not self.fields():
            try:
                compile_pattern(self.reference, self.case_sensitive)
            except ValueError as exc:
                raise ValueError(f"grader {self.name!r}: {exc}") from None
        return self


class NumberMatchGrader(_Grader):
    """1 when the last number in the answer equals the reference within the tolerances, else 0 (also when the answer
    has no number). Numbers may have a sign, thousands commas, decimals and an exponent (-1,234.5e3)."""

    type: Literal["number_match"] = "number_match"
    reference: str | float = Field(
        description="The expected number, or a template that gives it from the row, e.g. '{{item.answer}}'."
    )
    abs_tolerance: float = Field(default=0.0, ge=0.0, description="|answer - reference| <= abs_tolerance passes.")
    rel_tolerance: float = Field(
        default=0.0, ge=0.0, description="|answer - reference| <= rel_tolerance * |reference| passes."
    )

    def fields(self) -> list[str]:
        return template_fields(self.reference) if isinstance(self.reference, str) else []

    @model_validator(mode="after")
    def _literal_is_a_number(self) -> NumberMatchGrader:
        if isinstance(self.reference, str) and not self.fields():
            try:
                float(self.reference.replace(",", ""))
            except ValueError:
                raise ValueError(
                    f"grader {self.name!r}: reference {self.reference!r} is neither a number nor a template such "
                    "as '{{item.answer}}'"
                ) from None
        return self


class JsonSchemaGrader(_Grader):
    """1 when the answer is JSON (a surrounding Markdown code fence is allowed) that validates against the schema;
    ``partial_credit`` when it is JSON but fails the schema; 0 when it is not JSON."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12 unless its $schema names another); remote $refs are not fetched.",
    )
    partial_credit: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _schema_is_valid(self) -> JsonSchemaGrader:
        from finetuning.graders import schema_problem

        problem = schema_problem(self.json_schema)
        if problem:
            raise ValueError(f"grader {self.name!r}: {problem}")
        return self


SimilarityMetric = Literal["fuzzy_ratio", "token_set_ratio", "levenshtein", "rouge_1", "rouge_l", "bleu", "chrf"]


class TextSimilarityGrader(_Grader):
    """How close the answer is to the reference, from 0 (nothing alike) to 1 (the same), by ``metric``:
    fuzzy_ratio (rapidfuzz's ratio: 1 - normalised InDel distance), token_set_ratio (word sets, order ignored),
    levenshtein (1 - normalised edit distance), rouge_1 (F1 of shared words), rouge_l (F1 of the longest common
    word subsequence), bleu (sacrebleu's sentence BLEU, exponential smoothing), chrf (sacrebleu's character n-gram
    F-score)."""

    type: Literal["text_similarity"] = "text_similarity"
    metric: SimilarityMetric = "fuzzy_ratio"
    reference: str = Field(description="The reference text; {{item.FIELD}} is replaced by that field of the row.")
    case_sensitive: bool = True
    pass_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Null: the similarity is the reward. A number: the reward is 1 at or above it, else 0.",
    )

    def fields(self) -> list[str]:
        return template_fields(self.reference)


class LengthGrader(_Grader):
    """1 when the answer's length is within [min_length, max_length]; outside, falling linearly to 0 at ``falloff``
    units beyond the range (0: straight to 0)."""

    type: Literal["length"] = "length"
    unit: Literal["characters", "words", "tokens"] = Field(
        default="characters", description="tokens: the completion's tokens as generated."
    )
    min_length: int = Field(default=0, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    falloff: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _range(self) -> LengthGrader:
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(
                f"grader {self.name!r}: max_length ({self.max_length}) is below min_length ({self.min_length})"
            )
        return self


SubGrader = Annotated[
    StringCheckGrader | NumberMatchGrader | JsonSchemaGrader | TextSimilarityGrader | LengthGrader,
    Field(discriminator="type"),
]


class MultiGrader(_Grader):
    """Several graders as one reward: the weighted sum of their rewards (each sub-grader's ``weight``), or the
    lowest of them (every check must pass). Each sub-grader's mean is reported too (rewards/<name>/<sub>/mean)."""

    type: Literal["multi"] = "multi"
    graders: list[SubGrader] = Field(min_length=1)
    aggregate: Literal["weighted_sum", "min"] = "weighted_sum"

    def fields(self) -> list[str]:
        return list(dict.fromkeys(field for grader in self.graders for field in grader.fields()))

    @field_validator("graders")
    @classmethod
    def _unique(cls, graders: list[Any]) -> list[Any]:
        _check_unique([g.name for g in graders])
        return graders


Grader = Annotated[
    StringCheckGrader | NumberMatchGrader | JsonSchemaGrader | TextSimilarityGrader | LengthGrader | MultiGrader,
    Field(discriminator="type"),
]


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two graders are named {name!r}: give each its own name")
        seen.add(name)


def check_unique_names(graders: list[Any]) -> list[Any]:
    _check_unique([g.name for g in graders])
    return graders
