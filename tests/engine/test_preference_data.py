"""Preference data on Arrow: the same rows, order, mix and split as the records converted in memory, with the same
bad-row rules, memory-mapped from files that leave nothing behind."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, NoneInput
from finetuning.data import DataError
from finetuning.data.loading import BadRows, load_records
from finetuning.data.mixing import build_training_records
from finetuning.data.preference import prepare_preference_datasets, to_trl_rows
from finetuning.data.preprocess import split_validation

ROOT = Path(__file__).resolve().parents[2]


def reference(data_conf: DataConf, *, unpaired: bool) -> tuple[Dataset, Dataset | None]:
    """The list-based path this module replaced: every record in memory, converted and given to Dataset.from_list."""
    training = data_conf.training_data
    bad_rows = BadRows(data_conf.max_bad_rows)
    records = build_training_records(training, bad_rows)

    def rows(chosen: list[dict[str, Any]]) -> Dataset:
        return Dataset.from_list(to_trl_rows(chosen, training.data_type, unpaired=unpaired))

    validation = data_conf.validation_data
    if isinstance(validation, NoneInput):
        return rows(records), None
    if isinstance(validation, AutoSplitInput):
        train_part, eval_part = split_validation(Dataset.from_dict({"index": list(range(len(records)))}), validation)
        return rows([records[i] for i in train_part["index"]]), rows([records[i] for i in eval_part["index"]])
    assert isinstance(validation, ConcatenationInput)
    loaded = [load_records(ref.path, validation.data_type, bad_rows) for ref in validation.datasets]
    return rows(records), rows([record for part in loaded for record in part])


def pair(tag: str, i: int) -> dict[str, Any]:
    system = [{"role": "system", "content": f"be brief {i}"}] if i % 3 == 0 else []
    return {
        "id": f"{tag}{i}",
        "prompt_messages": [*system, {"role": "user", "content": f"question {tag} {i}", "tags": ["x"]}],
        "chosen_messages": [{"role": "assistant", "content": f"good {tag} {i} " * (i % 4 + 1)}],
        "rejected_messages": [{"role": "assistant", "content": f"bad {tag} {i}"}],
        "extra": "ignored",
    }


def unpaired_record(tag: str, i: int) -> dict[str, Any]:
    return {
        "prompt_messages": [{"role": "user", "content": f"question {tag} {i}"}],
        "completion_messages": [{"role": "assistant", "content": f"answer {tag} {i}"}],
        "label": i % 3 != 0,
    }


def jsonl(path: Path, rows: list[Any]) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def conf(training: dict[str, Any], validation: dict[str, Any] | None = None, **extra: Any) -> DataConf:
    return DataConf.model_validate(
        {"training_data": training, "validation_data": validation or {"type": "NONE"}, **extra}
    )


def concatenation(*paths: str, data_type: str = "DirectPreference") -> dict[str, Any]:
    return {"type": "CONCATENATION", "data_type": data_type, "datasets": [{"path": p} for p in paths]}


def rows_of(dataset: Dataset | None) -> list[dict[str, Any]] | None:
    return None if dataset is None else dataset.to_list()


def assert_same(data_conf: DataConf, cache: Path, *, unpaired: bool = False) -> tuple[Dataset, Dataset | None]:
    expected = reference(data_conf, unpaired=unpaired)
    train, validation = prepare_preference_datasets(data_conf, unpaired=unpaired, cache_dir=cache)
    assert train.features == expected[0].features
    assert rows_of(train) == rows_of(expected[0])
    assert rows_of(validation) == rows_of(expected[1])
    if validation is not None:
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
        "a": jsonl(folder / "a.jsonl", [pair("a", i) for i in range(7)]),
        "b": jsonl(folder / "b.jsonl", [pair("b", i) for i in range(3)]),
        "c": jsonl(folder / "c.jsonl", [pair("c", i) for i in range(4)]),
        "unpaired": jsonl(folder / "u.jsonl", [unpaired_record("u", i) for i in range(9)]),
        "array": str(folder / "array.json"),
    }


def test_concatenation_of_two_files(files: dict[str, str], tmp_path: Path) -> None:
    train, validation = assert_same(conf(concatenation(files["a"], files["b"])), tmp_path / "cache")
    assert len(train) == 10
    assert validation is None
    assert train[7]["prompt"][-1] == {"role": "user", "content": "question b 0"}


def test_weighted_mix_never_reads_a_weight_0_file(files: dict[str, str], tmp_path: Path) -> None:
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "data_type": "DirectPreference",
        "seed": 5,
        "datasets": [
            {"path": files["a"], "sampling_weight": 2},
            {"path": str(tmp_path / "missing.jsonl"), "sampling_weight": 0},
            {"path": files["b"], "sampling_weight": 1},
        ],
    }
    train, _ = assert_same(conf(training), tmp_path / "cache")
    contents = [row["rejected"][0]["content"] for row in train]
    assert {c.split()[1] for c in contents} == {"a", "b"}
    assert len(contents) >= 10


def test_round_robin_mix(files: dict[str, str], tmp_path: Path) -> None:
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "data_type": "DirectPreference",
        "datasets": [{"path": files["a"]}, {"path": files["b"]}],
    }
    assert len(assert_same(conf(training), tmp_path / "cache")[0]) == 14


def test_auto_split(files: dict[str, str], tmp_path: Path) -> None:
    split = {"type": "AUTO_SPLIT", "ratio": 0.3, "seed": 7}
    train, validation = assert_same(conf(concatenation(files["a"], files["b"]), split), tmp_path / "cache")
    assert (len(train), len(validation or [])) == (7, 3)


def test_validation_files(files: dict[str, str], tmp_path: Path) -> None:
    validation = concatenation(files["c"], files["b"])
    train, held_out = assert_same(conf(concatenation(files["a"]), validation), tmp_path / "cache")
    assert (len(train), len(held_out or [])) == (7, 7)


def test_kto_from_unpaired_records(files: dict[str, str], tmp_path: Path) -> None:
    training = concatenation(files["unpaired"], data_type="UnpairedPreference")
    split = {"type": "AUTO_SPLIT", "ratio": 0.25, "seed": 3, "data_type": "UnpairedPreference"}
    train, validation = assert_same(conf(training, split), tmp_path / "cache", unpaired=True)
    assert sorted(train.column_names) == ["completion", "label", "prompt"]
    assert (len(train), len(validation or [])) == (6, 3)


@pytest.mark.parametrize("split", [True, False])
def test_kto_from_pairs_gives_two_rows_a_pair_on_one_side(files: dict[str, str], tmp_path: Path, split: bool) -> None:
    training = {
        "type": "PRECOMPUTE_WEIGHTED_MIX",
        "data_type": "DirectPreference",
        "seed": 9,
        "datasets": [{"path": files["a"], "sampling_weight": 1}, {"path": files["b"], "sampling_weight": 3}],
    }
    validation = {"type": "AUTO_SPLIT", "ratio": 0.2} if split else concatenation(files["c"])
    train, held_out = assert_same(conf(training, validation), tmp_path / "cache", unpaired=True)
    for part in (train, held_out):
        assert part is not None
        labels = part["label"]
        assert labels == [True, False] * (len(part) // 2)
        prompts = part["prompt"]
        assert prompts[0::2] == prompts[1::2]  # a pair's two rows stay together, on one side


def test_json_array_file(files: dict[str, str], tmp_path: Path) -> None:
    Path(files["array"]).write_text("[\n" + ",\n".join(json.dumps(pair("j", i)) for i in range(5)) + "\n]\n")
    assert len(assert_same(conf(concatenation(files["array"], files["b"])), tmp_path / "cache")[0]) == 8


def test_many_batches(tmp_path: Path) -> None:
    """Records written over several Arrow batches (1000 records each) come back whole and in order."""
    data = jsonl(tmp_path / "big.jsonl", [pair("big", i) for i in range(2500)])
    split = {"type": "AUTO_SPLIT", "ratio": 0.1, "seed": 1}
    train, validation = assert_same(conf(concatenation(data), split), tmp_path / "cache", unpaired=True)
    assert len(train) + len(validation or []) == 5000


# -- bad rows ---------------------------------------------------------------------------------------------------------


def bad_files(tmp_path: Path) -> tuple[str, str]:
    train = jsonl(tmp_path / "train.jsonl", [pair("t", 0), "{not json", pair("t", 1), {"prompt_messages": []}])
    val = jsonl(tmp_path / "val.jsonl", [pair("v", 0), pair("v", 1), {"messages": [{"role": "user"}]}])
    return train, val


def test_bad_rows_within_the_limit_are_skipped_across_training_and_validation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = bad_files(tmp_path)
    data_conf = conf(concatenation(train), concatenation(val), max_bad_rows=3)
    with caplog.at_level(logging.WARNING, logger="finetuning.data.preference"):
        rows, held_out = assert_same(data_conf, tmp_path / "cache")
    assert (len(rows), len(held_out or [])) == (2, 2)
    (summary,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 3 bad data rows (data_conf.max_bad_rows=3)" in summary
    assert f"{train} line 2" in summary
    assert f"{train} line 4" in summary
    assert f"{val} line 3" in summary


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_bad_rows_over_the_limit_fail_as_before(tmp_path: Path, limit: int) -> None:
    """One limit across training and validation files; the row over it is named by file and line, with the same
    error as the in-memory path gave."""
    train, val = bad_files(tmp_path)
    data_conf = conf(concatenation(train), concatenation(val), max_bad_rows=limit)
    with pytest.raises(DataError) as expected:
        reference(data_conf, unpaired=False)
    with pytest.raises(DataError) as got:
        prepare_preference_datasets(data_conf, unpaired=False, cache_dir=tmp_path / "cache")
    assert str(got.value) == str(expected.value)
    over = {0: (train, 2), 1: (train, 4), 2: (val, 3)}[limit]
    assert (str(got.value.path), got.value.line) == (over[0], over[1])
    # a failed read leaves no entry behind (no half-written folder either)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".pref-")]


def test_cached_files_count_their_bad_rows_again(tmp_path: Path) -> None:
    train, val = bad_files(tmp_path)
    cache = tmp_path / "cache"
    prepare_preference_datasets(conf(concatenation(train), max_bad_rows=2), unpaired=False, cache_dir=cache)
    with pytest.raises(DataError, match="line 2"):  # the entry remembers its bad rows: max_bad_rows=0 still fails
        prepare_preference_datasets(conf(concatenation(train)), unpaired=False, cache_dir=cache)


# -- where the files go ------------------------------------------------------------------------------------------------


def entry_folders(cache: Path) -> list[Path]:
    """The cache's entries, not the lock files beside them (held by the processes that use them)."""
    return [path for path in cache.iterdir() if path.suffix != ".lock"]


