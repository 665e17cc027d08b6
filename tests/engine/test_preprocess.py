"""SFT preprocessing with a real (tiny, local) tokenizer: lengths, splits, ordering and the on-disk cache."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from finetuning.config.data import AutoSplitInput, DataConf
from finetuning.config.training import SFTArgs
from finetuning.data import prepare_sft_datasets, preprocess_sft, sort_longest_first, split_validation
from finetuning.data.preprocess import Processed

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
