"""The API under load, served as its image serves it: uvicorn with 2 worker processes, Postgres, Redis.

Bursts of 32 to 256 concurrent submissions, clients that give up after 50 ms, a liveness probe during the burst, a
SIGTERM with a live stream open. Each request must end within its bound (201, or 503 ``overloaded`` with
Retry-After), no database connection may stay ``idle in transaction`` afterwards, and the server must serve normally
at once. (Before the units of work, 64 at once left 20 connections idle in transaction for good and the server
answered nothing until killed.) Speed is measured by ``make bench-service``, not here.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from bench.loadgen import Request, Result, burst
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import make_token, new_project, sft_body
from tests.service.conftest import REPO_ROOT, settings_env

pytestmark = pytest.mark.slow

POOL = 4  # connections per API process: small, so that the bursts overflow it
WAIT_SECONDS = 1.0
GRACE_SECONDS = 3
# every request answers within this (the wait for a connection, plus the work, on a loaded 2-core machine)
BOUND_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(settings: ServiceSettings, service_root: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "FINETUNING_DB_POOL_SIZE": str(POOL),
        "FINETUNING_DB_WAIT_SECONDS": str(WAIT_SECONDS),
        "FINETUNING_MAX_QUEUED_JOBS_PER_PROJECT": "0",
        "FINETUNING_MAX_ACTIVE_JOBS_PER_PROJECT": "0",
    }
    log = (service_root / f"uvicorn-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port", str(port), "--workers", "2"]
        + ["--timeout-graceful-shutdown", str(GRACE_SECONDS), "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.2)
    yield port, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def _database_name(settings: ServiceSettings) -> str:
    return str(make_url(settings.database_url).database)


def _stuck_connections(settings: ServiceSettings) -> int:
    admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND state LIKE 'idle in transaction%'"
            return int(connection.scalar(text(query), {"db": _database_name(settings)}))
    finally:
        admin.dispose()


def _no_stuck_connections(settings: ServiceSettings) -> None:
    deadline = time.monotonic() + 5
    while _stuck_connections(settings):
        assert time.monotonic() < deadline, "connections stay idle in transaction"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def submit(settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path) -> Any:
    data = data_dir / "load.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    body = json.dumps(sft_body(tiny_model_dir, data)).encode()
    token = make_token(settings, new_project())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # a queue of their own: no worker runs these hundreds of jobs
    return lambda _i: Request("POST", "/v1/jobs/sft?queue=load-test", headers, body)


def _check_answers(result: Result, expected: int) -> None:
    assert sum(result.statuses.values()) == expected
    assert set(result.statuses) <= {201, 503}, result.statuses
    assert result.slowest < BOUND_SECONDS, result.summary()


@pytest.mark.parametrize("at_once", [32, 128, 256])
def test_a_burst_is_answered_in_bounded_time_and_leaves_nothing_behind(
    served: tuple[int, subprocess.Popen[bytes]], submit: Any, settings: ServiceSettings, at_once: int
) -> None:
    port, _ = served

    async def scenario() -> tuple[Result, float]:
        load = asyncio.create_task(burst("127.0.0.1", port, submit, at_once=at_once, timeout=BOUND_SECONDS * 2))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        health = await burst("127.0.0.1", port, lambda _i: Request("GET", "/healthz"), at_once=1, timeout=5)
        liveness = time.perf_counter() - started
        assert health.statuses == {200: 1}
        return await load, liveness

    result, liveness = asyncio.run(scenario())
    _check_answers(result, at_once)
    assert result.statuses[201] > 0
    assert liveness < 1.0  # liveness touches neither the database nor a worker thread
    _no_stuck_connections(settings)


def test_clients_that_give_up_leave_no_connection_behind(
    served: tuple[int, subprocess.Popen[bytes]], submit: Any, settings: ServiceSettings
) -> None:
    port, _ = served
    gave_up = asyncio.run(burst("127.0.0.1", port, submit, at_once=128, timeout=0.05))
    assert gave_up.statuses["timeout"] > 0  # most hung up before their answer
    _no_stuck_connections(settings)
    # the requests the clients abandoned are still worked off (a request waiting for a database slot is not
    # dropped when its client hangs up): meanwhile the next clients are told to retry at once, never made to hang,
    # and full service is back within the bound
    deadline = time.monotonic() + BOUND_SECONDS
    while True:
        after = asyncio.run(burst("127.0.0.1", port, submit, at_once=16, timeout=BOUND_SECONDS))
        assert set(after.statuses) <= {201, 503}, after.summary()
        assert after.slowest < 5
        if after.statuses == {201: 16}:
            break
        assert time.monotonic() < deadline, f"no full service {BOUND_SECONDS} s after the clients gave up"
        time.sleep(0.5)


def test_overload_answers_503_with_retry_after(served: tuple[int, subprocess.Popen[bytes]], submit: Any) -> None:
    """Far more at once than the pool serves in db_wait_seconds: the rest are told to come back, quickly."""
    port, _ = served
    request = submit(0)

    async def many() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=400)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            calls = [client.post(request.path, content=request.body, headers=request.headers) for _ in range(300)]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(many())
    refused = [r for r in answers if r.status_code == 503]
    assert {r.status_code for r in answers} <= {201, 503}
    for response in refused:
        assert response.json()["error"]["code"] == "overloaded"
        assert response.headers["Retry-After"] == "1"


def test_sigterm_stops_the_server_within_its_grace_with_a_stream_open(
    served: tuple[int, subprocess.Popen[bytes]], submit: Any, settings: ServiceSettings
) -> None:
    port, process = served
    request = submit(0)
    job = httpx.post(f"http://127.0.0.1:{port}{request.path}", content=request.body, headers=request.headers).json()
    headers = {"Authorization": request.headers["Authorization"]}
    with httpx.stream("GET", f"http://127.0.0.1:{port}/v1/jobs/{job['id']}/events/stream", headers=headers) as stream:
        assert stream.status_code == 200
        next(stream.iter_bytes())  # the stream is live (the job stays queued: it never ends by itself)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=GRACE_SECONDS + 15)
    assert time.monotonic() - started < GRACE_SECONDS + 15
    _no_stuck_connections(settings)


def test_a_committed_event_reaches_its_followers_at_once(settings: ServiceSettings, submit: Any) -> None:
    """Postgres notifies the API of new events: followers get them in milliseconds, not at the next poll (30 s)."""
    import threading

    import uvicorn

    from api.main import create_app
    from jobcore.db import session_scope
    from jobcore.models import Job, JobEvent

    port = _free_port()
    unlimited = settings.model_copy(update={"max_queued_jobs_per_project": 0, "max_active_jobs_per_project": 0})
    app = create_app(unlimited, poll_seconds=30.0, heartbeat_seconds=60.0)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not (server.started and app.state.event_hub.listening):
            assert time.monotonic() < deadline, "uvicorn did not start listening"
            time.sleep(0.05)
        request = submit(0)
        base = f"http://127.0.0.1:{port}"
        answer = httpx.post(base + request.path, content=request.body, headers=request.headers)
        assert answer.status_code == 201, answer.text
        job = answer.json()
        with session_scope(settings.database_url) as session:
            session.get(Job, job["id"]).status = "running"  # type: ignore[union-attr]
        headers = {"Authorization": request.headers["Authorization"]}
        with httpx.stream("GET", f"{base}/v1/jobs/{job['id']}/events/stream", headers=headers, timeout=10) as stream:
            lines = stream.iter_lines()
            while not next(lines).startswith("data:"):
                pass  # the queued event, read at once from the database
            time.sleep(0.5)  # the feed is waiting now: its next poll is 30 s away
            sent = time.monotonic()
            with session_scope(settings.database_url) as session:
                session.add(JobEvent(job_id=job["id"], type="log", data={"line": "hello"}))
            while not (line := next(lines)).startswith("data:"):
                pass
            assert json.loads(line.removeprefix("data:")) == {"line": "hello"}
            assert time.monotonic() - sent < 2.0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
