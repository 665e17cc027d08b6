"""What a running engine says, read as it says it: its stdout and stderr as terminal lines (one reader thread per
pipe), and the complete lines of its events file (docs/events.md), merged in time order into the job's events."""

from __future__ import annotations

import codecs
import collections
import heapq
import json
import logging
import os
import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from finetuning.contract import EVENTS_VERSION, EventType
from worker.store import Event

MAX_LINE_CHARS = 16_000  # longer lines are cut (a line without newline is broken there)
STDERR_TAIL_LINES = 20  # kept for the message of a crash
MAX_TYPE_CHARS = 32


class EventsTail:
    """The engine's events file, read from ``offset`` on: complete lines only (a line without its newline is still
    being written). Keeps the final ``status`` event of the current format."""

    def __init__(self, path: Path, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self.path = path
        self.log = log
        self.offset = 0
        self.final_status: dict[str, Any] | None = None
        self.warned_versions: set[Any] = set()

    def skip_existing(self) -> bytes:
        """A retry in the same folder appends to the file: start after its last complete line (a torn last line is
        cut off by the engine when it starts) and return what came before, an earlier attempt's events."""
        if not self.path.exists():
            return b""
        content = self.path.read_bytes()
        self.offset = content.rfind(b"\n") + 1
        return content[: self.offset]

    def earlier_events(self, earlier: bytes, after_seq: int) -> list[Event]:
        """The engine events in ``earlier`` numbered after ``after_seq``; an earlier attempt's outcome is not kept as
        this one's."""
        final_status = self.final_status
        events = [
            (str(event["type"])[:MAX_TYPE_CHARS], event)
            for raw in earlier.splitlines()
            if (event := self.parse(raw)) is not None and isinstance(event.get("seq"), int) and event["seq"] > after_seq
        ]
        self.final_status = final_status
        return events

    def read(self) -> list[Event]:
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size < self.offset:
                    self.log.warning(
                        "events file shrank from %d to %d bytes: reading on from its end", self.offset, size
                    )
                    self.offset = size
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return []
        self.offset += end
        return [
            (str(event["type"])[:MAX_TYPE_CHARS], event)
            for raw in chunk[:end].splitlines()
            if (event := self.parse(raw)) is not None
        ]

    def parse(self, raw: bytes) -> dict[str, Any] | None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            # Postgres' jsonb takes no NaN/Infinity: keep them as text (the engine writes them so already)
            event = clean(json.loads(text, parse_constant=str))
        except json.JSONDecodeError:
            self.log.warning("skipped an events line that is not JSON: %.200s", text)
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.log.warning("skipped an events line without a type: %.200s", text)
            return None
        version = event.get("v")
        if version != EVENTS_VERSION:
            if version not in self.warned_versions:
                self.warned_versions.add(version)
                self.log.warning("events of format version %r are stored but not interpreted", version)
        elif event["type"] == EventType.STATUS:
            self.final_status = event
        return event


class EngineOutput:
    """The engine's pipes and its events file, collected once per tick into one ordered list of events."""

    def __init__(self, events_file: Path, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self.events = EventsTail(events_file, log)
        self.lines: queue.Queue[tuple[str, str | None, float]] = queue.Queue()
        self.readers: list[threading.Thread] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        # the last lines of either stream: a Ray job's log is one stream
        self.last_lines: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def read_pipes(self, stdout: IO[bytes] | None, stderr: IO[bytes] | None) -> None:
        for name, pipe in (("stdout", stdout), ("stderr", stderr)):
            assert pipe is not None
            reader = threading.Thread(target=read_lines, args=(name, pipe, self.lines), daemon=True)
            reader.start()
            self.readers.append(reader)

    def drain(self, timeout: float) -> None:
        """Once the engine's group is gone: let the readers reach the end of the pipes."""
        for reader in self.readers:
            reader.join(timeout=timeout)

    def collect(self) -> list[Event]:
        """The lines the readers have queued and the new complete lines of the events file. Both sources are read
        once per tick; within a tick they are merged by time (a line's arrival, an event's ``time``), so that a line
        printed after an event is stored after it."""
        lines: list[tuple[float, Event]] = []
        while True:
            try:
                stream, line, at = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue  # a reader reached the end of its pipe
            if stream == "stderr":
                self.stderr_tail.append(line)
            self.last_lines.append(line)
            lines.append((at, ("log", {"stream": stream, "line": line})))
        read_at = time.time()
        events = [(_event_time(data, read_at), (kind, data)) for kind, data in self.events.read()]
        # a merge, not a sort: each source keeps its own order whatever its clock did
        return [event for _, event in heapq.merge(lines, events, key=lambda item: item[0])]


def clean(value: Any) -> Any:
    """``value`` with every string storable in Postgres' jsonb: no NUL character, no lone surrogate (both can come
    from ``\\u`` escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _event_time(event: dict[str, Any], default: float) -> float:
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return default


def read_lines(stream: str, pipe: IO[bytes], out: queue.Queue[tuple[str, str | None, float]]) -> None:
    """Reader thread: split a pipe into lines as a terminal shows them, put ``(stream, line, arrival time)`` on
    ``out``, then ``(stream, None, ...)`` at its end. Blocking reads are fine here: each pipe has its own thread."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    fd = pipe.fileno()
    try:
        while True:
            chunk = os.read(fd, 65536)
            text = pending + decoder.decode(chunk, final=not chunk)
            *lines, pending = text.split("\n")
            for line in lines:
                out.put((stream, visible(line), time.time()))
            pending = _compact(pending)
            if len(pending) > MAX_LINE_CHARS:
                out.put((stream, visible(pending), time.time()))
                pending = ""
            if not chunk:
                break
        if pending.strip("\r"):
            out.put((stream, visible(pending), time.time()))
    except OSError:
        pass  # the pipe was closed under us
    finally:
        pipe.close()
        out.put((stream, None, time.time()))


def visible(line: str) -> str:
    """What a terminal shows of ``line``: the text after its last carriage return (a redrawn progress bar), without
    NUL characters (Postgres' jsonb rejects them), cut at ``MAX_LINE_CHARS``."""
    parts = [p for p in line.split("\r") if p]
    text = parts[-1] if parts else ""
    return text.replace("\x00", "\ufffd")[:MAX_LINE_CHARS]


def _compact(pending: str) -> str:
    # an unfinished line redrawn many times (a progress bar) keeps only its latest state, so memory stays bounded
    if pending.count("\r") < 2:
        return pending
    return visible(pending) + ("\r" if pending.endswith("\r") else "")
