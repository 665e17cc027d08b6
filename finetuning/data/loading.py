"""Read a data file (JSONL or a JSON array) into validated, uniform record dicts, streaming.

Errors name the file, the 1-based line and the field path (``messages[1].role``), so a bad record in a
100k-line file can be found without bisecting it. Files are read a line (JSONL) or an element (JSON array) at a
time: memory does not grow with the file. :class:`BadRows` decides whether a bad record fails the run or is skipped
(``data_conf.max_bad_rows``).
"""

from __future__ import annotations

import codecs
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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
_WHITESPACE_BYTES = b" \t\n\r"
_BOM = codecs.BOM_UTF8
_READ_BLOCK = 1 << 20
# A JSON-array element still unparsed after this many characters is reported as invalid rather than read further.
_MAX_ELEMENT_CHARS = 64 << 20
# Bad rows kept for the report (the count goes on).
_BAD_ROWS_KEPT = 1000


class BadRows:
    """Bad records seen so far, across files: skipped while there are at most ``limit`` of them.

    ``limit`` 0 (the default of ``data_conf.max_bad_rows``) fails on the first one with its own error (file, line,
    what is wrong). Beyond the limit the error names the row that went over it and the first ones skipped.
    """

    def __init__(self, limit: int = 0) -> None:
        if limit < 0:
            raise ValueError(f"the bad-row limit must be >= 0, got {limit}")
        self.limit = limit
        self.count = 0
        self.kept: list[DataError] = []

    def add(self, error: DataError) -> None:
        """Count ``error``; raise once there are more than ``limit``."""
        self.count += 1
        if len(self.kept) < _BAD_ROWS_KEPT:
            self.kept.append(error)
        if self.count > self.limit:
            raise self.over_limit(error)

    def absorb(self, kept: list[DataError], count: int, last: DataError | None) -> None:
        """Count ``count`` bad rows met in order elsewhere (a worker's byte range, a cached file), of which ``kept``
        are the first and ``last`` the last; raise as :meth:`add` would (naming ``last`` when the row that went over
        the limit was not kept)."""
        for error in kept:
            self.add(error)
        rest = count - len(kept)
        if rest > 0 and last is not None:
            self.count += rest - 1
            self.add(last)

    def over_limit(self, error: DataError) -> DataError:
        if self.limit == 0:
            return error
        earlier = "; ".join(f"{e.path} line {e.line}" for e in self.kept[: min(5, self.limit)])
        return DataError(
            error.path,
            error.line,
            f"{error.message} (bad row {self.count}: more than data_conf.max_bad_rows={self.limit}; the first "
            f"skipped: {earlier})",
        )

    def summary(self) -> str | None:
        """A line for the log and the events when rows were skipped, else None."""
        if not self.count:
            return None
        shown = "; ".join(str(e) for e in self.kept[:3])
        more = f" and {self.count - 3} more" if self.count > 3 else ""
        return f"skipped {self.count} bad data rows (data_conf.max_bad_rows={self.limit}): {shown}{more}"


def load_records(path: str | Path, data_type: DataType, bad_rows: BadRows | None = None) -> list[dict[str, Any]]:
    """Load, validate and re-dump every record of ``path`` (JSONL, or a JSON array if it starts with ``[``)."""
    return [record for _, record in read_records(path, RECORD_TYPES[DataType(data_type)], bad_rows)]


