"""Read a data file (JSONL or a JSON array) into validated, uniform record dicts.

Errors name the file, the 1-based line and the field path (``messages[1].role``), so a bad record in a
100k-line file can be found without bisecting it.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from finetuning.config.data import DataType
from finetuning.data.errors import DataError
from finetuning.data.records import ChatConversation, DirectPreference, UnpairedPreference

RECORD_TYPES: dict[DataType, type[BaseModel]] = {
    DataType.CHAT_CONVERSATION: ChatConversation,
    DataType.DIRECT_PREFERENCE: DirectPreference,
    DataType.UNPAIRED_PREFERENCE: UnpairedPreference,
}

_WHITESPACE = " \t\n\r"


def load_records(path: str | Path, data_type: DataType) -> list[dict[str, Any]]:
    """Load, validate and re-dump every record of ``path`` (JSONL, or a JSON array if it starts with ``[``)."""
    return [record for _, record in read_records(path, RECORD_TYPES[DataType(data_type)])]


def read_records(path: str | Path, record_type: type[BaseModel]) -> list[tuple[int, dict[str, Any]]]:
    """Every record of ``path`` validated as ``record_type`` and re-dumped, with its 1-based line number; a bad
    record raises :class:`DataError` naming the file and line."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        # Name the path as written in the config (not resolved), which is what the user has to fix.
        raise FileNotFoundError(errno.ENOENT, "data file not found", str(path)) from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: tolerate a byte-order mark from Windows editors
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not UTF-8 text ({exc})") from None

    stripped = text.lstrip(_WHITESPACE)
    if not stripped:
        raise DataError(path, None, "the file is empty: expected JSONL records or a JSON array of records")
    items = _parse_json_array(path, text) if stripped[0] == "[" else _parse_jsonl(path, text)
    if not items:
        raise DataError(path, None, "the file holds no records")
    return [(line, _validate(path, line, item, record_type)) for line, item in items]


def _parse_jsonl(path: str | Path, text: str) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    # split("\n") rather than splitlines(): JSON strings may legally hold U+2028 and friends, which
    # splitlines() would treat as line breaks, cutting a record in two and shifting line numbers.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(_WHITESPACE):
            continue  # blank lines (a trailing newline, spacing) are not records
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    return items


def _parse_json_array(path: str | Path, text: str) -> list[tuple[int, Any]]:
    """Parse ``[obj, obj, ...]`` element by element, remembering the line on which each element starts."""
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        return pos

    def fail(pos: int, message: str) -> DataError:
        return DataError(path, line_of(pos), f"not valid JSON: {message}")

    pos = skip_ws(0) + 1  # past "["
    pos = skip_ws(pos)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            if pos >= len(text):
                raise fail(pos, "the array is not closed (missing ']')")
            try:
                item, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
            items.append((line_of(pos), item))
            pos = skip_ws(end)
            if pos < len(text) and text[pos] == ",":
                pos = skip_ws(pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise fail(pos, "expected ',' or ']' after an array element")
    pos = skip_ws(pos)
    if pos < len(text):
        raise fail(pos, "extra data after the closing ']'")
    return items


def _validate(path: str | Path, line: int, item: Any, record_type: type[BaseModel]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(path, line, f"expected a JSON object (a {record_type.__name__} record), got {_kind(item)}")
    try:
        return record_type.model_validate(item).model_dump()
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_describe(err) for err in errors)
        if any(err["type"] == "missing" and len(err["loc"]) == 1 for err in errors):
            # A missing top-level field usually means a file of the other kind (SFT data given to DPO).
            problems += f" (expected a {record_type.__name__} record)"
        raise DataError(path, line, problems) from None


def _describe(err: Any) -> str:
    text = f"{_loc(err['loc'])}: {err['msg']}"
    value = err.get("input")
    if err["type"] != "missing" and (value is None or isinstance(value, str | int | float | bool)):
        shown = repr(value)
        text += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return text


def _loc(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``messages[1].role``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(record)"


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
