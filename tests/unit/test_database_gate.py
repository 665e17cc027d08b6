"""The API's gate to the database: units of work as wide as the pool, a bounded wait, and units that always finish."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sqlalchemy import text

from api.deps import Database, after_commit
from api.errors import ApiError
from jobcore.db import session_factory


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(session_factory(f"sqlite:///{tmp_path / 'gate.db'}", 2), slots=2, wait_seconds=0.3)


def test_a_full_gate_answers_overloaded_after_the_wait(database: Database) -> None:
    release = threading.Event()

    async def scenario() -> tuple[float, ApiError]:
        async with anyio.create_task_group() as group:
            for _ in range(2):  # both slots busy
                group.start_soon(database.run, lambda _s: release.wait(5))
            await anyio.sleep(0.1)
            assert database.busy == (2, 0)
            started = time.monotonic()
            with pytest.raises(ApiError) as refused:
                await database.run(lambda s: s.execute(text("SELECT 1")))
            waited = time.monotonic() - started
            release.set()
        return waited, refused.value

    waited, error = anyio.run(scenario)
    assert 0.25 < waited < 1.0
    assert (error.status_code, error.code) == (503, "overloaded")
    assert error.headers == {"Retry-After": "1"}
    assert database.busy == (0, 0)


def test_a_cancelled_caller_does_not_cut_its_unit_short(database: Database) -> None:
    """The unit (and its after-commit work) run to the end; the slot comes back; only then is the caller cancelled."""
    finished: list[str] = []

    def work(session: object) -> None:
        time.sleep(0.3)
        after_commit(session, lambda: finished.append("enqueued"))  # type: ignore[arg-type]
        finished.append("unit")

    async def scenario() -> None:
        with anyio.move_on_after(0.05):
            await database.run(work)
        assert database.busy == (0, 0)

    anyio.run(scenario)
    assert finished == ["unit", "enqueued"]


def test_requests_over_the_in_flight_limit_are_refused_at_once_and_streams_hold_no_place() -> None:
    import json

    from api.middleware import InFlightLimitMiddleware

    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/stream":  # starts its answer at once, then keeps sending: it holds no place
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await release.wait()
        else:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    limited = InFlightLimitMiddleware(cast(Any, app), limit=2)

    async def request(path: str) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await limited({"type": "http", "path": path, "method": "GET", "headers": []}, receive, cast(Any, send))
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body

    async def scenario() -> list[int]:
        statuses: list[int] = []

        async def call(path: str) -> None:
            statuses.append((await request(path))[0])

        async with anyio.create_task_group() as group:
            group.start_soon(call, "/stream")
            await anyio.sleep(0.05)
            assert limited.waiting == 0  # the stream has started its answer
            group.start_soon(call, "/work")
            group.start_soon(call, "/work")
            await anyio.sleep(0.05)
            assert limited.waiting == 2
            status, body = await request("/work")
            assert status == 503
            assert json.loads(body)["error"]["code"] == "overloaded"
            release.set()
        assert limited.waiting == 0
        return statuses

    assert sorted(anyio.run(scenario)) == [200, 200, 200]
