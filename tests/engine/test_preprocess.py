"""SFT preprocessing with a real (tiny, local) tokenizer: lengths, splits, ordering and the on-disk cache."""

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf
from finetuning.config.training import SFTArgs
from finetuning.data import (
    DataError,
    build_training_records,
    prepare_sft_datasets,
    preprocess_sft,
    progress,
    sort_longest_first,
    sources,
    split_validation,
)
from finetuning.data.preprocess import Processed
from finetuning.events import EventWriter, read_events

COLUMNS = ["input_ids", "attention_mask", "length"]


def _record(i: int, words: int) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "messages": [
            {"role": "system", "content": "Be brief.", "tags": None, "labels": None},
            {"role": "user", "content": f"Question {i}: " + "the cat sees a red ball " * words, "tags": None},
            {"role": "assistant", "content": f"Answer {i}.", "labels": {"quality": "good"}},
        ],
    }


# Lengths grow with the index, so length order and record order agree.
RECORDS = [_record(i, words) for i, words in enumerate([1, 2, 3, 5, 8, 13, 21, 1, 2, 3])]


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _render(tokenizer: Any, record: dict[str, Any]) -> str:
    return tokenizer.apply_chat_template(record["messages"], tokenize=False)


def _full_lengths(tokenizer: Any) -> list[int]:
    return [len(tokenizer(_render(tokenizer, r))["input_ids"]) for r in RECORDS]


def _rows(processed: Processed) -> list[dict[str, Any]]:
    return processed.dataset.to_list()


