"""The built-in graders of GRPO runs: pure, deterministic functions from (grader config, answer, data row) to a
reward in [0, 1]; their configs are :mod:`finetuning.config.graders`.

Bounded per answer: an answer is graded on its first :data:`MAX_ANSWER_CHARS` characters; a regular expression
(``string_check`` with ``operation: regex``, a JSON schema's ``pattern``) runs in the ``regex`` module with a
:data:`REGEX_TIMEOUT_S` time limit, so a pattern that backtracks catastrophically scores 0 for that answer instead of
hanging the worker; JSON nesting beyond the parser's recursion limit is "not JSON". Nothing here reads files, the
network or the clock (the regex limit aside).

Importing this module needs only the standard library; ``regex``, ``jsonschema`` and ``rapidfuzz`` are imported by
the graders that use them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetuning.config.graders import (
    TEMPLATE,
    JsonSchemaGrader,
    LengthGrader,
    MultiGrader,
    NumberMatchGrader,
    StringCheckGrader,
    TextSimilarityGrader,
    compile_pattern,
)

MAX_ANSWER_CHARS = 20_000
"""Characters of an answer that are graded (the rest is ignored): bounds every grader's time and memory."""
REGEX_TIMEOUT_S = 0.25
"""Seconds one regular-expression search may take before it counts as no match."""

