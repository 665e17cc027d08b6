"""Reading JSONL and JSON-array data files into validated records, and the errors for bad files."""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from finetuning.config.data import DataType
from finetuning.data import DataError, load_records, loading
from finetuning.data.loading import BadRows

SFT = DataType.CHAT_CONVERSATION
DPO = DataType.DIRECT_PREFERENCE

RECORD_KEYS = {"messages", "dataset", "id", "tags", "labels"}
MESSAGE_KEYS = {"role", "content", "tags", "labels"}


def _conversation(i: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"x{i}",
        "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}],
        **extra,
    }


def _jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_jsonl_columns_equal_record_fields_and_order_is_kept(tmp_path: Path) -> None:
    rows = [_conversation(i) for i in range(5)]
    rows[2]["tags"] = ["math"]
    rows[3]["labels"] = {"source": "web"}
    records = load_records(_jsonl(tmp_path / "a.jsonl", rows), SFT)

    assert [r["id"] for r in records] == ["x0", "x1", "x2", "x3", "x4"]
    assert all(set(r) == RECORD_KEYS for r in records)
    assert all(set(m) == MESSAGE_KEYS for r in records for m in r["messages"])
    assert records[2]["tags"] == ["math"]
    assert records[3]["labels"] == {"source": "web"}
    assert records[0]["dataset"] is None
    assert records[1]["messages"][1] == {"role": "assistant", "content": "answer 1", "tags": None, "labels": None}


def test_json_array_gives_the_same_records_as_jsonl(tmp_path: Path) -> None:
    rows = [_conversation(i) for i in range(3)]
    array = tmp_path / "a.json"
    array.write_text("\n  " + json.dumps(rows, indent=2))
    assert load_records(array, SFT) == load_records(_jsonl(tmp_path / "a.jsonl", rows), SFT)


def test_unknown_keys_are_dropped(tmp_path: Path) -> None:
    row = _conversation(0, score=0.5, meta={"x": 1})
    row["messages"][0]["weight"] = 2  # type: ignore[index]
    (record,) = load_records(_jsonl(tmp_path / "a.jsonl", [row]), SFT)
    assert set(record) == RECORD_KEYS
    assert set(record["messages"][0]) == MESSAGE_KEYS


def test_blank_lines_are_skipped_and_a_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("\ufeff" + json.dumps(_conversation(0)) + "\n\n   \n" + json.dumps(_conversation(1)))
    assert [r["id"] for r in load_records(path, SFT)] == ["x0", "x1"]


def test_unicode_line_separators_inside_strings_do_not_split_records(tmp_path: Path) -> None:
    row = _conversation(0)
    row["messages"][0]["content"] = "one\u2028two\x85three"  # type: ignore[index]
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (record,) = load_records(path, SFT)
    assert record["messages"][0]["content"] == "one\u2028two\x85three"


def test_direct_preference_records_load(tmp_path: Path) -> None:
    row = {
        "prompt_messages": [{"role": "user", "content": "2+2?"}],
        "chosen_messages": [{"role": "assistant", "content": "4"}],
        "rejected_messages": [{"role": "assistant", "content": "5"}],
        "id": "p1",
    }
    (record,) = load_records(_jsonl(tmp_path / "p.jsonl", [row]), DPO)
    assert set(record) == {"prompt_messages", "chosen_messages", "rejected_messages", "dataset", "id", "tags", "labels"}
    assert record["chosen_messages"][0]["content"] == "4"


def test_sft_records_loaded_as_direct_preference_name_file_and_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "sft.jsonl", [_conversation(0)])
    with pytest.raises(DataError) as info:
        load_records(path, DPO)
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.path, error.line) == (str(path), 1)
    assert str(error).startswith(f"{path} line 1: ")
    assert "prompt_messages: Field required" in str(error)
    assert "DirectPreference" in str(error)


def test_bad_field_reports_line_and_field_path(tmp_path: Path) -> None:
    rows: list[object] = [_conversation(i) for i in range(6)]
    rows[4]["messages"][1]["role"] = "robot"  # type: ignore[index]
    path = tmp_path / "a.jsonl"
    # A blank line before the bad record: line numbers count every physical line.
    path.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[3:]))
    with pytest.raises(DataError) as info:
        load_records(path, SFT)
    assert info.value.line == 6
    assert str(info.value).startswith(
        f"{path} line 6: messages[1].role: Input should be 'system', 'user', 'assistant' or 'tool'"
    )
    assert "'robot'" in info.value.message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "user"}]}, "messages[0].content: Field required"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content: Input should be a valid string"),
        ({"messages": "hi"}, "messages: Input should be a valid list"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_wrong_kinds_raise(tmp_path: Path, row: object, expected: str) -> None:
    path = _jsonl(tmp_path / "a.jsonl", [_conversation(0), row])
    with pytest.raises(DataError, match="line 2: ") as info:
        load_records(path, SFT)
    assert expected in info.value.message


def test_bad_json_line_reports_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(_conversation(0)) + "\n" + json.dumps(_conversation(1)) + '\n{"messages": [\n')
    with pytest.raises(DataError) as info:
        load_records(path, SFT)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path} line 3: not valid JSON: ")


