"""Request dependencies: the app's settings and the request's way to the database.

Every database call of a request is one unit of work, :meth:`Database.run`: a transaction opened, used, committed
(or rolled back) and closed inside one worker thread. A connection is therefore never held across an ``await``: a
request that is cancelled (its client hung up, its server shuts down) or that waits for a thread cannot keep one,
and the unit it started always finishes and gives its connection back. (A session held by a sync generator
dependency did neither: under a burst its cleanup waited for a thread while every thread waited for a connection,
and a cancelled request left its connection ``idle in transaction`` for good.)

Units of work are admitted through a gate as wide as the connection pool; a request that cannot get in within
``db_wait_seconds`` answers ``503 overloaded`` with ``Retry-After`` instead of queueing for the pool.

Services never commit. They register work that must only happen once their changes are durable (sending a job to
the queue) with :func:`after_commit`; the unit of work runs it after a successful commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError
from jobcore.db import transaction
from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_AFTER_COMMIT = "after_commit"
OVERLOADED_RETRY_AFTER_S = 1


async def get_app_settings(request: Request) -> ServiceSettings:
    """The settings the app was created with (``create_app(settings)``), never a module global."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the unit of work's transaction has committed; dropped if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def overloaded(what: str = "database") -> ApiError:
    return ApiError(
        503,
        "overloaded",
        f"the service is at capacity ({what}): retry in {OVERLOADED_RETRY_AFTER_S} s (repeat a submission with the "
        "same Idempotency-Key, so that it cannot make a second job)",
        headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_S)},
    )


class Database:
    """The app's gate to the database: at most ``slots`` units of work at once (the pool's size), each in a worker
    thread of its own; a unit that cannot start within ``wait_seconds`` is refused (:func:`overloaded`)."""

    def __init__(self, sessions: sessionmaker[Session], *, slots: int, wait_seconds: float) -> None:
        self.sessions = sessions
        self.slots = slots
        self.wait_seconds = wait_seconds
        # anyio's limiters belong to an event loop: made on first use, in the serving loop
        self._gate: anyio.CapacityLimiter | None = None
        self._threads: anyio.CapacityLimiter | None = None

    def _limiters(self) -> tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
        if self._gate is None or self._threads is None:
            self._gate = anyio.CapacityLimiter(self.slots)
            self._threads = anyio.CapacityLimiter(self.slots)
        return self._gate, self._threads

    @property
    def busy(self) -> tuple[int, int]:
        """(units running, units waiting to start)."""
        if self._gate is None:
            return 0, 0
        statistics = self._gate.statistics()
        return statistics.borrowed_tokens, statistics.tasks_waiting

    async def run(self, work: Callable[[Session], T], *, wait_seconds: float | None = None) -> T:
        """``work(session)`` in one transaction in a worker thread; after-commit callbacks follow in that thread.

        Cancelling the caller does not cut the unit short (its thread runs to the end and closes the session): the
        cancellation takes effect when it returns.
        """
        gate, threads = self._limiters()
        try:
            with anyio.fail_after(self.wait_seconds if wait_seconds is None else wait_seconds):
                await gate.acquire()
        except TimeoutError:
            raise overloaded() from None
        # shielded: once started, a unit and its after-commit work (the enqueue of a committed job) always finish;
        # a cancellation takes effect afterwards
        with anyio.CancelScope(shield=True):
            try:
                result = await anyio.to_thread.run_sync(self._unit_of_work, work, limiter=threads)
            finally:
                gate.release()
        return result

    def _unit_of_work(self, work: Callable[[Session], T]) -> T:
        with transaction(self.sessions) as session:
            result = work(session)
            callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
        # the connection is back in the pool here: a slow broker does not hold it
        for callback in callbacks:
            try:
                callback()
            except Exception:
                # the data is committed; what failed afterwards (e.g. the broker) must not turn success into a 500
                logger.exception("after-commit callback %r failed", callback)
        return result


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


SettingsDep = Annotated[ServiceSettings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
