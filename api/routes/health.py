"""Liveness and readiness, for load balancers and orchestrators (no token needed)."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from sqlalchemy import text

from api.deps import Database, DatabaseDep, SettingsDep
from api.errors import DATABASE_RETRY_AFTER_S, ApiError, ErrorIssue, error_responses
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get(
    "/healthz",
    name="get_health",
    summary="Check liveness",
    response_model=Health,
    responses=error_responses(database=False),
)
async def get_health() -> Health:
    """The process answers (liveness): no database, no worker thread, so it answers at once under any load."""
    return Health(status="ok")


async def _check_database(database: Database) -> str:
    await database.run(lambda session: session.execute(text("SELECT 1")), wait_seconds=CHECK_TIMEOUT_S)
    return "ok"


def _check_broker(url: str) -> None:
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
        return
    from kombu import Connection  # the other transports Celery supports (the embedded SQLite one included)

    with Connection(url, connect_timeout=CHECK_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)


@router.get(
    "/readyz",
    name="get_readiness",
    summary="Check readiness (database and broker)",
    response_model=Readiness,
    responses=error_responses(503),
)
async def get_readiness(database: DatabaseDep, settings: SettingsDep) -> Readiness:
    """The database answers `SELECT 1` within 2 s (a saturated connection pool does not: `overloaded`) and the
    broker is reachable; 503 names whichever is not."""
    checks: dict[str, str] = {}
    failures: list[ErrorIssue] = []
    for name, check in (
        ("database", lambda: _check_database(database)),
        ("broker", lambda: _broker_check(settings.broker_url)),
    ):
        try:
            checks[name] = await check()
        except ApiError as exc:  # no database slot within the check's time: saturated
            checks[name] = f"overloaded ({exc.code})"
            failures.append(ErrorIssue(param=name, message=checks[name]))
        except Exception as exc:
            # the class name is enough to act on; the message could hold a URL with a password
            checks[name] = f"unreachable ({type(exc).__name__})"
            failures.append(ErrorIssue(param=name, message=checks[name]))
    running, waiting = database.busy
    checks["database_pool"] = f"{running} of {database.slots} connections in use, {waiting} requests waiting"
    if failures:
        names = " and ".join(f"{f.param} {f.message.split(' ', 1)[0]}" for f in failures)
        message = f"not ready: {names}"
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        raise ApiError(503, "not_ready", message, failures[0].param, details=failures, headers=retry)
    return Readiness(status="ready", checks=checks)


async def _broker_check(url: str) -> str:
    with anyio.fail_after(CHECK_TIMEOUT_S * 2):
        await anyio.to_thread.run_sync(_check_broker, url, abandon_on_cancel=True)
    return "ok"