def test_json_array_element_error_reports_the_line_where_the_element_starts(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [_conversation(i) for i in range(3)]
    del rows[2]["messages"]
    text = json.dumps(rows, indent=2)
    expected_line = text[: text.index('"x2"')].count("\n")  # the "{" is on the line above "id": "x2"
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_records(path, SFT)
    assert info.value.line == expected_line
    assert "messages: Field required" in str(info.value)


def test_json_array_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("[\n" + json.dumps(_conversation(0)) + ",\n" + json.dumps(_conversation(1))[:-1] + "\n]\n")
    with pytest.raises(DataError, match="not valid JSON") as info:
        load_records(path, SFT)
    assert info.value.line == 4


@pytest.mark.parametrize("text", ["[" + json.dumps(_conversation(0)), "[" + json.dumps(_conversation(0)) + "] []"])
def test_malformed_json_array_raises(tmp_path: Path, text: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(DataError, match="not valid JSON"):
        load_records(path, SFT)


def test_missing_file_names_the_configured_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "data" / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="nope.jsonl") as info:
        load_records(missing, SFT)
    assert info.value.filename == missing


@pytest.mark.parametrize("text", ["", "  \n\n", "[]", " [ \n ] "])
def test_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match="empty|no records") as info:
        load_records(path, SFT)
    assert info.value.line is None
    assert str(path) in str(info.value)


# --- streaming and the bad-row limit -----------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 7, 64])
def test_json_array_read_in_small_blocks_gives_the_same_records_and_error_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """The array is parsed element by element from blocks of a few characters: elements cut by a block edge, long
    files with the text behind the reader dropped, the same line numbers."""
    rows: list[dict[str, object]] = [_conversation(i) for i in range(30)]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(rows, indent=2))
    expected = load_records(path, SFT)
    monkeypatch.setattr(loading, "_READ_BLOCK", block)
    assert load_records(path, SFT) == expected

    del rows[25]["messages"]
    text = json.dumps(rows, indent=2)
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_records(path, SFT)
    assert info.value.line == text[: text.index('"x25"')].count("\n")

    path.write_text(text.replace('"x27"', '"x27" "oops"'))
    with pytest.raises(DataError, match="not valid JSON") as bad_json:
        load_records(path, SFT, BadRows(5))
    assert bad_json.value.line == text[: text.index('"x27"')].count("\n") + 1


def _with_bad_rows(path: Path) -> Path:
    rows = [json.dumps(_conversation(i)) for i in range(8)]
    rows[2] = '{"messages": ['  # line 3: not JSON
    rows[5] = json.dumps({"messages": [{"role": "robot", "content": "x"}]})  # line 6: not a record
    path.write_text("\n".join(rows) + "\n")
    return path


def test_bad_rows_within_the_limit_are_skipped_and_counted(tmp_path: Path) -> None:
    path = _with_bad_rows(tmp_path / "a.jsonl")
    bad = BadRows(2)
    assert [r["id"] for r in load_records(path, SFT, bad)] == ["x0", "x1", "x3", "x4", "x6", "x7"]
    assert bad.count == 2
    assert [(e.path, e.line) for e in bad.kept] == [(str(path), 3), (str(path), 6)]
    summary = bad.summary()
    assert summary is not None
    assert summary.startswith("skipped 2 bad data rows (data_conf.max_bad_rows=2)")
    assert f"{path} line 3: not valid JSON" in summary


def test_the_bad_row_over_the_limit_names_its_file_and_line_and_the_skipped_ones(tmp_path: Path) -> None:
    path = _with_bad_rows(tmp_path / "a.jsonl")
    with pytest.raises(DataError) as default:
        load_records(path, SFT)  # limit 0: the first bad row, with its own message
    assert (default.value.line, str(default.value)) == (3, f"{path} line 3: {default.value.message}")
    assert default.value.message.startswith("not valid JSON")

    with pytest.raises(DataError) as over:
        load_records(path, SFT, BadRows(1))
    assert (over.value.path, over.value.line) == (str(path), 6)
    assert "messages[0].role" in over.value.message
    assert "more than data_conf.max_bad_rows=1" in over.value.message
    assert f"{path} line 3" in over.value.message


def test_the_limit_counts_across_files(tmp_path: Path) -> None:
    bad = BadRows(3)
    load_records(_with_bad_rows(tmp_path / "a.jsonl"), SFT, bad)
    with pytest.raises(DataError, match="more than data_conf.max_bad_rows=3") as info:
        load_records(_with_bad_rows(tmp_path / "b.jsonl"), SFT, bad)
    assert (Path(info.value.path).name, info.value.line) == ("b.jsonl", 6)


def test_a_line_that_is_not_utf8_is_a_bad_row_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        json.dumps(_conversation(0)).encode() + b'\n{"id": "\xff"}\n' + json.dumps(_conversation(1)).encode()
    )
    with pytest.raises(DataError, match="not UTF-8") as info:
        load_records(path, SFT)
    assert info.value.line == 2
    assert [r["id"] for r in load_records(path, SFT, BadRows(1))] == ["x0", "x1"]


def test_a_file_of_only_bad_rows_skipped_is_not_an_empty_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("nope\n")
    assert load_records(path, SFT, BadRows(1)) == []
