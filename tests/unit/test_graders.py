"""The GRPO graders on hand-written answers: exact rewards, config-time refusals, and the time bound on patterns."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import TypeAdapter

from finetuning.config import ConfigError, GRPOConfig
from finetuning.config.graders import Grader
from finetuning.graders import (
    GradingError,
    completion_text,
    grade,
    last_number,
    parse_json_answer,
    render,
    row_problem,
    similarity,
)

GRADER = TypeAdapter(Grader)


def reward(spec: dict[str, Any], answer: str, item: dict[str, Any] | None = None, tokens: int | None = None) -> float:
    return grade(GRADER.validate_python({"name": "g", **spec}), answer, item or {}, tokens).reward


# -- string_check ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "reference", "answer", "expected"),
    [
        ("equals", "Paris", "Paris", 1.0),
        ("equals", "Paris", "  Paris\n", 1.0),  # stripped by default
        ("equals", "Paris", "paris", 0.0),  # case-sensitive by default
        ("equals", "Paris", "Paris, France", 0.0),
        ("not_equals", "Paris", "Lyon", 1.0),
        ("not_equals", "Paris", "Paris", 0.0),
        ("contains", "yes", "I say yes.", 1.0),
        ("contains", "yes", "I say no.", 0.0),
        ("not_contains", "sorry", "Here it is.", 1.0),
        ("not_contains", "sorry", "I am sorry.", 0.0),
        ("starts_with", "<answer>", "<answer>42</answer>", 1.0),
        ("starts_with", "<answer>", "So <answer>42</answer>", 0.0),
        ("ends_with", "</answer>", "<answer>42</answer>", 1.0),
        ("ends_with", "</answer>", "<answer>42", 0.0),
        ("regex", r"^<answer>\d+</answer>$", "<answer>42</answer>", 1.0),
        ("regex", r"^<answer>\d+</answer>$", "<answer>4x2</answer>", 0.0),
        ("regex", r"\bcat\b", "the cat sat", 1.0),
        ("regex", r"\bcat\b", "concatenate", 0.0),
    ],
)
def test_string_check(operation: str, reference: str, answer: str, expected: float) -> None:
    spec = {"type": "string_check", "operation": operation, "reference": reference}
    assert reward(spec, answer) == expected


def test_string_check_case_insensitive_and_reference_field() -> None:
    spec = {"type": "string_check", "operation": "equals", "reference": "{{item.city}}", "case_sensitive": False}
    assert reward(spec, "PARIS", {"city": "paris"}) == 1.0
    assert reward(spec, "Lyon", {"city": "paris"}) == 0.0
    regex = {"type": "string_check", "operation": "regex", "reference": "^{{ item.word }}$", "case_sensitive": False}
    assert reward(regex, "HELLO", {"word": "hello"}) == 1.0
    unstripped = {"type": "string_check", "operation": "equals", "reference": "a", "strip": False}
    assert reward(unstripped, " a") == 0.0


def test_a_catastrophic_pattern_is_cut_off_not_hung() -> None:
    spec = {"type": "string_check", "operation": "regex", "reference": r"^(a+)+$"}
    started = time.monotonic()
    assert reward(spec, "a" * 40 + "b") == 0.0  # exponential backtracking in re: minutes; here the time limit
    assert time.monotonic() - started < 5
    assert reward(spec, "aaaa") == 1.0


def test_answers_are_graded_on_their_first_characters_only() -> None:
    spec = {"type": "string_check", "operation": "ends_with", "reference": "END"}
    assert reward(spec, "x" * 30_000 + "END") == 0.0
    assert reward(spec, "x" * 100 + "END") == 1.0


# -- number_match ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("42", 42.0),
        ("The answer is 42.", 42.0),
        ("first 3, then 7", 7.0),
        ("-1,234.5e3", -1234500.0),
        ("x = -7", -7.0),
        ("3-4", 4.0),
        ("1.5 and 2.25", 2.25),
        ("no number here", None),
        ("", None),
    ],
)
def test_last_number(text: str, number: float | None) -> None:
    assert last_number(text) == number


def test_number_match() -> None:
    spec = {"type": "number_match", "reference": "{{item.answer}}"}
    assert reward(spec, "It is 12.", {"answer": 12}) == 1.0
    assert reward(spec, "It is 12.", {"answer": "12"}) == 1.0
    assert reward(spec, "It is 1,200", {"answer": "1200"}) == 1.0
    assert reward(spec, "It is 13.", {"answer": 12}) == 0.0
    assert reward(spec, "I don't know", {"answer": 12}) == 0.0
    tolerant = {"type": "number_match", "reference": 3.14159, "abs_tolerance": 0.01}
    assert reward(tolerant, "pi is about 3.14") == 1.0
    assert reward(tolerant, "pi is about 3.1") == 0.0
    relative = {"type": "number_match", "reference": "1000", "rel_tolerance": 0.05}
    assert reward(relative, "1049") == 1.0
    assert reward(relative, "1051") == 0.0


# -- json_schema ----------------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[A-Z]"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_json_schema() -> None:
    spec = {"type": "json_schema", "schema": SCHEMA, "partial_credit": 0.25}
    assert reward(spec, '{"name": "Ada", "age": 36}') == 1.0
    assert reward(spec, '```json\n{"name": "Ada", "age": 36}\n```') == 1.0
    assert reward(spec, '{"name": "ada", "age": 36}') == 0.25  # JSON, but the pattern fails
    assert reward(spec, '{"name": "Ada"}') == 0.25
    assert reward(spec, '{"name": "Ada", "age": 36, "x": 1}') == 0.25
    assert reward(spec, "Ada, 36") == 0.0
    assert reward(spec, "[" * 100_000) == 0.0  # too deep (and too long) is not JSON, not a crash


def test_parse_json_answer() -> None:
    assert parse_json_answer(' {"a": 1} ') == (True, {"a": 1})
    assert parse_json_answer("```\n[1, 2]\n```") == (True, [1, 2])
    assert parse_json_answer("not json") == (False, None)


def test_json_schema_pattern_is_time_limited() -> None:
    spec = {"type": "json_schema", "schema": {"type": "string", "pattern": "^(a|aa)+$"}}
    started = time.monotonic()
    assert reward(spec, '"' + "a" * 60 + 'b"') == 0.0
    assert time.monotonic() - started < 5


# -- text_similarity ------------------------------------------------------------------------------------------------


def test_similarity_metrics() -> None:
    assert similarity("fuzzy_ratio", "abcd", "abcd") == 1.0
    assert similarity("fuzzy_ratio", "abcd", "abce") == pytest.approx(0.75)  # InDel: 2 edits over 8 characters
    assert similarity("levenshtein", "abcd", "abce") == pytest.approx(0.75)  # 1 substitution over 4
    assert similarity("levenshtein", "", "") == 1.0
    assert similarity("token_set_ratio", "the cat sat", "sat the cat") == 1.0
    # 2 of 3 words shared: precision 2/3, recall 2/4
    assert similarity("rouge_1", "the cat sat", "the cat sat down"[4:] + " x") == pytest.approx(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)
    )
    # longest common word subsequence "a c" (2) of 3 and 3 words
    assert similarity("rouge_l", "a b c", "a c d") == pytest.approx(2 / 3)
    assert similarity("rouge_l", "", "a") == 0.0
    assert similarity("rouge_1", "", "") == 1.0


def test_bleu_and_chrf() -> None:
    assert similarity("bleu", "the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # n-gram precisions 3/4, 2/3, 1/2 and 0/1 (exponential smoothing: 1/2), same length (no brevity penalty)
    assert similarity("bleu", "a b c d", "a b c e") == pytest.approx((3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)
    assert similarity("bleu", "x y", "a b") == 0.0
    assert similarity("bleu", "", "") == 1.0
    assert similarity("chrf", "abcd", "abcd") == pytest.approx(1.0)
    assert 0.0 < similarity("chrf", "colour", "color") < 1.0
    assert similarity("chrf", "xyz", "abc") == 0.0


def test_text_similarity_grader() -> None:
    spec = {"type": "text_similarity", "metric": "levenshtein", "reference": "{{item.ref}}"}
    assert reward(spec, "kitten", {"ref": "sitting"}) == pytest.approx(1 - 3 / 7)
    insensitive = {**spec, "case_sensitive": False}
    assert reward(insensitive, "KITTEN", {"ref": "kitten"}) == 1.0
    threshold = {**spec, "pass_threshold": 0.5}
    assert reward(threshold, "kitten", {"ref": "sitting"}) == 1.0
    assert reward(threshold, "dog", {"ref": "sitting"}) == 0.0


# -- length ---------------------------------------------------------------------------------------------------------


def test_length() -> None:
    spec = {"type": "length", "min_length": 3, "max_length": 5}
    assert [reward(spec, "x" * n) for n in (2, 3, 5, 6)] == [0.0, 1.0, 1.0, 0.0]
    soft = {**spec, "falloff": 4}
    assert [reward(soft, "x" * n) for n in (1, 3, 7, 9, 20)] == [0.5, 1.0, 0.5, 0.0, 0.0]
    words = {"type": "length", "unit": "words", "max_length": 2}
    assert reward(words, "one two") == 1.0
    assert reward(words, "one two three") == 0.0
    tokens = {"type": "length", "unit": "tokens", "max_length": 10}
    assert reward(tokens, "whatever", tokens=10) == 1.0
    assert reward(tokens, "whatever", tokens=11) == 0.0
    with pytest.raises(GradingError):
        reward(tokens, "whatever")


# -- multi ----------------------------------------------------------------------------------------------------------


def test_multi() -> None:
    subs = [
        {"name": "fmt", "type": "string_check", "operation": "starts_with", "reference": "A:", "weight": 0.25},
        {"name": "num", "type": "number_match", "reference": "{{item.answer}}", "weight": 0.75},
    ]
    weighted = GRADER.validate_python({"name": "m", "type": "multi", "graders": subs})
    assert grade(weighted, "A: 7", {"answer": 7}).reward == 1.0
    result = grade(weighted, "A: 8", {"answer": 7})
    assert result.reward == 0.25
    assert result.parts == {"fmt": 1.0, "num": 0.0}
    assert grade(weighted, "7", {"answer": 7}).reward == 0.75
    lowest = GRADER.validate_python({"name": "m", "type": "multi", "graders": subs, "aggregate": "min"})
    assert grade(lowest, "A: 8", {"answer": 7}).reward == 0.0
    assert grade(lowest, "A: 7", {"answer": 7}).reward == 1.0


def test_graders_are_deterministic() -> None:
    spec = {"type": "text_similarity", "metric": "rouge_l", "reference": "the quick brown fox"}
    assert len({reward(spec, "a quick brown dog") for _ in range(20)}) == 1


# -- data rows and templates ----------------------------------------------------------------------------------------


def test_render_and_row_problems() -> None:
    assert render("{{item.a}} and {{ item.b }}", {"a": 1, "b": [1, 2]}) == "1 and [1, 2]"
    with pytest.raises(GradingError, match="no field 'missing'"):
        render("{{item.missing}}", {})
    number = GRADER.validate_python({"name": "n", "type": "number_match", "reference": "{{item.answer}}"})
    assert row_problem(number, {"answer": "12"}) is None
    assert "no field 'answer'" in (row_problem(number, {}) or "")
    assert "not a number" in (row_problem(number, {"answer": "twelve"}) or "")
    per_row = GRADER.validate_python(
        {"name": "r", "type": "string_check", "operation": "regex", "reference": "{{item.pattern}}"}
    )
    assert row_problem(per_row, {"pattern": "a+"}) is None
    assert "invalid regular expression" in (row_problem(per_row, {"pattern": "(a"}) or "")


def test_completion_text() -> None:
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "chat"}]) == "chat"


# -- validation at submission ---------------------------------------------------------------------------------------


def grpo_config(graders: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": "train.jsonl"}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {},
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {"model": "some/model"},
        "graders": graders,
    }
    config.update(sections)
    return config


def issues(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        GRPOConfig.validate_config(config)
    return {issue.loc: issue.message for issue in caught.value.issues}


@pytest.mark.parametrize(
    ("grader", "message"),
    [
        ({"type": "string_check", "operation": "regex", "reference": "(unclosed"}, "invalid regular expression"),
        ({"type": "json_schema", "schema": {"type": "objekt"}}, "not a valid JSON Schema"),
        ({"type": "json_schema", "schema": {"patternProperties": {"^a": {}}}}, "patternProperties"),
        ({"type": "json_schema", "schema": {"$ref": "https://example.com/s.json"}}, "only references within"),
        ({"type": "json_schema", "schema": {"type": "string", "pattern": "(x"}}, "'(x' is not a 'regex'"),
        ({"type": "number_match", "reference": "twelve"}, "neither a number nor a template"),
        ({"type": "length", "min_length": 5, "max_length": 2}, "below min_length"),
    ],
)
def test_a_bad_grader_is_refused_naming_it(grader: dict[str, Any], message: str) -> None:
    found = issues(grpo_config([{"name": "ok", "type": "length"}, {"name": "broken", "type": "x", **grader}]))
    assert list(found) == ["graders[1]"]
    assert "grader 'broken'" in found["graders[1]"]
    assert message in found["graders[1]"]


def test_grader_names_are_unique_and_well_formed() -> None:
    same = [{"name": "a", "type": "length"}, {"name": "a", "type": "length"}]
    assert "two graders are named 'a'" in " ".join(issues(grpo_config(same)).values())
    assert "graders[0].name" in issues(grpo_config([{"name": "has space", "type": "length"}]))
    assert "graders" in issues(grpo_config([]))


def test_grpo_batch_must_hold_whole_groups() -> None:
    config = grpo_config(
        [{"name": "a", "type": "length"}],
        grpo_args={"num_generations": 3},
    )
    assert "a multiple of 3" in issues(config)["batchsize_conf.total_train_batch_size"]
    moved = grpo_config([{"name": "a", "type": "length"}], training_args={"beta": 0.1})
    assert "set grpo_args.beta" in issues(moved)["training_args.beta"]
    dropped = grpo_config([{"name": "a", "type": "length"}], training_args={"remove_unused_columns": True})
    assert "reference fields" in issues(dropped)["training_args.remove_unused_columns"]
    luspo = grpo_config([{"name": "a", "type": "length"}], grpo_args={"loss_type": "luspo"})
    assert "sequence" in issues(luspo)["grpo_args.importance_sampling_level"]


def test_a_valid_config_round_trips() -> None:
    graders: list[dict[str, Any]] = [
        {"name": "fmt", "type": "string_check", "operation": "regex", "reference": r"^\d+$", "weight": 0.5},
        {"name": "js", "type": "json_schema", "schema": SCHEMA},
    ]
    config = GRPOConfig.validate_config(grpo_config(graders))
    again = GRPOConfig.from_yaml(config.to_yaml())
    assert again == config
    assert again.graders[1].json_schema == SCHEMA  # type: ignore[union-attr]


def test_validate_and_schema_commands(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import yaml

    from finetuning.cli import main

    assert main(["schema", "grpo"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"grpo_args", "graders"} <= set(schema["properties"])
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(grpo_config([{"name": "a", "type": "length", "max_length": 9}])))
    assert main(["validate", "grpo", str(path)]) == 0
    echoed = yaml.safe_load(capsys.readouterr().out)
    assert echoed["grpo_args"]["num_generations"] == 8
    path.write_text(yaml.safe_dump(echoed))
    assert main(["validate", "grpo", str(path)]) == 0  # the echo is a valid config itself
    path.write_text(
        yaml.safe_dump(grpo_config([{"name": "a", "type": "string_check", "operation": "regex", "reference": "("}]))
    )
    assert main(["validate", "grpo", str(path)]) == 2
    assert "grader 'a'" in capsys.readouterr().err
