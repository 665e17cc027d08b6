"""Liveness and readiness, for load balancers and orchestrators (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.deps import SettingsDep
from api.errors import DATABASE_RETRY_AFTER_S, ApiError, ErrorIssue, error_responses
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", name="get_health", response_model=Health, responses=error_responses(database=False))
def get_health() -> Health:
    """The process answers (liveness)."""
    return Health(status="ok")


def _check_database(request: Request) -> None:
    with request.app.state.sessions() as session:
        session.execute(text("SELECT 1"))


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


@router.get("/readyz", name="get_readiness", response_model=Readiness, responses=error_responses(503))
def get_readiness(request: Request, settings: SettingsDep) -> Readiness:
    """The database answers `SELECT 1` and the broker is reachable; 503 names whichever is not."""
    checks: dict[str, str] = {}
    failures: list[ErrorIssue] = []
    for name, check in (
        ("database", lambda: _check_database(request)),
        ("broker", lambda: _check_broker(settings.broker_url)),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            # the class name is enough to act on; the message could hold a URL with a password
            checks[name] = f"unreachable ({type(exc).__name__})"
            failures.append(ErrorIssue(param=name, message=checks[name]))
    if failures:
        names = " and ".join(f.param or "" for f in failures)
        message = f"not ready: {names} unreachable"
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        raise ApiError(503, "not_ready", message, failures[0].param, details=failures, headers=retry)
    return Readiness(status="ready", checks=checks)