def read_records(
    path: str | Path, record_type: type[BaseModel], bad_rows: BadRows | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Every record of ``path`` validated as ``record_type`` and re-dumped, with its 1-based line number; a bad
    record raises :class:`DataError` naming the file and line (or is skipped, within ``bad_rows``' limit)."""
    return list(iter_records(path, record_type, bad_rows))


def iter_records(
    path: str | Path, record_type: type[BaseModel], bad_rows: BadRows | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`read_records` one record at a time."""
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    count, bad_before = 0, bad_rows.count
    for line, item in iter_items(path):
        try:
            if isinstance(item, DataError):
                raise item
            record = validate(path, line, item, record_type)
        except DataError as exc:
            bad_rows.add(exc)
            continue
        count += 1
        yield line, record
    if count == 0 and bad_rows.count == bad_before:
        raise DataError(path, None, "the file holds no records")


def open_data_file(path: str | Path) -> BinaryIO:
    """``path`` opened for reading; a missing file names the path as written in the config (what the user fixes)."""
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "data file not found", str(path)) from None


def is_json_array(path: str | Path) -> bool:
    """Whether the file holds a JSON array (its first non-blank character is ``[``) rather than JSONL; DataError for
    a file with nothing in it."""
    with open_data_file(path) as f:
        start = True
        while block := f.read(_READ_BLOCK):
            if start and block.startswith(_BOM):
                block = block[len(_BOM) :]
            start = False
            text = block.lstrip(_WHITESPACE_BYTES)
            if text:
                return text[:1] == b"["
    raise DataError(path, None, "the file is empty: expected JSONL records or a JSON array of records")


def iter_items(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Every item of the file with its 1-based line: parsed JSON, or the DataError of a line that is not valid JSON
    (a file that is not JSON as a whole raises)."""
    if is_json_array(path):
        yield from _iter_json_array(path)
        return
    with open_data_file(path) as f:
        for line, text in iter_jsonl_lines(path, f, 1):
            yield line, text if isinstance(text, DataError) else parse_json(path, line, text)


def iter_jsonl_lines(
    path: str | Path, f: BinaryIO, first_line: int, end: int | None = None
) -> Iterator[tuple[int, str | DataError]]:
    """The non-blank lines of an open JSONL file from its current position (line ``first_line``, the file's start or
    just after a newline) up to byte ``end``: the line's text, or a DataError when it is not UTF-8."""
    at_start = f.tell() == 0
    position = f.tell()
    # Lines end at b"\n" only: JSON strings may legally hold U+2028 and friends, which str.splitlines() would treat
    # as line breaks, cutting a record in two and shifting line numbers.
    for line, raw in enumerate(f, start=first_line):
        if end is not None and position >= end:
            break
        position += len(raw)
        if at_start:
            at_start = False
            if raw.startswith(_BOM):  # a byte-order mark from Windows editors
                raw = raw[len(_BOM) :]
        if not raw.strip(_WHITESPACE_BYTES):
            continue  # blank lines (a trailing newline, spacing) are not records
        try:
            yield line, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line, DataError(path, line, f"not UTF-8 text ({exc})")


def parse_json(path: str | Path, line: int, text: str) -> Any:
    """The JSON value of one JSONL line, or its DataError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return DataError(path, line, f"not valid JSON: {exc.msg} (column {exc.colno})")


def parse_record(path: str | Path, line: int, text: str | DataError, record_type: type[BaseModel]) -> dict[str, Any]:
    """One JSONL line validated as ``record_type`` and re-dumped; DataError naming the file and line otherwise.

    pydantic parses and validates the JSON in one go (several times faster than ``json.loads`` + validation); a line
    it rejects goes through :func:`parse_json` and :func:`validate` for their exact error.
    """
    if isinstance(text, DataError):
        raise text
    try:
        return record_type.model_validate_json(text).model_dump()
    except ValueError:
        pass
    item = parse_json(path, line, text)
    if isinstance(item, DataError):
        raise item
    return validate(path, line, item, record_type)


class _ArrayReader:
    """A JSON array read incrementally: the text is kept from the last complete line before the current element."""

    def __init__(self, path: str | Path, f: Any) -> None:
        self.path = path
        self.f = f
        self.text = ""
        self.pos = 0
        self.eof = False
        self.base_line = 1  # the line of text[0]; text always starts at the start of a line
        self._counted = (0, 1)  # (position, its line): line_of counts forward from here

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.f.read(_READ_BLOCK)
        except UnicodeDecodeError as exc:
            raise DataError(self.path, None, f"not UTF-8 text ({exc})") from None
        if not chunk:
            self.eof = True
            return False
        cut = self.text.rfind("\n", 0, self.pos) + 1
        if cut > _READ_BLOCK:  # drop what is behind us, keeping whole lines (columns stay right)
            self.base_line += self.text.count("\n", 0, cut)
            self.text, self.pos = self.text[cut:], self.pos - cut
            self._counted = (0, self.base_line)
        self.text += chunk
        return True

    def line_of(self, pos: int) -> int:
        start, line = self._counted
        if pos < start:
            start, line = 0, self.base_line
        line += self.text.count("\n", start, pos)
        self._counted = (pos, line)
        return line

    def skip_ws(self) -> None:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text) or not self.fill():
                return

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, message: str) -> DataError:
        return DataError(self.path, self.line_of(self.pos), f"not valid JSON: {message}")

    def element(self, decoder: json.JSONDecoder) -> tuple[int, Any]:
        while True:
            try:
                item, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.text) - self.pos < _MAX_ELEMENT_CHARS and self.fill():
                    continue  # the element may just not be read in full yet
                raise DataError(
                    self.path, self.base_line + exc.lineno - 1, f"not valid JSON: {exc.msg} (column {exc.colno})"
                ) from None
            if end == len(self.text) and self.fill():
                continue  # a number or literal may go on in the next block
            line = self.line_of(self.pos)
            self.pos = end
            return line, item


def _iter_json_array(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Parse ``[obj, obj, ...]`` element by element, remembering the line on which each element starts."""
    decoder = json.JSONDecoder()
    with open_data_file(path) as raw:
        # newline="": lines are counted by "\n" alone, as in JSONL
        f = codecs.getreader("utf-8-sig")(raw)
        reader = _ArrayReader(path, f)
        reader.peek()
        reader.pos += 1  # past "["
        if reader.peek() == "]":
            reader.pos += 1
        else:
            while True:
                if reader.peek() == "":
                    raise reader.fail("the array is not closed (missing ']')")
                yield reader.element(decoder)
                following = reader.peek()
                if following == ",":
                    reader.pos += 1
                    continue
                if following == "]":
                    reader.pos += 1
                    break
                raise reader.fail("expected ',' or ']' after an array element")
        if reader.peek() != "":
            raise reader.fail("extra data after the closing ']'")


def validate(path: str | Path, line: int, item: Any, record_type: type[BaseModel]) -> dict[str, Any]:
    """``item`` validated as ``record_type`` and re-dumped; DataError naming the file, line and field otherwise."""
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


__all__ = [
    "RECORD_TYPES",
    "BadRows",
    "is_json_array",
    "iter_items",
    "iter_jsonl_lines",
    "iter_records",
    "load_records",
    "open_data_file",
    "parse_record",
    "read_records",
    "validate",
]
