"""Database engines and sessions, built from settings (no import-time globals): pooled for the API and the
workers' pool processes, unpooled for a process that forks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

# seconds a new connection may take before the database counts as unreachable (a partitioned host never refuses)
CONNECT_TIMEOUT_S = 5


DEFAULT_POOL_SIZE = 10


def make_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # type: ignore[no-untyped-def]
            # WAL lets the API read while a worker writes events; foreign keys are off by default in SQLite
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # a fixed pool: overflow connections are closed on return, and reconnecting under load costs ~10 ms each.
    # pre-ping: a connection that died in the pool (a database restart) is replaced, not handed to a request.
    # connect_timeout: an unreachable host fails in seconds, not minutes (a connect_timeout in the URL wins)
    wanted = url.startswith("postgresql") and "connect_timeout" not in make_url(url).query
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if wanted else {}
    return create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, connect_args=connect_args)


def libpq_url(url: str) -> str | None:
    """The database's address for a plain psycopg connection (LISTEN), or None where it is not Postgres."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached or used right now (down, restarting, connection lost,
    pool exhausted, statement cancelled): worth retrying later, unlike a bug or a constraint violation."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@lru_cache
def engine_for(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    return make_engine(url, pool_size)


def session_factory(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url, pool_size), expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A new session that commits on success, rolls back on error, and is closed either way."""
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """:func:`transaction` on the database at ``url``."""
    with transaction(session_factory(url)) as session:
        yield session


def unpooled_sessions(database_url: str) -> sessionmaker[Session]:
    """Sessions for a process that forks (Celery's main process: metrics, recovery): no pooled connection, so none is
    ever shared with a pool process forked later (the cache holds its lock across fork, so no query is in flight)."""
    connect_args: dict[str, Any] = {}
    if database_url.startswith("postgresql"):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    elif database_url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": CONNECT_TIMEOUT_S}
    return sessionmaker(create_engine(database_url, poolclass=NullPool, connect_args=connect_args))
