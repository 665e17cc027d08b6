"""Problem rows: listed (the first :data:`MAX_PROBLEMS_LISTED`) with file, line, kind and reason; counted by kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetuning.data.errors import DataError


# problem rows listed in the report (the counts go on)
MAX_PROBLEMS_LISTED = 1000


@dataclass
class Problems:
    """Problem rows, the first :data:`MAX_PROBLEMS_LISTED` listed, all counted by kind."""

    listed: list[dict[str, Any]] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, file: str, line: int | None, reason: str, *, blocking: bool = False) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if len(self.listed) < MAX_PROBLEMS_LISTED:
            self.listed.append({"file": file, "line": line, "kind": kind, "reason": reason, "skipped": blocking})

    def add_data_error(self, error: DataError, file: str) -> None:
        self.add(classify(error.message), file, error.line, error.message, blocking=True)

    def add_bad_rows(self, kept: Sequence[DataError], count: int, reported: Callable[[str], str]) -> None:
        """A loader's bad rows: those it kept listed (``reported`` turns a path read into the name the report
        gives it), the rest of ``count`` counted as ``invalid_record``."""
        for error in kept:
            self.add_data_error(error, reported(error.path))
        if count > len(kept):
            self.by_kind["invalid_record"] = self.by_kind.get("invalid_record", 0) + count - len(kept)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.listed, key=lambda p: (p["file"], p["line"] or 0))
        return {"total": self.total, "by_kind": dict(sorted(self.by_kind.items())), "rows": ordered}


def classify(message: str) -> str:
    """The kind of a loader's error message (finetuning.data.loading, finetuning.data.sources)."""
    if message.startswith("not valid JSON"):
        return "not_json"
    if message.startswith("not UTF-8"):
        return "not_utf8"
    if "chat template" in message:
        return "template_error"
    if "chosen_messages" in message and "Field required" in message:
        return "missing_chosen"
    if "rejected_messages" in message and "Field required" in message:
        return "missing_rejected"
    if ".role" in message:
        return "bad_role"
    if message.startswith("the prompt ends with an assistant message"):
        return "prompt_ends_with_answer"
    if message.startswith("grader '"):
        return "grader_cannot_read"
    if message.startswith("expected a JSON object"):
        return "not_an_object"
    return "invalid_record"


BLOCKING_KINDS = frozenset(
    {
        "not_json",
        "not_utf8",
        "template_error",
        "missing_chosen",
        "missing_rejected",
        "bad_role",
        "not_an_object",
        "prompt_ends_with_answer",
        "grader_cannot_read",
        "invalid_record",
    }
)
