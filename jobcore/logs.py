"""Structured logs shared by the API and the workers: the job and request context every record carries, and JSON lines.

- :data:`JOB_ID` and :data:`REQUEST_ID` are context variables: the worker sets the job id for the whole of a job
  (:func:`job_context`), the API's :class:`RequestContextMiddleware` sets the request id and, on routes with a
  ``{job_id}``, the job id. Every log record emitted meanwhile, by any logger, carries them.
- :class:`JsonFormatter` writes one JSON object per line: ``time``, ``level``, ``logger``, ``message``, then
  ``job_id`` / ``request_id`` where known, ``exception`` with the traceback, and any ``extra=`` fields.
- :func:`use_json_logs` switches the handlers of given loggers to it (``FINETUNING_LOG_FORMAT=json``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from finetuning.redaction import redact_text

JOB_ID: ContextVar[str | None] = ContextVar("finetuning_job_id", default=None)
REQUEST_ID: ContextVar[str | None] = ContextVar("finetuning_request_id", default=None)

# the attributes every LogRecord has: the rest came from ``extra=`` and are written as fields of their own
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
    "color_message",  # uvicorn's copy of the message with terminal colours
}
_CONTEXT_FIELDS = ("job_id", "request_id")


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every log record emitted inside the block (in this thread or task) carries ``job_id``."""
    token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        JOB_ID.reset(token)


class ContextFilter(logging.Filter):
    """Sets ``record.job_id`` and ``record.request_id`` from the context (None when unknown) unless the call set them
    (``extra={"job_id": ...}``); so text formats may use ``%(job_id)s`` too. Installed on handlers, so it sees the
    records of every logger they handle."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = JOB_ID.get()
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class RedactingFilter(logging.Filter):
    """Masks credentials in every record a handler writes (:func:`finetuning.redaction.redact_text`): a URI with a
    password, a token, a secret this process resolved, whichever logger logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def redact_logs(loggers: Iterable[logging.Logger | str] = ("",)) -> None:
    """Put a :class:`RedactingFilter` on every handler of ``loggers`` (default: the root logger). Idempotent."""
    for item in loggers:
        logger = logging.getLogger(item) if isinstance(item, str) else item
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def _utc_iso(timestamp: float) -> str:
    """``2026-11-02T10:00:00.123Z``, as the engine's events write time."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = (JOB_ID if name == "job_id" else REQUEST_ID).get()
            if value is not None:
                entry[name] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args  # uvicorn's access line, as fields too
            entry.update(client=client, method=method, path=path, status=status)
        entry.update(self.extra_fields(record))
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in entry and name not in _CONTEXT_FIELDS:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(entry, default=str)
        except (TypeError, ValueError):  # an extra field JSON cannot hold (e.g. a dict with tuple keys)
            return json.dumps(
                {k: v if isinstance(v, str | int | float | bool | None) else repr(v) for k, v in entry.items()}
            )

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """Fields a subclass adds (the worker: the Celery task)."""
        return {}


def use_json_logs(
    loggers: Iterable[logging.Logger | str] = ("",),
    *,
    formatter: Callable[[], logging.Formatter] = JsonFormatter,
) -> None:
    """Give every handler of ``loggers`` (default: the root logger) a JSON formatter and the context filter; a root
    logger without handlers gets one on stderr. Idempotent."""
    for item in loggers:
        logger = logging.getLogger(item) if isinstance(item, str) else item
        if logger is logging.getLogger() and not logger.handlers:
            logger.addHandler(logging.StreamHandler(sys.stderr))
        for handler in logger.handlers:
            handler.setFormatter(formatter())
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())
    redact_logs(loggers)