# a number: a sign (not one between digits: 3-4 ends with 4), digits (with thousands commas), decimals, exponent
_NUMBER = re.compile(r"(?:(?<![\w.])[-+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)
_WORD = re.compile(r"\w+")

AnyGrader = StringCheckGrader | NumberMatchGrader | JsonSchemaGrader | TextSimilarityGrader | LengthGrader


class GradingError(ValueError):
    """A data row a grader cannot read (a missing field, a reference that is not a number): a data error, found
    before training by :func:`row_problem`."""


@dataclass(frozen=True)
class Grade:
    """One answer's reward, and for ``multi`` each sub-grader's reward by name."""

    reward: float
    parts: dict[str, float] = field(default_factory=dict)


def completion_text(completion: Any) -> str:
    """The answer's text: a plain completion as it is, a conversational one (TRL's list of messages) as the content
    of its messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        return "".join(str(m.get("content", "")) if isinstance(m, Mapping) else str(m) for m in completion)
    return str(completion)


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def render(template: str, item: Mapping[str, Any]) -> str:
    """``template`` with each ``{{item.FIELD}}`` replaced by that field of the row (GradingError if it is missing)."""

    def field_value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in item or item[name] is None:
            raise GradingError(f"the data row has no field {name!r}")
        return _field_text(item[name])

    return TEMPLATE.sub(field_value, template)


def grade(
    grader: AnyGrader | MultiGrader, answer: str, item: Mapping[str, Any], completion_tokens: int | None = None
) -> Grade:
    """``answer`` (the completion's text) graded against the data row ``item``; ``completion_tokens`` (the
    completion's length in tokens) is read by ``length`` graders counting tokens."""
    if isinstance(grader, MultiGrader):
        parts = {sub.name: _grade_one(sub, answer, item, completion_tokens) for sub in grader.graders}
        if grader.aggregate == "min":
            reward = min(parts.values())
        else:
            reward = math.fsum(sub.weight * parts[sub.name] for sub in grader.graders)
        return Grade(reward, parts)
    return Grade(_grade_one(grader, answer, item, completion_tokens))


def _grade_one(grader: AnyGrader, answer: str, item: Mapping[str, Any], completion_tokens: int | None) -> float:
    if isinstance(grader, LengthGrader):
        return _length(grader, answer, completion_tokens)
    text = answer[:MAX_ANSWER_CHARS]
    if isinstance(grader, StringCheckGrader):
        return _string_check(grader, text, item)
    if isinstance(grader, NumberMatchGrader):
        return _number_match(grader, text, item)
    if isinstance(grader, JsonSchemaGrader):
        return _json_schema(grader, text)
    return _text_similarity(grader, text, item)


# -- string_check ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str, case_sensitive: bool) -> Any:
    return compile_pattern(pattern, case_sensitive)


def regex_search(compiled: Any, text: str) -> bool:
    """Whether ``compiled`` (a ``regex`` pattern) occurs in ``text``; False when the search runs out of time."""
    try:
        return compiled.search(text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        return False


def _string_check(grader: StringCheckGrader, answer: str, item: Mapping[str, Any]) -> float:
    reference = render(grader.reference, item)
    if grader.strip:
        answer, reference = answer.strip(), reference.strip()
    if grader.operation == "regex":
        try:
            compiled = _pattern(reference, grader.case_sensitive)
        except ValueError as exc:
            raise GradingError(str(exc)) from None
        return float(regex_search(compiled, answer))
    if not grader.case_sensitive:
        answer, reference = answer.casefold(), reference.casefold()
    passed = {
        "equals": answer == reference,
        "not_equals": answer != reference,
        "contains": reference in answer,
        "not_contains": reference not in answer,
        "starts_with": answer.startswith(reference),
        "ends_with": answer.endswith(reference),
    }[grader.operation]
    return float(passed)


# -- number_match ---------------------------------------------------------------------------------------------------


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (``-1,234.5e3`` -> -1234500.0), or None when there is none."""
    found = None
    for found in _NUMBER.finditer(text):  # noqa: B007 (the last one is wanted)
        pass
    if found is None:
        return None
    try:
        value = float(found.group(0).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def reference_number(grader: NumberMatchGrader, item: Mapping[str, Any]) -> float:
    if not isinstance(grader.reference, str):
        return float(grader.reference)
    text = render(grader.reference, item).strip()
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise GradingError(f"the reference {text[:80]!r} is not a number") from None
    if not math.isfinite(value):
        raise GradingError(f"the reference {text[:80]!r} is not a finite number")
    return value


def _number_match(grader: NumberMatchGrader, answer: str, item: Mapping[str, Any]) -> float:
    expected = reference_number(grader, item)
    got = last_number(answer)
    if got is None:
        return 0.0
    allowed = max(grader.abs_tolerance, grader.rel_tolerance * abs(expected))
    return float(abs(got - expected) <= allowed)


# -- json_schema ----------------------------------------------------------------------------------------------------


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` cannot grade answers (None if it can): not a valid JSON Schema, a pattern the ``regex`` module
    cannot compile, patternProperties (its matching cannot be time-limited), or a $ref outside the schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        return f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    for key, value, where in _walk(schema, ""):
        if key == "patternProperties":
            return f"patternProperties ({where}) is not supported: use propertyNames with a pattern instead"
        if key == "pattern" and isinstance(value, str):
            try:
                compile_pattern(value, True)
            except ValueError as exc:
                return f"{where}: {exc}"
        if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
            return f"{where}: only references within the schema (#/...) are supported, not {value!r}"
    return None


def _walk(node: Any, where: str) -> Any:
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{where}/{key}"
            yield key, value, path
            yield from _walk(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


def _time_limited_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not regex_search(_pattern(pattern, True), instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r} (or took too long to match)")


@functools.lru_cache(maxsize=64)
def _schema_validator(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend, validator_for

    schema = json.loads(schema_json)
    base = validator_for(schema, default=Draft202012Validator)
    # the pattern keyword through the regex module with a time limit (jsonschema's own uses re, without one)
    return extend(base, {"pattern": _time_limited_pattern})(schema)


def parse_json_answer(answer: str) -> tuple[bool, Any]:
    """(True, the value) when ``answer`` is JSON (alone, or in a Markdown code fence), else (False, None)."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _json_schema(grader: JsonSchemaGrader, answer: str) -> float:
    parsed, value = parse_json_answer(answer)
    if not parsed:
        return 0.0
    validator = _schema_validator(json.dumps(grader.json_schema, sort_keys=True))
    try:
        valid = validator.is_valid(value)
    except RecursionError:
        valid = False
    return 1.0 if valid else grader.partial_credit


# -- text_similarity ------------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _f1(overlap: float, produced: int, expected: int) -> float:
    if produced == 0 and expected == 0:
        return 1.0
    if produced == 0 or expected == 0 or overlap == 0:
        return 0.0
    precision, recall = overlap / produced, overlap / expected
    return 2 * precision * recall / (precision + recall)


def similarity(metric: str, answer: str, reference: str) -> float:
    """How alike two texts are by ``metric`` (see :class:`TextSimilarityGrader`), in [0, 1]."""
    from rapidfuzz import fuzz
    from rapidfuzz.distance import Indel, LCSseq, Levenshtein

    if metric == "fuzzy_ratio":
        return float(Indel.normalized_similarity(answer, reference))
    if metric == "token_set_ratio":
        if not answer.strip() and not reference.strip():
            return 1.0
        return float(fuzz.token_set_ratio(answer, reference)) / 100.0
    if metric == "levenshtein":
        return float(Levenshtein.normalized_similarity(answer, reference))
    if metric in ("bleu", "chrf"):
        import sacrebleu

        if not answer.strip() and not reference.strip():
            return 1.0
        score = sacrebleu.sentence_bleu if metric == "bleu" else sacrebleu.sentence_chrf
        return float(score(answer, [reference]).score) / 100.0
    produced, expected = _words(answer), _words(reference)
    if metric == "rouge_1":
        overlap = sum((Counter(produced) & Counter(expected)).values())
        return _f1(overlap, len(produced), len(expected))
    if metric == "rouge_l":
        return _f1(LCSseq.similarity(produced, expected), len(produced), len(expected))
    raise ValueError(f"unknown similarity metric {metric!r}")


def _text_similarity(grader: TextSimilarityGrader, answer: str, item: Mapping[str, Any]) -> float:
    reference = render(grader.reference, item)[:MAX_ANSWER_CHARS]
    if not grader.case_sensitive:
        answer, reference = answer.casefold(), reference.casefold()
    score = min(1.0, max(0.0, similarity(grader.metric, answer, reference)))
    if grader.pass_threshold is not None:
        return float(score >= grader.pass_threshold)
    return score


# -- length ---------------------------------------------------------------------------------------------------------


def _length(grader: LengthGrader, answer: str, completion_tokens: int | None) -> float:
    if grader.unit == "tokens":
        if completion_tokens is None:
            raise GradingError(f"grader {grader.name!r} counts tokens, but the completion's tokens are not known")
        size = completion_tokens
    elif grader.unit == "words":
        size = len(answer.split())
    else:
        size = len(answer)
    if size < grader.min_length:
        distance = grader.min_length - size
    elif grader.max_length is not None and size > grader.max_length:
        distance = size - grader.max_length
    else:
        return 1.0
    if grader.falloff == 0:
        return 0.0
    return max(0.0, 1.0 - distance / grader.falloff)


# -- checking data rows before training -----------------------------------------------------------------------------


def row_problem(grader: AnyGrader | MultiGrader, item: Mapping[str, Any]) -> str | None:
    """Why ``grader`` cannot grade answers to the row ``item`` (a missing field, a reference that is not a number, a
    pattern that does not compile), or None."""
    subs: list[AnyGrader] = list(grader.graders) if isinstance(grader, MultiGrader) else [grader]
    for sub in subs:
        try:
            if isinstance(sub, StringCheckGrader | TextSimilarityGrader):
                reference = render(sub.reference, item)
                if isinstance(sub, StringCheckGrader) and sub.operation == "regex":
                    _pattern(reference.strip() if sub.strip else reference, sub.case_sensitive)
            elif isinstance(sub, NumberMatchGrader):
                reference_number(sub, item)
        except (GradingError, ValueError) as exc:
            return f"grader {sub.name!r}: {exc}"
    return None


RewardFunction = Callable[..., list[float]]
