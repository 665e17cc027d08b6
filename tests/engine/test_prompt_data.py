"""GRPO prompt data on Arrow: the same rows, order, mix and split as the list-based path it replaced, with the same
bad-row rules (the graders decide which rows are bad, so they key the cached entries), memory-mapped from files that
leave nothing behind."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from pydantic import TypeAdapter

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, NoneInput, WeightedMixInput
from finetuning.config.graders import Grader
from finetuning.data import DataError
from finetuning.data.loading import BadRows, iter_records
from finetuning.data.mixing import concatenate, interleave
from finetuning.data.preprocess import split_positions
from finetuning.data.prompts import PromptRecord, prepare_prompt_datasets

ROOT = Path(__file__).resolve().parents[2]
GRADERS = TypeAdapter(list[Grader])

SAYS = {"name": "says", "type": "string_check", "operation": "contains", "reference": "{{item.answer}}"}
NUMBER = {"name": "number", "type": "number_match", "reference": "{{item.value}}"}


def graders(*specs: dict[str, Any]) -> list[Any]:
    return GRADERS.validate_python(list(specs or [SAYS, NUMBER]))


# -- the list-based path this module replaced (finetuning/data/prompts.py before Arrow), kept as the reference ---------


def _old_rows_of(path: str, graders: Sequence[Any], bad_rows: BadRows) -> list[dict[str, Any]]:
    from finetuning.graders import row_problem

    rows: list[dict[str, Any]] = []
    for line, record in iter_records(path, PromptRecord, bad_rows):
        messages = record.pop("messages")
        try:
            if messages[-1]["role"] == "assistant":
                raise DataError(
                    path,
                    line,
                    "the prompt ends with an assistant message, but in GRPO the model writes the answer: drop it "
                    "(a reference answer goes in a field the graders read, e.g. 'answer')",
                )
            for grader in graders:
                problem = row_problem(grader, record)
                if problem:
                    raise DataError(path, line, problem)
        except DataError as exc:
            bad_rows.add(exc)
            continue
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        rows.append({"prompt": prompt, "item": json.dumps(record, ensure_ascii=False, sort_keys=True)})
    return rows


def _old_section_rows(
    section: ConcatenationInput | WeightedMixInput, graders: Sequence[Any], bad_rows: BadRows
) -> list[dict[str, Any]]:
    if isinstance(section, ConcatenationInput):
        return concatenate([_old_rows_of(ref.path, graders, bad_rows) for ref in section.datasets])
    sources = [_old_rows_of(ref.path, graders, bad_rows) if ref.sampling_weight > 0 else [] for ref in section.datasets]
    return interleave(sources, [ref.sampling_weight for ref in section.datasets], section.seed)


def reference(
    data_conf: DataConf, graders: Sequence[Any], *, bad_rows: BadRows | None = None, require_rows: bool = True
) -> tuple[Dataset, Dataset | None]:
    bad_rows = bad_rows or BadRows(data_conf.max_bad_rows)
    rows = _old_section_rows(data_conf.training_data, graders, bad_rows)
    validation = data_conf.validation_data
    eval_rows: list[dict[str, Any]] | None = None
    if isinstance(validation, AutoSplitInput):
        train_at, eval_at = split_positions(len(rows), validation)
        rows, eval_rows = [rows[i] for i in train_at], [rows[i] for i in eval_at]
    elif isinstance(validation, ConcatenationInput):
        eval_rows = _old_section_rows(validation, graders, bad_rows)
    else:
        assert isinstance(validation, NoneInput)
    if not rows and require_rows:
        raise DataError(str(data_conf.training_data.datasets[0].path), None, "no usable prompts in the training data")
    return Dataset.from_list(rows), None if eval_rows is None else Dataset.from_list(eval_rows)


# -- data --------------------------------------------------------------------------------------------------------------


def prompt(tag: str, i: int) -> dict[str, Any]:
    system = [{"role": "system", "content": f"be brief {i}"}] if i % 3 == 0 else []
    turns = [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}] if i % 4 == 1 else []
    return {
        "messages": [*system, *turns, {"role": "user", "content": f"question {tag} {i}", "tags": ["x"]}],
        "answer": f"answer {tag} {i} é",  # not ASCII: kept as is in the JSON
        "value": i if i % 2 else f"{i}.5",  # a number in one row, text in another
        "extra": {"nested": [i, None]},
        "id": f"{tag}{i}",
    }


def jsonl(path: Path, rows: list[Any]) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def conf(training: dict[str, Any], validation: dict[str, Any] | None = None, **extra: Any) -> DataConf:
    return DataConf.model_validate(
        {"training_data": training, "validation_data": validation or {"type": "NONE"}, **extra}
    )


def concatenation(*paths: str) -> dict[str, Any]:
    return {"type": "CONCATENATION", "datasets": [{"path": p} for p in paths]}


def rows_of(dataset: Dataset | None) -> list[dict[str, Any]] | None:
    return None if dataset is None else dataset.to_list()


def assert_same(
    data_conf: DataConf, cache: Path, grading: Sequence[Any] | None = None
) -> tuple[Dataset, Dataset | None]:
    grading = graders() if grading is None else grading
    expected = reference(data_conf, grading)
    train, validation = prepare_prompt_datasets(data_conf, grading, cache_dir=cache)
    assert rows_of(train) == rows_of(expected[0])
    assert train.features == expected[0].features
    assert rows_of(validation) == rows_of(expected[1])
    if validation is not None and len(validation):
        assert expected[1] is not None
        assert validation.features == expected[1].features
    # memory-mapped from files under cache_dir, not held in memory
    assert train.cache_files
    assert all(Path(f["filename"]).is_relative_to(cache) for f in train.cache_files)
    return train, validation


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "data"
    folder.mkdir()
    return {
        "a": jsonl(folder / "a.jsonl", [prompt("a", i) for i in range(7)]),
        "b": jsonl(folder / "b.jsonl", [prompt("b", i) for i in range(3)]),
        "c": jsonl(folder / "c.jsonl", [prompt("c", i) for i in range(4)]),
        "array": str(folder / "array.json"),
    }


def test_concatenation_of_two_files(files: dict[str, str], tmp_path: Path) -> None:
    train, validation = assert_same(conf(concatenation(files["a"], files["b"])), tmp_path / "cache")
    assert len(train) == 10
    assert validation is None
    row = train[8]
    assert row["prompt"] == [
        {"role": "user", "content": "hi 1"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "question b 1"},
    ]
    assert json.loads(row["item"]) == {"answer": "answer b 1 é", "value": 1, "extra": {"nested": [1, None]}, "id": "b1"}
    assert "é" in row["item"]


def test_weighted_mix_never_reads_a_weight_0_file(files: dict[str, str], tmp_path: Path) -> None:
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "seed": 5,
        "datasets": [
            {"path": files["a"], "sampling_weight": 2},
            {"path": str(tmp_path / "missing.jsonl"), "sampling_weight": 0},
            {"path": files["b"], "sampling_weight": 1},
        ],
    }
    train, _ = assert_same(conf(training), tmp_path / "cache")
    ids = [json.loads(item)["id"] for item in train["item"]]
    assert {i[0] for i in ids} == {"a", "b"}
    assert len(ids) >= 10


def test_round_robin_mix(files: dict[str, str], tmp_path: Path) -> None:
    training = {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": [{"path": files["a"]}, {"path": files["b"]}]}
    assert len(assert_same(conf(training), tmp_path / "cache")[0]) == 14


def test_auto_split(files: dict[str, str], tmp_path: Path) -> None:
    split = {"type": "AUTO_SPLIT", "ratio": 0.3, "seed": 7}
    train, validation = assert_same(conf(concatenation(files["a"], files["b"]), split), tmp_path / "cache")
    assert (len(train), len(validation or [])) == (7, 3)


def test_auto_split_of_a_mix(files: dict[str, str], tmp_path: Path) -> None:
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "seed": 9,
        "datasets": [{"path": files["a"], "sampling_weight": 1}, {"path": files["b"], "sampling_weight": 3}],
    }
    train, validation = assert_same(conf(training, {"type": "AUTO_SPLIT", "ratio": 0.2}), tmp_path / "cache")
    assert len(train) > len(validation or []) > 0


def test_validation_files(files: dict[str, str], tmp_path: Path) -> None:
    validation = concatenation(files["c"], files["b"])
    train, held_out = assert_same(conf(concatenation(files["a"]), validation), tmp_path / "cache")
    assert (len(train), len(held_out or [])) == (7, 7)


def test_json_array_file(files: dict[str, str], tmp_path: Path) -> None:
    Path(files["array"]).write_text("[\n" + ",\n".join(json.dumps(prompt("j", i)) for i in range(5)) + "\n]\n")
    assert len(assert_same(conf(concatenation(files["array"], files["b"])), tmp_path / "cache")[0]) == 8


def test_many_batches(files: dict[str, str], tmp_path: Path) -> None:
    """Rows written over several Arrow batches (1000 records each) come back whole and in order, mixed and split."""
    data = jsonl(tmp_path / "big.jsonl", [prompt("big", i) for i in range(2500)])
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "seed": 2,
        "datasets": [{"path": data, "sampling_weight": 5}, {"path": files["b"], "sampling_weight": 1}],
    }
    split = {"type": "AUTO_SPLIT", "ratio": 0.1, "seed": 1}
    train, validation = assert_same(conf(training, split), tmp_path / "cache")
    assert len(train) + len(validation or []) > 2500
    plain, _ = assert_same(conf(concatenation(data)), tmp_path / "cache")
    assert [json.loads(item)["id"] for item in plain["item"]] == [f"big{i}" for i in range(2500)]


# -- bad rows ----------------------------------------------------------------------------------------------------------


def bad_files(tmp_path: Path) -> tuple[str, str]:
    no_answer = {"messages": [{"role": "user", "content": "q"}], "value": 1}
    ends_with_answer = prompt("t", 2)
    ends_with_answer["messages"].append({"role": "assistant", "content": "the answer"})
    not_a_number = {**prompt("t", 3), "value": "many"}
    train = jsonl(
        tmp_path / "train.jsonl",
        [prompt("t", 0), "{not json", no_answer, prompt("t", 1), ends_with_answer, {"messages": []}, not_a_number],
    )
    val = jsonl(tmp_path / "val.jsonl", [prompt("v", 0), {**prompt("v", 1), "value": None}, prompt("v", 2)])
    return train, val


def test_bad_rows_within_the_limit_are_skipped_across_training_and_validation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = bad_files(tmp_path)
    data_conf = conf(concatenation(train), concatenation(val), max_bad_rows=6)
    with caplog.at_level(logging.WARNING, logger="finetuning.data.prompts"):
        rows, held_out = assert_same(data_conf, tmp_path / "cache")
    assert (len(rows), len(held_out or [])) == (2, 2)
    (summary,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 6 bad data rows (data_conf.max_bad_rows=6)" in summary
    assert f"{train} line 2" in summary
    assert f"{train} line 3" in summary
    assert "grader 'says'" in summary


def test_the_planners_bad_rows_see_every_bad_row_named(tmp_path: Path) -> None:
    """finetuning/plan/grpo.py passes its own BadRows (a huge limit) and reads .kept and .count afterwards."""
    train, val = bad_files(tmp_path)
    data_conf = conf(concatenation(train), concatenation(val))
    expected, got = BadRows(10**9), BadRows(10**9)
    reference(data_conf, graders(), bad_rows=expected)
    prepare_prompt_datasets(data_conf, graders(), bad_rows=got, cache_dir=tmp_path / "cache")
    assert got.count == expected.count == 6
    assert [(e.path, e.line, e.message) for e in got.kept] == [(e.path, e.line, e.message) for e in expected.kept]
    lines = [(Path(str(e.path)).name, e.line) for e in got.kept]
    assert lines == [("train.jsonl", 2), ("train.jsonl", 3), ("train.jsonl", 5), ("train.jsonl", 6)] + [
        ("train.jsonl", 7),
        ("val.jsonl", 2),
    ]
    assert "ends with an assistant message" in got.kept[2].message
    again = BadRows(10**9)  # from the cached entries: the same
    prepare_prompt_datasets(data_conf, graders(), bad_rows=again, cache_dir=tmp_path / "cache")
    assert (again.count, [str(e) for e in again.kept]) == (got.count, [str(e) for e in got.kept])


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
def test_bad_rows_over_the_limit_fail_as_before(tmp_path: Path, limit: int) -> None:
    """One limit across training and validation files; the row over it is named by file and line, with the same
    error as the list-based path gave."""
    train, val = bad_files(tmp_path)
    data_conf = conf(concatenation(train), concatenation(val), max_bad_rows=limit)
    with pytest.raises(DataError) as expected:
        reference(data_conf, graders())
    with pytest.raises(DataError) as got:
        prepare_prompt_datasets(data_conf, graders(), cache_dir=tmp_path / "cache")
    assert str(got.value) == str(expected.value)
    over = {0: (train, 2), 1: (train, 3), 2: (train, 5), 5: (val, 2)}[limit]
    assert (str(got.value.path), got.value.line) == over
    # a failed read leaves no entry behind (no half-written folder either)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".prompt-")]


def test_cached_files_count_their_bad_rows_again(tmp_path: Path) -> None:
    train, _ = bad_files(tmp_path)
    cache = tmp_path / "cache"
    prepare_prompt_datasets(conf(concatenation(train), max_bad_rows=5), graders(), cache_dir=cache)
    entries = list(cache.iterdir())
    with pytest.raises(DataError, match="line 2"):  # the entry remembers its bad rows: max_bad_rows=0 still fails
        prepare_prompt_datasets(conf(concatenation(train)), graders(), cache_dir=cache)
    with pytest.raises(DataError) as expected:
        reference(conf(concatenation(train), max_bad_rows=3), graders())
    with pytest.raises(DataError) as got:
        prepare_prompt_datasets(conf(concatenation(train), max_bad_rows=3), graders(), cache_dir=cache)
    assert str(got.value) == str(expected.value)
    assert list(cache.iterdir()) == entries  # not read again


def test_a_file_named_twice_counts_its_bad_rows_twice_as_before(tmp_path: Path) -> None:
    train, _ = bad_files(tmp_path)
    data_conf = conf(concatenation(train, train), concatenation(train), max_bad_rows=15)
    train_rows, held_out = assert_same(data_conf, tmp_path / "cache")
    assert (len(train_rows), len(held_out or [])) == (4, 2)
    expected, got = BadRows(100), BadRows(100)
    reference(data_conf, graders(), bad_rows=expected)
    prepare_prompt_datasets(data_conf, graders(), bad_rows=got, cache_dir=tmp_path / "cache")
    assert got.count == expected.count == 15
    assert [str(e) for e in got.kept] == [str(e) for e in expected.kept]


def test_no_usable_prompts(tmp_path: Path) -> None:
    data = jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "q"}]}])
    data_conf = conf(concatenation(data), max_bad_rows=1)
    with pytest.raises(DataError) as expected:
        reference(data_conf, graders())
    with pytest.raises(DataError) as got:
        prepare_prompt_datasets(data_conf, graders(), cache_dir=tmp_path / "cache")
    assert str(got.value) == str(expected.value)
    assert "no usable prompts" in str(got.value)
    # the plan asks for no error: empty training rows (with their columns)
    bad_rows = BadRows(10**9)
    train, _ = prepare_prompt_datasets(
        data_conf, graders(), bad_rows=bad_rows, require_rows=False, cache_dir=tmp_path / "cache"
    )
    assert len(train) == 0
    assert bad_rows.count == 1


# -- where the files go ------------------------------------------------------------------------------------------------


def entry_folders(cache: Path) -> list[Path]:
    """The cache's entries, not the lock files beside them (held by the processes that use them)."""
    return [path for path in cache.iterdir() if path.suffix != ".lock"]