def test_entries_are_reused_and_a_changed_file_is_read_again(files: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data_conf = conf(concatenation(files["a"]))
    first, _ = prepare_preference_datasets(data_conf, unpaired=False, cache_dir=cache)
    entries = sorted(p.name for p in entry_folders(cache))
    again, _ = prepare_preference_datasets(data_conf, unpaired=False, cache_dir=cache)
    assert sorted(p.name for p in entry_folders(cache)) == entries
    assert again.to_list() == first.to_list()
    jsonl(Path(files["a"]), [pair("changed", i) for i in range(2)])
    changed, _ = prepare_preference_datasets(data_conf, unpaired=False, cache_dir=cache)
    assert [row["rejected"][0]["content"] for row in changed] == ["bad changed 0", "bad changed 1"]
    kto, _ = prepare_preference_datasets(data_conf, unpaired=True, cache_dir=cache)  # other rows: another entry
    assert len(kto) == 4
    assert len(entry_folders(cache)) == len(entries) + 2


def test_a_missing_file_names_its_configured_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        prepare_preference_datasets(conf(concatenation(missing)), unpaired=False, cache_dir=tmp_path / "cache")


def test_validation_of_another_kind_is_refused(files: dict[str, str], tmp_path: Path) -> None:
    data_conf = conf(concatenation(files["a"]), concatenation(files["unpaired"], data_type="UnpairedPreference"))
    with pytest.raises(ValueError, match="validation_data.data_type"):
        prepare_preference_datasets(data_conf, unpaired=True, cache_dir=tmp_path / "cache")


def test_without_a_cache_dir_the_rows_live_in_a_temporary_folder_removed_at_exit(files: dict[str, str]) -> None:
    script = f"""
import json
from finetuning.config.data import DataConf
from finetuning.data.preference import prepare_preference_datasets
conf = DataConf.model_validate(json.loads({
        json.dumps(
            json.dumps(
                {
                    "training_data": concatenation(files["a"], files["b"]),
                    "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.2},
                }
            )
        )
    }))
train, validation = prepare_preference_datasets(conf, unpaired=True)
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


def test_preference_types_only(files: dict[str, str], tmp_path: Path) -> None:
    data_conf = conf(concatenation(files["a"], data_type=DataType.CHAT_CONVERSATION.value))
    with pytest.raises(ValueError, match="preference records"):
        prepare_preference_datasets(data_conf, unpaired=False, cache_dir=tmp_path / "cache")
