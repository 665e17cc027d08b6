"""Live views of a job's events: Server-Sent Events and the followed log.

One feed per followed job per API process (:class:`EventHub`): a single poller asks the database for the job's new
events every ~0.3 s (the same on Postgres and SQLite) and keeps the newest in memory, and every follower of that job
in this process reads them from there. So 500 followers of one training job cost one query pair per poll, not 500,
and a follower never holds a database connection. A follower that starts behind the feed (an ``after`` or
``Last-Event-ID`` older than the feed's memory) first catches up from the database, a page at a time.

A stream ends once the job is terminal and every event it has was sent. The job's status is read *before* its
events, so an event committed before the terminal status can never be missed.

While the database is unreachable (restarting, failing over) a stream keeps its connection: the feed retries every
second, the stream sends heartbeats, and goes on where it was once the database answers again. After
``outage_seconds`` it ends cleanly instead (an SSE stream with a comment saying so): the client reconnects with
``Last-Event-ID`` and misses nothing. A broken database never turns into a traceback in the middle of a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api import repository
from api.deps import Database
from api.errors import ApiError
from jobcore.db import is_unavailable
from jobcore.models import EVENTS_CHANNEL, JobEvent, JobStatus

logger = logging.getLogger(__name__)

BATCH = 500
BUFFER = 5000  # newest events a feed keeps in memory; an older cursor catches up from the database
OUTAGE_POLL_SECONDS = 1.0  # how often a feed asks again while the database is unreachable
POLL_WAIT_SECONDS = 10.0  # how long a poll may wait for a database slot before it counts as a miss


@dataclass(frozen=True)
class StreamTiming:
    poll_seconds: float = 0.3
    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000  # how long an EventSource waits before reconnecting
    outage_seconds: float = 30.0  # how long a stream waits for an unreachable database before it ends


class DatabaseOutage(Exception):
    """The database stayed unreachable for longer than a stream waits."""


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code == 503  # no free database slot: try again at the next poll
    return isinstance(exc, SQLAlchemyError) and is_unavailable(exc)


class _Outage:
    """How long the database has been unreachable for one reader; raises :class:`DatabaseOutage` past the limit."""

    def __init__(self, job_id: str, seconds: float) -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
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

    def succeeded(self) -> None:
        if self.since is not None:
            logger.info("job %s: the database answers again after %.1f s", self.job_id, time.monotonic() - self.since)
            self.since = None


class _Feed:
    """One job's newest events, polled once for every follower in this process.

    ``start``: every event with a larger id that existed at the last poll is in ``events`` (ascending);
    ``cursor``: the newest id polled; ``finished``: the job was terminal and every event is in.
    """

    def __init__(self, hub: EventHub, project: str, job_id: str) -> None:
        self.hub = hub
        self.project = project
        self.job_id = job_id
        self.followers = 0
        self.ready = False
        self.start = 0
        self.cursor = 0
        self.events: list[JobEvent] = []
        self.finished = False
        self.failed: DatabaseOutage | None = None
        self.changed = anyio.Event()
        self.wakeup = anyio.Event()  # set by the hub when Postgres says the job has new events
        self.task: asyncio.Task[None] | None = None

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def since(self, cursor: int, types: tuple[str, ...] | None) -> list[JobEvent]:
        return [e for e in self.events if e.id > cursor and (types is None or e.type in types)]

    async def run(self) -> None:
        outage = _Outage(self.job_id, self.hub.timing.outage_seconds)
        try:
            while not self.finished:
                try:
                    more = await self._poll()
                except DatabaseOutage:
                    raise
                except Exception as exc:
                    if not _unreachable(exc):
                        raise
                    outage.failed(exc)
                    await anyio.sleep(OUTAGE_POLL_SECONDS)
                    continue
                outage.succeeded()
                if not more:
                    # a notification wakes the feed at once; the poll is the fallback (SQLite, a lost listener)
                    with anyio.move_on_after(self.hub.timing.poll_seconds):
                        await self.wakeup.wait()
                    self.wakeup = anyio.Event()
        except DatabaseOutage as exc:
            self.failed = exc
        except Exception:
            logger.exception("job %s: the event feed failed", self.job_id)
            self.failed = DatabaseOutage()
        finally:
            self.hub._forget(self)
            self._notify()

    async def _poll(self) -> bool:
        """One poll; True when a full page came back (more are waiting)."""
        if not self.ready:
            status, newest = await self.hub.database.run(self._snapshot, wait_seconds=POLL_WAIT_SECONDS)
            self.start = self.cursor = newest
            self.ready = True
            self.finished = _terminal(status)
            self._notify()
            return False
        status, events = await self.hub.database.run(self._newer, wait_seconds=POLL_WAIT_SECONDS)
        if events:
            self.events.extend(events)
            self.cursor = events[-1].id
            if len(self.events) > BUFFER:
                dropped = self.events[: len(self.events) - BUFFER]
                self.events = self.events[len(dropped) :]
                self.start = dropped[-1].id
        full = len(events) == BATCH
        if _terminal(status) and not full:
            self.finished = True
        if events or self.finished:
            self._notify()
        return full

    def _snapshot(self, session: Session) -> tuple[str | None, int]:
        status = repository.get_job_status(session, self.project, self.job_id)
        return status, repository.last_event_id(session, self.project, self.job_id)

    def _newer(self, session: Session) -> tuple[str | None, list[JobEvent]]:
        status = repository.get_job_status(session, self.project, self.job_id)  # before the events: see the module
        events = repository.list_events(session, self.project, self.job_id, after=self.cursor, limit=BATCH)
        return status, events


def _terminal(status: str | None) -> bool:
    return status is None or JobStatus(status).terminal


class EventHub:
    """The feeds of the jobs this process's clients follow (see the module). With Postgres, :meth:`listen` wakes a
    feed as soon as its job's events are committed."""

    def __init__(self, database: Database, timing: StreamTiming, *, listen_url: str | None = None) -> None:
        self.database = database
        self.timing = timing
        self.listen_url = listen_url
        self.listening = False
        self._feeds: dict[tuple[str, str], _Feed] = {}

    def wake(self, job_id: str) -> None:
        for (_project, followed), feed in list(self._feeds.items()):
            if followed == job_id:
                feed.wakeup.set()

    async def listen(self) -> None:
        """LISTEN for new events until cancelled, reconnecting after a lost connection (meanwhile feeds poll)."""
        import psycopg

        if self.listen_url is None:
            return
        delay = 1.0
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self.listen_url, autocommit=True, connect_timeout=5)
                async with connection:
                    await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self.listening, delay = True, 1.0
                    for key in list(self._feeds):  # events of the gap are found by the next poll of each feed
                        self.wake(key[1])
                    async for notification in connection.notifies():
                        self.wake(notification.payload)
            except psycopg.Error as exc:
                if self.listening:
                    logger.warning("lost the event notifications (%s); the streams poll until they are back", exc)
                self.listening = False
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)

    @property
    def followed(self) -> int:
        return len(self._feeds)

    @contextlib.asynccontextmanager
    async def feed(self, project: str, job_id: str) -> AsyncIterator[_Feed]:
        key = (project, job_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(self, project, job_id)
            feed.task = asyncio.get_running_loop().create_task(feed.run())
        feed.followers += 1
        try:
            yield feed
        finally:
            feed.followers -= 1
            if feed.followers == 0 and feed.task is not None:
                feed.task.cancel()
                self._forget(feed)

    def _forget(self, feed: _Feed) -> None:
        if self._feeds.get((feed.project, feed.job_id)) is feed:
            del self._feeds[(feed.project, feed.job_id)]

    async def read(
        self, project: str, job_id: str, after: int, types: tuple[str, ...] | None, outage: _Outage
    ) -> list[JobEvent] | None:
        """A page of events after ``after`` straight from the database; None while it is unreachable."""

        def page(session: Session) -> list[JobEvent]:
            return repository.list_events(session, project, job_id, after=after, limit=BATCH, types=types)

        try:
            events = await self.database.run(page, wait_seconds=POLL_WAIT_SECONDS)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            outage.failed(exc)
            return None
        outage.succeeded()
        return events


async def _follow(
    hub: EventHub, project: str, job_id: str, after: int, types: tuple[str, ...] | None = None
) -> AsyncIterator[JobEvent | None]:
    """Yields events as they come, ``None`` when a heartbeat is due, and returns after the last one."""
    timing = hub.timing
    cursor = after
    last_write = time.monotonic()
    outage = _Outage(job_id, timing.outage_seconds)
    async with hub.feed(project, job_id) as feed:
        while True:
            if feed.failed is not None:
                raise feed.failed
            changed = feed.changed
            if feed.ready and cursor < feed.start:  # behind the feed's memory: catch up from the database
                events = await hub.read(project, job_id, cursor, types, outage)
                if events is None:
                    await anyio.sleep(OUTAGE_POLL_SECONDS)
                else:
                    for event in events:
                        cursor = event.id
                        yield event
                    if events:
                        last_write = time.monotonic()
                    if len(events) < BATCH:
                        cursor = max(cursor, feed.start)  # everything up to the feed's start is delivered
                    continue
            elif feed.ready:
                events = feed.since(cursor, types)
                for event in events:
                    yield event
                if events:
                    last_write = time.monotonic()
                cursor = max(cursor, feed.cursor)
                if feed.finished:
                    return
            wait = timing.heartbeat_seconds - (time.monotonic() - last_write)
            if wait > 0:
                with anyio.move_on_after(wait):
                    await changed.wait()
            if time.monotonic() - last_write >= timing.heartbeat_seconds:
                last_write = time.monotonic()
                yield None


def format_sse(event: JobEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    # the type is a short identifier, but never let a newline in it break the framing
    kind = event.type.replace("\n", " ").replace("\r", " ")
    return f"id: {event.id}\nevent: {kind}\ndata: {data}\n\n".encode()


async def sse_stream(hub: EventHub, project: str, job_id: str, after: int) -> AsyncIterator[bytes]:
    """``id:`` is the event id (resume with Last-Event-ID), ``event:`` its type, ``data:`` its JSON. The stream
    closes after the job's last event, a ``job`` event with the terminal status: clients stop there."""
    yield f"retry: {hub.timing.retry_ms}\n\n".encode()
    try:
        async for event in _follow(hub, project, job_id, after):
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


async def log_stream(hub: EventHub, project: str, job_id: str, *, follow: bool) -> AsyncIterator[bytes]:
    """The job's log lines; with ``follow`` it waits for more until the job is terminal."""
    try:
        if follow:
            async for event in _follow(hub, project, job_id, 0, types=("log",)):
                if event is not None:
                    yield (log_line(event.data) + "\n").encode()
            return
        cursor = 0
        outage = _Outage(job_id, hub.timing.outage_seconds)
        while True:
            events = await hub.read(project, job_id, cursor, ("log",), outage)
            if events is None:
                await anyio.sleep(OUTAGE_POLL_SECONDS)
                continue
            if events:
                yield "".join(log_line(e.data) + "\n" for e in events).encode()
                cursor = events[-1].id
            if len(events) < BATCH:
                return
    except DatabaseOutage:
        return  # the log so far; the status and headers were sent already, so there is no error to answer
