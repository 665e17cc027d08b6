"""Live views of a job's events: Server-Sent Events and the followed log.

New events are found by polling the database (every ~0.3 s; the same on Postgres and SQLite) in a worker thread,
so the event loop never blocks and no session is held between polls. A stream ends once the job is terminal and
every event it has was sent. The job's status is read *before* its events, so an event committed before the
terminal status can never be missed.

While the database is unreachable (restarting, failing over) a stream keeps its connection: it retries every
second, sends heartbeats, and goes on where it was once the database answers again. After ``outage_seconds`` it
ends cleanly instead (an SSE stream with a comment saying so): the client reconnects with ``Last-Event-ID`` and
misses nothing. A broken database never turns into a traceback in the middle of a response.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api import repository
from api.db import is_unavailable
from api.models import JobEvent, JobStatus

logger = logging.getLogger(__name__)

BATCH = 500
OUTAGE_POLL_SECONDS = 1.0  # how often a stream asks again while the database is unreachable


@dataclass(frozen=True)
class StreamTiming:
    poll_seconds: float = 0.3
    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000  # how long an EventSource waits before reconnecting
    outage_seconds: float = 30.0  # how long a stream waits for an unreachable database before it ends


class DatabaseOutage(Exception):
    """The database stayed unreachable for longer than a stream waits."""


class _OutageWatch:
    """One stream's view of the database: :meth:`fetch` answers None while it is unreachable, and raises
    :class:`DatabaseOutage` once it has been so for ``seconds``."""

    def __init__(self, job_id: str, seconds: float) -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.since: float | None = None

    async def fetch(
        self,
        sessions: sessionmaker[Session],
        project: str,
        after: int,
        types: tuple[str, ...] | None,
    ) -> tuple[list[JobEvent], bool] | None:
        try:
            answer = await anyio.to_thread.run_sync(_fetch, sessions, project, self.job_id, after, types)
        except SQLAlchemyError as exc:
            if not is_unavailable(exc):
                raise
            now = time.monotonic()
            if self.since is None:
                self.since = now
                logger.warning(
                    "job %s: the database is unreachable (%s); the stream waits", self.job_id, type(exc).__name__
                )
            elif now - self.since >= self.seconds:
                logger.warning(
                    "job %s: the database stayed unreachable for %.0f s; the stream ends", self.job_id, now - self.since
                )
                raise DatabaseOutage from None
            return None
        if self.since is not None:
            logger.info("job %s: the database answers again after %.1f s", self.job_id, time.monotonic() - self.since)
            self.since = None
        return answer


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
    watch = _OutageWatch(job_id, timing.outage_seconds)
    while True:
        answer = await watch.fetch(sessions, project, cursor, types)
        if answer is None:  # the database is unreachable: keep the connection alive and ask again
            if time.monotonic() - last_write >= timing.heartbeat_seconds:
                last_write = time.monotonic()
                yield None
            await anyio.sleep(OUTAGE_POLL_SECONDS)
            continue
        events, terminal = answer
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
    try:
        async for event in _follow(sessions, project, job_id, after, timing):
            yield b": keep-alive\n\n" if event is None else format_sse(event)
    except DatabaseOutage:
        yield b": the database is unreachable; reconnect with Last-Event-ID\n\n"


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
    try:
        if follow:
            async for event in _follow(sessions, project, job_id, 0, timing, types=("log",)):
                if event is not None:
                    yield (log_line(event.data) + "\n").encode()
            return
        async for line in _log_lines(sessions, project, job_id, timing):
            yield line
    except DatabaseOutage:
        return  # the log so far; the status and headers were sent already, so there is no error to answer


async def _log_lines(
    sessions: sessionmaker[Session], project: str, job_id: str, timing: StreamTiming
) -> AsyncIterator[bytes]:
    cursor = 0
    watch = _OutageWatch(job_id, timing.outage_seconds)
    while True:
        answer = await watch.fetch(sessions, project, cursor, ("log",))
        if answer is None:
            await anyio.sleep(OUTAGE_POLL_SECONDS)
            continue
        events, _ = answer
        if events:
            yield "".join(log_line(e.data) + "\n" for e in events).encode()
            cursor = events[-1].id
        if len(events) < BATCH:
            return