def test_entries_are_reused_and_a_changed_file_or_graders_are_read_again(files: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data_conf = conf(concatenation(files["a"]), max_bad_rows=10)
    first, _ = prepare_prompt_datasets(data_conf, graders(), cache_dir=cache)
    entries = sorted(p.name for p in entry_folders(cache))
    assert len(entries) == 1
    again, _ = prepare_prompt_datasets(data_conf, graders(), cache_dir=cache)
    assert sorted(p.name for p in entry_folders(cache)) == entries
    assert again.to_list() == first.to_list()

    jsonl(Path(files["a"]), [prompt("changed", i) for i in range(2)])
    changed, _ = prepare_prompt_datasets(data_conf, graders(), cache_dir=cache)
    assert [json.loads(item)["id"] for item in changed["item"]] == ["changed0", "changed1"]
    assert len(entry_folders(cache)) == 2

    # other graders make other rows bad: another entry, and the rows they allow
    needs_a_number = [{**prompt("g", 0), "value": "x"}, prompt("g", 1)]
    jsonl(Path(files["a"]), needs_a_number)
    bad_rows = BadRows(10)
    only_says, _ = prepare_prompt_datasets(data_conf, graders(SAYS), bad_rows=bad_rows, cache_dir=cache)
    assert (len(only_says), bad_rows.count) == (2, 0)
    both, _ = prepare_prompt_datasets(data_conf, graders(), bad_rows=bad_rows, cache_dir=cache)
    assert (len(both), bad_rows.count) == (1, 1)
    assert len(entry_folders(cache)) == 4
    renamed, _ = prepare_prompt_datasets(data_conf, graders({**SAYS, "name": "other"}), cache_dir=cache)
    assert renamed.to_list() == only_says.to_list()
    assert len(entry_folders(cache)) == 5


def test_a_missing_file_names_its_configured_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        prepare_prompt_datasets(conf(concatenation(missing)), graders(), cache_dir=tmp_path / "cache")


def test_without_a_cache_dir_the_rows_live_in_a_temporary_folder_removed_at_exit(files: dict[str, str]) -> None:
    data_conf = {
        "training_data": concatenation(files["a"], files["b"]),
        "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.2},
    }
    script = f"""
import json
from pydantic import TypeAdapter
from finetuning.config.data import DataConf
from finetuning.config.graders import Grader
from finetuning.data.prompts import prepare_prompt_datasets
conf = DataConf.model_validate(json.loads({json.dumps(json.dumps(data_conf))}))
graders = TypeAdapter(list[Grader]).validate_python(json.loads({json.dumps(json.dumps([SAYS, NUMBER]))}))
train, validation = prepare_prompt_datasets(conf, graders)
print(json.dumps([f["filename"] for f in train.cache_files + validation.cache_files]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    used = [Path(name) for name in json.loads(done.stdout.strip().splitlines()[-1])]
    assert used
    for path in used:
        assert path.is_relative_to(tempfile.gettempdir())
        assert not path.is_relative_to(ROOT)
        assert not path.parent.parent.exists()  # the process's folder went with it