@pytest.fixture
def tokenizer_calls(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the tokenizer itself and of its chat template (patched on the class, as __call__ must be)."""
    calls = [0]
    cls = type(tokenizer)
    original_call, original_template = cls.__call__, cls.apply_chat_template

    def counting_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original_call(self, *args, **kwargs)

    def counting_template(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original_template(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", counting_call)
    monkeypatch.setattr(cls, "apply_chat_template", counting_template)
    return calls


# --- tokenization ------------------------------------------------------------------------------------------


def test_columns_order_and_round_trip(tokenizer: Any) -> None:
    processed = preprocess_sft(RECORDS, tokenizer, max_seq_length=10_000, length_handling="filter")
    assert processed.dataset.column_names == COLUMNS
    assert (processed.cache_hit, processed.dropped) == (False, 0)
    rows = _rows(processed)
    assert len(rows) == len(RECORDS)
    for record, row in zip(RECORDS, rows, strict=True):
        assert tokenizer.decode(row["input_ids"]) == _render(tokenizer, record)
        assert row["length"] == len(row["input_ids"]) == len(row["attention_mask"])
        assert set(row["attention_mask"]) == {1}


def test_filter_drops_long_examples_and_reports_the_count(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    lengths = _full_lengths(tokenizer)
    limit = sorted(lengths)[-3]  # the two longest are over it
    processed = preprocess_sft(RECORDS, tokenizer, max_seq_length=limit - 1, length_handling="filter")
    expected = [n for n in lengths if n <= limit - 1]
    assert processed.dropped == len(lengths) - len(expected) >= 3
    assert [row["length"] for row in _rows(processed)] == expected
    assert f"dropped {processed.dropped} of {len(RECORDS)} examples" in caplog.text


def test_truncate_cuts_to_max_seq_length(tokenizer: Any) -> None:
    lengths = _full_lengths(tokenizer)
    limit = 60
    assert max(lengths) > limit > min(lengths)
    processed = preprocess_sft(RECORDS, tokenizer, max_seq_length=limit, length_handling="truncate")
    assert processed.dropped == 0
    rows = _rows(processed)
    assert len(rows) == len(RECORDS)
    for record, row, full in zip(RECORDS, rows, lengths, strict=True):
        assert row["length"] == len(row["input_ids"]) == len(row["attention_mask"]) == min(full, limit)
        full_ids = tokenizer(_render(tokenizer, record))["input_ids"]
        assert row["input_ids"] == full_ids[:limit]  # cut at the end, the start kept


def test_no_double_bos_when_the_template_renders_it(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, add_bos_token=True)
    bos = tokenizer.bos_token_id
    plain = preprocess_sft(RECORDS[:2], tokenizer, max_seq_length=512, length_handling="filter")
    # The template does not render bos: the tokenizer adds its usual one.
    assert all(row["input_ids"][0] == bos and row["input_ids"][1] != bos for row in _rows(plain))

    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    with_bos = preprocess_sft(RECORDS[:2], tokenizer, max_seq_length=512, length_handling="filter")
    # The template renders bos: it is not added a second time.
    assert all(row["input_ids"][0] == bos and row["input_ids"][1] != bos for row in _rows(with_bos))
    assert _rows(with_bos) == _rows(plain)


def test_no_bos_when_the_tokenizer_adds_none(tokenizer: Any) -> None:
    rows = _rows(preprocess_sft(RECORDS[:2], tokenizer, max_seq_length=512, length_handling="filter"))
    assert all(tokenizer.bos_token_id not in row["input_ids"] for row in rows)


def test_num_proc_2_gives_the_same_result_as_1(tokenizer: Any) -> None:
    one = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", num_proc=1)
    two = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", num_proc=2)
    assert _rows(two) == _rows(one)
    assert two.dropped == one.dropped
    assert two.dataset.features == one.dataset.features


def test_bad_arguments_raise(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="no records"):
        preprocess_sft([], tokenizer, max_seq_length=8, length_handling="filter")
    with pytest.raises(ValueError, match="max_seq_length"):
        preprocess_sft(RECORDS, tokenizer, max_seq_length=0, length_handling="filter")
    with pytest.raises(ValueError, match="ChatConversation"):
        preprocess_sft([{"prompt_messages": []}], tokenizer, max_seq_length=8, length_handling="filter")


# --- cache -------------------------------------------------------------------------------------------------


def test_second_call_is_a_cache_hit_without_tokenizing(
    tokenizer: Any, tokenizer_calls: list[int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="finetuning.data.preprocess")
    first = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path)
    assert not first.cache_hit
    assert tokenizer_calls[0] > 0
    assert "cache miss" in caplog.text

    tokenizer_calls[0] = 0
    second = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path)
    assert second.cache_hit
    assert tokenizer_calls[0] == 0
    assert "cache hit" in caplog.text
    assert _rows(second) == _rows(first)
    assert (second.dropped, second.fingerprint) == (first.dropped, first.fingerprint)
    assert [p.name for p in tmp_path.iterdir()] == [first.fingerprint]

    # num_proc and record metadata do not change the tokens, so they still hit.
    relabelled = [{**r, "id": "other", "tags": ["t"]} for r in RECORDS]
    third = preprocess_sft(
        relabelled, tokenizer, max_seq_length=40, length_handling="filter", num_proc=2, cache_dir=tmp_path
    )
    assert third.cache_hit
    assert tokenizer_calls[0] == 0


def test_cache_hit_matches_uncached_result(tokenizer: Any, tmp_path: Path) -> None:
    uncached = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="truncate")
    preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="truncate", cache_dir=tmp_path)
    hit = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="truncate", cache_dir=tmp_path)
    assert hit.cache_hit
    assert _rows(hit) == _rows(uncached)
    assert hit.dataset.features == uncached.dataset.features


@pytest.mark.parametrize("change", ["max_seq_length", "length_handling", "template", "special_token", "content"])
def test_changed_inputs_miss(tokenizer: Any, tmp_path: Path, change: str) -> None:
    preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path)
    kwargs: dict[str, Any] = {"max_seq_length": 40, "length_handling": "filter"}
    records = RECORDS
    if change == "max_seq_length":
        kwargs["max_seq_length"] = 41
    elif change == "length_handling":
        kwargs["length_handling"] = "truncate"
    elif change == "template":
        tokenizer.chat_template = tokenizer.chat_template.replace("User: ", "Human: ")
    elif change == "special_token":
        tokenizer.add_bos_token = True
    else:
        records = [*RECORDS[:-1], _record(99, 1)]
    processed = preprocess_sft(records, tokenizer, cache_dir=tmp_path, **kwargs)
    assert not processed.cache_hit
    assert len(list(tmp_path.iterdir())) == 2


def test_damaged_cache_entry_is_rebuilt(tokenizer: Any, tmp_path: Path) -> None:
    first = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path)
    shutil.rmtree(tmp_path / first.fingerprint / "dataset")
    again = preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path)
    assert not again.cache_hit
    assert _rows(again) == _rows(first)
    assert preprocess_sft(RECORDS, tokenizer, max_seq_length=40, length_handling="filter", cache_dir=tmp_path).cache_hit


# --- validation split and ordering -------------------------------------------------------------------------


def test_auto_split_sizes_and_determinism(tokenizer: Any) -> None:
    dataset = preprocess_sft(RECORDS, tokenizer, max_seq_length=10_000, length_handling="filter").dataset
    train, val = split_validation(dataset, AutoSplitInput(ratio=0.2, seed=3))
    assert (len(train), len(val)) == (8, 2)
    all_rows = dataset.to_list()
    assert sorted(map(json.dumps, train.to_list() + val.to_list())) == sorted(map(json.dumps, all_rows))
    # Training keeps the original order.
    assert [all_rows.index(row) for row in train.to_list()] == sorted(all_rows.index(row) for row in train.to_list())

    again_train, again_val = split_validation(dataset, AutoSplitInput(ratio=0.2, seed=3))
    assert again_val.to_list() == val.to_list()
    assert again_train.to_list() == train.to_list()
    _, other_val = split_validation(dataset, AutoSplitInput(ratio=0.2, seed=4))
    assert other_val.to_list() != val.to_list()


@pytest.mark.parametrize(("n", "ratio", "expected"), [(2, 0.5, (1, 1)), (10, 0.01, (9, 1)), (3, 0.99, (1, 2))])
def test_auto_split_keeps_at_least_one_each_side(
    tokenizer: Any, n: int, ratio: float, expected: tuple[int, int]
) -> None:
    dataset = preprocess_sft(RECORDS[:n], tokenizer, max_seq_length=10_000, length_handling="filter").dataset
    train, val = split_validation(dataset, AutoSplitInput(ratio=ratio))
    assert (len(train), len(val)) == expected


def test_auto_split_too_small_raises(tokenizer: Any) -> None:
    dataset = preprocess_sft(RECORDS[:1], tokenizer, max_seq_length=10_000, length_handling="filter").dataset
    with pytest.raises(ValueError, match="need at least 2"):
        split_validation(dataset, AutoSplitInput(ratio=0.5))


def test_sort_longest_first_is_stable_and_works_on_cached_data(tokenizer: Any, tmp_path: Path) -> None:
    processed = preprocess_sft(RECORDS, tokenizer, max_seq_length=10_000, length_handling="filter", cache_dir=tmp_path)
    _, val = split_validation(processed.dataset, AutoSplitInput(ratio=0.5, seed=0))
    ordered = sort_longest_first(val)
    lengths = ordered["length"][:]
    assert lengths == sorted(val["length"][:], reverse=True)
    assert sort_longest_first(processed.dataset)["length"][:] == sorted(_full_lengths(tokenizer), reverse=True)
    # Nothing was written next to the cached arrow data by the split or the sort.
    assert sorted(p.name for p in (tmp_path / processed.fingerprint / "dataset").iterdir()) == [
        "data-00000-of-00001.arrow",
        "dataset_info.json",
        "state.json",
    ]


# --- prepare_sft_datasets ----------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_prepare_with_validation_files_sorted_longest_first(tokenizer: Any, tmp_path: Path) -> None:
    train_path = _write_jsonl(tmp_path / "train.jsonl", RECORDS[:6])
    val_path = _write_jsonl(tmp_path / "val.jsonl", RECORDS[6:])
    data_conf = DataConf.model_validate(
        {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": train_path}]},
            "validation_data": {"type": "CONCATENATION", "datasets": [{"path": val_path}]},
        }
    )
    train, val = prepare_sft_datasets(
        data_conf, SFTArgs(max_seq_length=10_000), tokenizer, num_proc=1, cache_dir=tmp_path / "cache"
    )
    assert val is not None
    assert train.column_names == val.column_names == COLUMNS
    lengths = _full_lengths(tokenizer)
    assert train["length"][:] == lengths[:6]  # training order is kept
    assert val["length"][:] == sorted(lengths[6:], reverse=True)


def test_prepare_auto_split_and_none(tokenizer: Any, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "train.jsonl", RECORDS)
    training = {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": [{"path": path}]}
    auto = DataConf.model_validate({"training_data": training, "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.3}})
    train, val = prepare_sft_datasets(auto, SFTArgs(max_seq_length=10_000), tokenizer, num_proc=1, cache_dir=None)
    assert val is not None
    assert (len(train), len(val)) == (7, 3)
    assert val["length"][:] == sorted(val["length"][:], reverse=True)

    none = DataConf.model_validate({"training_data": training, "validation_data": {"type": "NONE"}})
    train, val = prepare_sft_datasets(none, SFTArgs(max_seq_length=10_000), tokenizer, num_proc=1, cache_dir=None)
    assert val is None
    assert len(train) == len(RECORDS)


def test_prepare_filters_validation_too_and_errors_when_nothing_is_left(tokenizer: Any, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "train.jsonl", RECORDS)
    conf = DataConf.model_validate(
        {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": path}]},
            "validation_data": {"type": "CONCATENATION", "datasets": [{"path": path}]},
        }
    )
    limit = sorted(_full_lengths(tokenizer))[4]
    train, val = prepare_sft_datasets(conf, SFTArgs(max_seq_length=limit), tokenizer, num_proc=1, cache_dir=None)
    assert val is not None
    assert max(train["length"][:]) <= limit
    assert max(val["length"][:]) <= limit
    with pytest.raises(ValueError, match="no training examples left"):
        prepare_sft_datasets(conf, SFTArgs(max_seq_length=2), tokenizer, num_proc=1, cache_dir=None)


def test_prepare_rejects_preference_data(tokenizer: Any, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "train.jsonl", RECORDS)
    conf = DataConf.model_validate(
        {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": path}], "data_type": "DirectPreference"},
            "validation_data": {"type": "NONE"},
        }
    )
    with pytest.raises(ValueError, match="ChatConversation"):
        prepare_sft_datasets(conf, SFTArgs(), tokenizer, num_proc=1, cache_dir=None)


# --- the Arrow path at scale: same rows as the list rules, bad rows, progress and cache events --------------


def _generated(path: Path, n: int, seed: int) -> str:
    """Conversations of varied lengths (a few over 60 tokens), with ids naming file and row."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        words = rng.choice([1, 2, 3, 5, 8, 13])
        record = _record(i, words)
        record["id"] = f"{path.stem}-{i}"
        records.append(record)
    return _write_jsonl(path, records)


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files cut into many byte ranges (one Arrow shard each), as large files are."""
    monkeypatch.setattr(sources, "_MIN_RANGE", 700)


@pytest.mark.usefixtures("small_ranges")
@pytest.mark.parametrize(
    ("weights", "validation", "num_proc"),
    [
        ([3.0, 1.0, 0.5], {"type": "AUTO_SPLIT", "ratio": 0.2, "seed": 5}, 1),
        ([3.0, 1.0, 0.5], {"type": "AUTO_SPLIT", "ratio": 0.2, "seed": 5}, 2),
        ([1.0, 1.0, 0.0], {"type": "NONE"}, 2),
        (None, "files", 1),
    ],
    ids=["weighted-split", "weighted-split-2-workers", "round-robin", "concatenation-with-files"],
)
def test_prepare_gives_the_rows_of_the_list_based_rules(
    tokenizer: Any, tmp_path: Path, weights: list[float] | None, validation: Any, num_proc: int
) -> None:
    """The same rows, mix, filter, split and order as the records of build_training_records tokenized by
    preprocess_sft, split by split_validation and sorted by sort_longest_first (the rules before Arrow)."""
    paths = [
        _generated(tmp_path / f"{name}.jsonl", n, seed) for name, n, seed in (("a", 60, 1), ("b", 17, 2), ("c", 5, 3))
    ]
    if weights is None:
        training: dict[str, Any] = {"type": "CONCATENATION", "datasets": [{"path": p} for p in paths[:2]]}
        validation = {"type": "CONCATENATION", "datasets": [{"path": paths[2]}, {"path": paths[1]}]}
    else:
        refs = [{"path": p, "sampling_weight": w} for p, w in zip(paths, weights, strict=True)]
        training = {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": refs, "seed": 77}
    conf = DataConf.model_validate({"training_data": training, "validation_data": validation})
    limit = 60  # drops the longest conversations (length_handling=filter)
    train, val = prepare_sft_datasets(
        conf, SFTArgs(max_seq_length=limit), tokenizer, num_proc=num_proc, cache_dir=tmp_path / "cache"
    )

    expected_train = preprocess_sft(
        build_training_records(conf.training_data), tokenizer, max_seq_length=limit, length_handling="filter"
    ).dataset
    expected_val = None
    if isinstance(conf.validation_data, AutoSplitInput):
        expected_train, expected_val = split_validation(expected_train, conf.validation_data)
    elif isinstance(conf.validation_data, ConcatenationInput):
        expected_val = preprocess_sft(
            build_training_records(conf.validation_data), tokenizer, max_seq_length=limit, length_handling="filter"
        ).dataset
    assert 0 < len(expected_train) < len(build_training_records(conf.training_data))  # some were filtered
    assert train.to_list() == expected_train.to_list()
    if expected_val is None:
        assert val is None
    else:
        assert val is not None
        assert val.to_list() == sort_longest_first(expected_val).to_list()


def test_prepare_twice_is_deterministic_and_a_cache_hit_without_tokenizing(
    tokenizer: Any, tokenizer_calls: list[int], tmp_path: Path
) -> None:
    path = _generated(tmp_path / "a.jsonl", 40, 1)
    training = {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": [{"path": path, "sampling_weight": 2.0}]}
    conf = DataConf.model_validate({"training_data": training, "validation_data": {"type": "AUTO_SPLIT"}})
    events_file = tmp_path / "events.jsonl"

    def prepare() -> tuple[list[Any], list[Any]]:
        with EventWriter(events_file) as events:
            train, val = prepare_sft_datasets(
                conf, SFTArgs(max_seq_length=512), tokenizer, num_proc=1, cache_dir=tmp_path / "cache", events=events
            )
        assert val is not None
        return train.to_list(), val.to_list()

    first = prepare()
    assert tokenizer_calls[0] > 0
    tokenizer_calls[0] = 0
    assert prepare() == first
    assert tokenizer_calls[0] == 0
    done = [e for e in read_events(events_file) if e["type"] == "preprocessing" and e["state"] == "done"]
    assert [(e["stage"], e["cache"], e["rows"]) for e in done] == [
        ("tokenizing", "miss", 40),
        ("tokenizing", "hit", 40),
    ]


def test_progress_events_carry_rows_rate_and_eta(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(sources, "_BATCH_ROWS", 10)
    path = _generated(tmp_path / "a.jsonl", 45, 1)
    conf = DataConf.model_validate(
        {"training_data": {"type": "CONCATENATION", "datasets": [{"path": path}]}, "validation_data": {"type": "NONE"}}
    )
    with EventWriter(tmp_path / "events.jsonl") as events:
        prepare_sft_datasets(conf, SFTArgs(max_seq_length=512), tokenizer, num_proc=1, cache_dir=None, events=events)
    updates = [e for e in read_events(tmp_path / "events.jsonl") if e["type"] == "preprocessing"]
    running = [e for e in updates if e["state"] == "progress"]
    assert [e["rows"] for e in running] == [10, 20, 30, 40, 45]
    assert all(e["stage"] == "tokenizing" and e["rows_total"] == 45 for e in running)
    assert all(e["rows_per_second"] > 0 and e["eta_s"] is not None and e["percent"] is not None for e in running)
    assert updates[-1]["state"] == "done"
    assert updates[-1]["cache"] is None or updates[-1]["cache"] == "miss"


def _bad_file(path: Path) -> str:
    lines = [json.dumps(r) for r in RECORDS]
    lines[2] = '{"messages": ['  # line 3: not JSON
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]})
    lines[8] = json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]})
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.usefixtures("small_ranges")
@pytest.mark.parametrize("num_proc", [1, 2])
def test_bad_rows_name_file_and_line_and_the_limit_applies(tokenizer: Any, tmp_path: Path, num_proc: int) -> None:
    # a template that refuses a conversation opening with an assistant turn, as many real ones do
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('must start with a user turn') }}{% endif %}"
        + tokenizer.chat_template
    )
    path = _bad_file(tmp_path / "bad.jsonl")

    def conf(limit: int) -> DataConf:
        return DataConf.model_validate(
            {
                "training_data": {"type": "CONCATENATION", "datasets": [{"path": path}]},
                "validation_data": {"type": "NONE"},
                "max_bad_rows": limit,
            }
        )

    def prepare(limit: int) -> Any:
        return prepare_sft_datasets(conf(limit), SFTArgs(), tokenizer, num_proc=num_proc, cache_dir=tmp_path / "c")

    with pytest.raises(DataError) as first:
        prepare(0)
    assert (first.value.path, first.value.line) == (path, 3)
    assert first.value.message.startswith("not valid JSON")
    with pytest.raises(DataError) as third:
        prepare(2)
    assert (third.value.line, "more than data_conf.max_bad_rows=2" in third.value.message) == (9, True)
    assert "the chat template cannot render this conversation: must start with a user turn" in third.value.message
    assert f"{path} line 3; {path} line 7" in third.value.message

    events_file = tmp_path / "events.jsonl"
    with EventWriter(events_file) as events:
        train, _ = prepare_sft_datasets(
            conf(3), SFTArgs(), tokenizer, num_proc=num_proc, cache_dir=tmp_path / "c", events=events
        )
    assert len(train) == len(RECORDS) - 3
    (warning,) = [e for e in read_events(events_file) if e["type"] == "log"]
    assert warning["message"].startswith("skipped 3 bad data rows (data_conf.max_bad_rows=3)")
    assert f"{path} line 7: messages[1].role" in warning["message"]
    # the cache remembers the bad rows: a hit still applies a lower limit, naming the row
    with pytest.raises(DataError) as again:
        prepare(1)
    assert again.value.line == 7


def test_a_file_listed_under_two_names_is_tokenized_once(tokenizer: Any, tmp_path: Path) -> None:
    path = _generated(tmp_path / "a.jsonl", 12, 1)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(path, copy)
    refs = [{"path": path}, {"path": str(copy)}, {"path": path}]
    conf = DataConf.model_validate(
        {"training_data": {"type": "CONCATENATION", "datasets": refs}, "validation_data": {"type": "NONE"}}
    )
    train, _ = prepare_sft_datasets(conf, SFTArgs(), tokenizer, num_proc=1, cache_dir=tmp_path / "cache")
    expected = preprocess_sft(
        build_training_records(conf.training_data), tokenizer, max_seq_length=2048, length_handling="filter"
    )
    assert train.to_list() == expected.dataset.to_list()
    # one entry (beside it, the lock file of this process, which uses it)
    assert [path.name.split("-")[0] for path in (tmp_path / "cache").iterdir() if path.suffix != ".lock"] == ["src"]
