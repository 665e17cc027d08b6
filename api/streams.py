"""Live views of a job's events: Server-Sent Events and the followed log.

New events are found by polling the database (every ~0.3 s; the same on Postgres and SQLite) in a worker thread,
so the event loop never blocks and no session is held between polls. A stream ends once the job is terminal and
every event it has was sent. The job's status is read *before* its events, so an event committed before the
terminal status can never be missed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from api import repository
from api.models import JobEvent, JobStatus

BATCH = 500


@dataclass(frozen=True)
class StreamTiming:
    poll_seconds: float = 0.3
    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000  # how long an EventSource waits before reconnecting


def _fetch(
    sessions: sessionmaker[Session], project: str, job_id: str, after: int, types: tuple[str, ...] | None
) -> tuple[list[JobEvent], bool]:
    """Events after ``after`` and whether the job was already terminal before they were read."""
    with sessions() as session:  # closing ends the (read-only) transaction; loaded rows stay readable
        status = repository.get_job_status(session, project, job_id)
        events = repository.list_events(session, project, job_id, after=after, limit=BATCH, types=types)
    terminal = status is None or JobStatus(status).terminal
    return events, terminal


def format_sse(event: JobEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    # the type is a short identifier, but never let a newline in it break the framing
    kind = event.type.replace("\n", " ").replace("\r", " ")
    return f"id: {event.id}\nevent: {kind}\ndata: {data}\n\n".encode()


async def _follow(
    sessions: sessionmaker[Session],
    project: str,
    job_id: str,
    after: int,
    timing: StreamTiming,
    types: tuple[str, ...] | None = None,
) -> AsyncIterator[JobEvent | None]:
    """Yields events as they come, ``None`` when a heartbeat is due, and returns after the last one."""
    cursor = after
    last_write = time.monotonic()
    while True:
        events, terminal = await anyio.to_thread.run_sync(_fetch, sessions, project, job_id, cursor, types)
        for event in events:
            cursor = event.id
            yield event
        if events:
            last_write = time.monotonic()
        if len(events) == BATCH:
            continue  # more are waiting: no pause
        if terminal:
            return
        if time.monotonic() - last_write >= timing.heartbeat_seconds:
            last_write = time.monotonic()
            yield None
        await anyio.sleep(timing.poll_seconds)


async def sse_stream(
    sessions: sessionmaker[Session], project: str, job_id: str, after: int, timing: StreamTiming
) -> AsyncIterator[bytes]:
    """``id:`` is the event id (resume with Last-Event-ID), ``event:`` its type, ``data:`` its JSON. The stream
    closes after the job's last event, a ``job`` event with the terminal status: clients stop there."""
    yield f"retry: {timing.retry_ms}\n\n".encode()
    async for event in _follow(sessions, project, job_id, after, timing):
        yield b": keep-alive\n\n" if event is None else format_sse(event)


def log_line(data: dict[str, Any]) -> str:
    """One line of text for a ``log`` event: an output line, or an engine message with its level."""
    if "line" in data:
        return str(data["line"]).rstrip("\n")
    if "message" in data:
        level = data.get("level")
        return f"[{level}] {data['message']}" if level else str(data["message"])
    return json.dumps(data)


async def log_stream(
    sessions: sessionmaker[Session], project: str, job_id: str, *, follow: bool, timing: StreamTiming
) -> AsyncIterator[bytes]:
    """The job's log lines; with ``follow`` it waits for more until the job is terminal."""
    if follow:
        async for event in _follow(sessions, project, job_id, 0, timing, types=("log",)):
            if event is not None:
                yield (log_line(event.data) + "\n").encode()
        return
    cursor = 0
    while True:
        events, _ = await anyio.to_thread.run_sync(_fetch, sessions, project, job_id, cursor, ("log",))
        if events:
            yield "".join(log_line(e.data) + "\n" for e in events).encode()
            cursor = events[-1].id
        if len(events) < BATCH:
            return
