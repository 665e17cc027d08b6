"""Errors raised while reading training data."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file holds something that is not a valid record.

    ``line`` is 1-based: the line of the JSONL record, or the line where the JSON array element starts;
    ``None`` when the problem is the file as a whole (empty, not UTF-8, not a JSON array).
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path} line {line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[DataError], tuple[str, int | None, str]]:
        # Keeps the error picklable (datasets worker processes, multiprocessing) despite the custom __init__.
        return (type(self), (self.path, self.line, self.message))
