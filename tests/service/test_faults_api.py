"""The API under faults, for real: a Postgres server of the test's own is stopped (``pg_ctl stop -m immediate``, like
a crash) and started again under a served app (uvicorn in a thread), which must answer 503 ``database_unavailable``
with ``Retry-After`` meanwhile, never a 500, and 200 again by itself afterwards; live streams ride out a short outage
and end cleanly after a long one. Also: the per-project job limits (429 ``too_many_jobs``) and the request limits.

No worker runs here: the enqueue hook is replaced by a recorder.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from api import services
from api.admin import create_token
from api.deps import DatabaseDep
from api.main import create_app
from api.streams import StreamTiming
from jobcore.db import engine_for, session_scope
from jobcore.models import JobStatus
from jobcore.settings import ServiceSettings
from tests.local_postgres import LocalPostgres, migrate
from tests.service.api_helpers import Caller, allowed_root, assert_error, insert_events, insert_job, set_job, sft_body

pytestmark = pytest.mark.skipif(
    not LocalPostgres.available(),
    reason="needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql) to run a server it can stop",
)


@pytest.fixture(autouse=True)
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(services, "enqueue_job", lambda _settings, job_id, _queue: calls.append(job_id))
    return calls


class ErrorLog(logging.Handler):
    """Every ERROR record (tracebacks of the app, uvicorn's 'Exception in ASGI application') while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


# ---------------------------------------------------------------- a database that goes away


@pytest.fixture(scope="module")
def local_pg() -> Iterator[LocalPostgres]:
    with LocalPostgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def outage_settings(
    local_pg: LocalPostgres, broker_url: str, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[ServiceSettings]:
    url = local_pg.create_database(f"faults_{secrets.token_hex(3)}")
    migrate(url)
    root = tmp_path_factory.mktemp("faults")
    (root / "data").mkdir()
    yield ServiceSettings(
        database_url=url,
        broker_url=broker_url,
        artifact_root=root / "artifacts",
        allowed_roots=[tiny_model_dir.parent, root / "data"],
        allow_hub_models=False,
        default_queue=f"faults-{secrets.token_hex(3)}",
        metrics_cache_seconds=0,  # every scrape asks the database
    )
    engine_for(url).dispose()


@pytest.fixture(scope="module")
def served(outage_settings: ServiceSettings) -> Iterator[tuple[str, FastAPI]]:
    """The app served by uvicorn on a free port (a thread), with fast stream timings."""
    app = create_app(outage_settings, heartbeat_seconds=0.2, poll_seconds=0.05)

    async def terminate(database: DatabaseDep) -> dict[str, int]:
        """Test-only route: the database ends this request's connection (as a restart would) before the commit."""

        def work(session: Session) -> dict[str, int]:
            pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            admin = create_engine(outage_settings.database_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            finally:
                admin.dispose()
            return {"pid": pid}

        return await database.run(work)

    app.add_api_route("/_test/terminate-my-connection", terminate, methods=["POST"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # log_config=None: uvicorn's records reach the root logger, where the tests look for errors
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture
def client(served: tuple[str, FastAPI], outage_settings: ServiceSettings) -> Iterator[httpx.Client]:
    base_url, _app = served
    with session_scope(outage_settings.database_url) as session:
        token = create_token(session, f"p-{secrets.token_hex(4)}", "faults")[1]
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


@pytest.fixture
def pg(local_pg: LocalPostgres) -> Iterator[LocalPostgres]:
    """The server, running again after the test whatever it did."""
    yield local_pg
    if not local_pg.running:
        local_pg.start()


def assert_database_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert "retry" in response.json()["error"]["message"]


def test_outage_answers_503_and_recovers_by_itself(
    client: httpx.Client,
    pg: LocalPostgres,
    outage_settings: ServiceSettings,
    tiny_model_dir: Path,
    errors: ErrorLog,
) -> None:
    data = allowed_root(outage_settings, 1) / "chat.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    body = sft_body(tiny_model_dir, data)
    submitted = client.post("/v1/jobs/sft", json=body, headers={"Idempotency-Key": "k1"})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    assert client.get("/v1/jobs").status_code == 200  # the pool now holds a connection that is about to die

    pg.stop(immediate=True)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/jobs", {}),
        ("GET", f"/v1/jobs/{job_id}", {}),
        ("GET", f"/v1/jobs/{job_id}/events", {}),
        ("GET", f"/v1/jobs/{job_id}/events/stream", {}),
        ("GET", f"/v1/jobs/{job_id}/logs", {}),
        ("GET", f"/v1/jobs/{job_id}/metrics", {}),
        ("POST", "/v1/jobs/sft", {"json": body, "headers": {"Idempotency-Key": "k2"}}),
        ("POST", f"/v1/jobs/{job_id}/cancel", {}),
    ]
    for method, url, kwargs in requests:
        assert_database_unavailable(client.request(method, url, **kwargs))
    ready = client.get("/readyz")
    assert_error(ready, 503, "not_ready", "database")
    assert ready.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200  # the process itself is fine: no restart wanted
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "finetuning_database_up 0.0" in metrics.text

    started = time.monotonic()
    pg.start()
    restarted = time.monotonic()
    first = client.get("/v1/jobs")  # the very first request after the restart: the dead pooled one is replaced
    answered = time.monotonic()
    assert first.status_code == 200, first.text
    assert [job["id"] for job in first.json()["data"]] == [job_id]
    print(f"\npostgres start: {restarted - started:.2f} s; first request after it: 200 in {answered - restarted:.3f} s")
    assert client.get("/readyz").status_code == 200
    assert "finetuning_database_up 1.0" in client.get("/metrics").text
    # the submission refused during the outage, repeated with its key: one job, made now
    again = client.post("/v1/jobs/sft", json=body, headers={"Idempotency-Key": "k2"})
    assert again.status_code == 201, again.text
    assert client.post("/v1/jobs/sft", json=body, headers={"Idempotency-Key": "k2"}).status_code == 200
    assert errors.messages() == []


def test_a_commit_that_loses_its_connection_answers_503(client: httpx.Client, errors: ErrorLog) -> None:
    # the handler ran; the request dependency's commit (its teardown) finds the connection gone
    assert_database_unavailable(client.post("/_test/terminate-my-connection"))
    assert client.get("/v1/jobs").status_code == 200
    assert errors.messages() == []


def _project_job(settings: ServiceSettings, client: httpx.Client, status: JobStatus) -> str:
    """A job of the client's project, inserted directly."""
    token = str(client.headers["Authorization"]).removeprefix("Bearer ")
    from api.auth import hash_token
    from jobcore.models import ApiToken

    with session_scope(settings.database_url) as session:
        project = session.query(ApiToken.project).filter(ApiToken.token_hash == hash_token(token)).scalar()
    assert project is not None
    return insert_job(settings, project, status=status)


def test_sse_stream_rides_out_a_short_outage(
    client: httpx.Client,
    pg: LocalPostgres,
    served: tuple[str, FastAPI],
    outage_settings: ServiceSettings,
    errors: ErrorLog,
) -> None:
    _url, app = served
    app.state.event_hub.timing = StreamTiming(poll_seconds=0.05, heartbeat_seconds=0.2, outage_seconds=30)
    job_id = _project_job(outage_settings, client, JobStatus.RUNNING)
    insert_events(outage_settings, job_id, [("log", {"line": "before"})])
    with client.stream("GET", f"/v1/jobs/{job_id}/events/stream") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert any("before" in line for line in _take_until(lines, "before"))
        pg.stop(immediate=True)
        # heartbeats keep the connection while the database is away
        assert _take_until(lines, ": keep-alive")[-1] == ": keep-alive"
        time.sleep(1.0)
        pg.start()
        insert_events(outage_settings, job_id, [("log", {"line": "after"})])
        set_job(outage_settings, job_id, status=JobStatus.SUCCEEDED.value)
        insert_events(outage_settings, job_id, [("job", {"status": "succeeded"})])
        rest = list(lines)  # the stream goes on and ends after the terminal event
    assert any("after" in line for line in rest), rest
    assert any('"succeeded"' in line for line in rest), rest
    assert errors.messages() == []


def _take_until(lines: Iterator[str], marker: str) -> list[str]:
    taken: list[str] = []
    for line in lines:
        taken.append(line)
        if marker in line:
            break
    return taken


def test_streams_end_cleanly_after_a_long_outage(
    client: httpx.Client,
    pg: LocalPostgres,
    served: tuple[str, FastAPI],
    outage_settings: ServiceSettings,
    errors: ErrorLog,
) -> None:
    _url, app = served
    app.state.event_hub.timing = StreamTiming(poll_seconds=0.05, heartbeat_seconds=0.2, outage_seconds=1.5)
    job_id = _project_job(outage_settings, client, JobStatus.RUNNING)
    last_id = insert_events(outage_settings, job_id, [("log", {"line": "one"})])[-1]
    with (
        client.stream("GET", f"/v1/jobs/{job_id}/events/stream") as sse,
        client.stream("GET", f"/v1/jobs/{job_id}/logs?follow=true") as log,
    ):
        assert sse.status_code == 200
        assert log.status_code == 200
        sse_lines = sse.iter_lines()
        _take_until(sse_lines, f"id: {last_id}")
        log_lines = log.iter_lines()
        assert next(log_lines) == "one"
        pg.stop(immediate=True)
        started = time.monotonic()
        rest = list(sse_lines)  # ends (cleanly: no protocol error) once the outage lasted outage_seconds
        ended = time.monotonic() - started
        assert list(log_lines) == []
    assert rest[-2:] == [": the database is unreachable; reconnect with Last-Event-ID", ""], rest
    assert 1.0 <= ended <= 10, ended
    pg.start()
    # the client reconnects with Last-Event-ID and goes on where it was
    insert_events(outage_settings, job_id, [("log", {"line": "two"})])
    set_job(outage_settings, job_id, status=JobStatus.SUCCEEDED.value)
    resumed = client.get(f"/v1/jobs/{job_id}/events/stream", headers={"Last-Event-ID": str(last_id)})
    assert resumed.status_code == 200
    assert '"two"' in resumed.text
    assert '"one"' not in resumed.text
    assert errors.messages() == []


# ---------------------------------------------------------------- per-project job limits


@pytest.fixture(scope="module")
def limited(settings: ServiceSettings) -> Iterator[tuple[TestClient, ServiceSettings]]:
    """An app of its own whose projects may have 2 queued and 3 unfinished jobs."""
    small = settings.model_copy(update={"max_queued_jobs_per_project": 2, "max_active_jobs_per_project": 3})
    with TestClient(create_app(small), raise_server_exceptions=False) as http:
        yield http, small


@pytest.fixture
def limited_caller(limited: tuple[TestClient, ServiceSettings]) -> Caller:
    http, small = limited
    return Caller(http, small)


@pytest.fixture
def limited_body(limited: tuple[TestClient, ServiceSettings], tiny_model_dir: Path) -> dict[str, Any]:
    _http, small = limited
    data = allowed_root(small, 1) / "limits.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    return sft_body(tiny_model_dir, data)


def assert_too_many(response: Any, limit_name: str, count: int) -> str:
    error = assert_error(response, 429, "too_many_jobs")
    assert response.headers["Retry-After"] == "30"
    message = str(error["message"])
    assert limit_name in message, message
    assert f"has {count} " in message, message
    assert "cancel" in message, message
    return message


def test_queued_limit_answers_429_and_replays_still_work(
    limited_caller: Caller, limited_body: dict[str, Any], enqueued: list[str]
) -> None:
    first = limited_caller.post("/v1/jobs/sft", limited_body, headers={"Idempotency-Key": "a"})
    assert first.status_code == 201, first.text
    assert limited_caller.post("/v1/jobs/sft", limited_body).status_code == 201
    refused = limited_caller.post("/v1/jobs/sft", limited_body, headers={"Idempotency-Key": "c"})
    message = assert_too_many(refused, "max_queued_jobs_per_project", 2)
    assert "at most 2" in message
    # a replay of an existing job is not a new job: it still answers, at the limit
    replay = limited_caller.post("/v1/jobs/sft", limited_body, headers={"Idempotency-Key": "a"})
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    assert len(enqueued) == 2
    # another project is not affected
    other = Caller(limited_caller.client, limited_caller.settings)
    assert other.post("/v1/jobs/sft", limited_body).status_code == 201
    # a cancelled job frees its place
    assert limited_caller.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
    assert limited_caller.post("/v1/jobs/sft", limited_body, headers={"Idempotency-Key": "c"}).status_code == 201


def test_active_limit_counts_running_jobs(limited_caller: Caller, limited_body: dict[str, Any]) -> None:
    settings = limited_caller.settings
    for status in (JobStatus.RUNNING, JobStatus.CANCEL_REQUESTED, JobStatus.SUCCEEDED, JobStatus.FAILED):
        insert_job(settings, limited_caller.project, status=status)
    assert limited_caller.post("/v1/jobs/sft", limited_body).status_code == 201  # 1 queued, 3 unfinished
    assert_too_many(limited_caller.post("/v1/jobs/sft", limited_body), "max_active_jobs_per_project", 3)


def test_concurrent_submissions_never_exceed_the_limit(limited_caller: Caller, limited_body: dict[str, Any]) -> None:
    def submit(i: int) -> int:
        return int(limited_caller.post("/v1/jobs/sft", limited_body, headers={"Idempotency-Key": f"c{i}"}).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(submit, range(6)))
    assert codes == [201, 201, 429, 429, 429, 429]
    assert limited_caller.get("/v1/jobs").json()["data"].__len__() == 2


def test_limits_default_and_the_answers_are_documented() -> None:
    defaults = ServiceSettings()
    assert (defaults.max_queued_jobs_per_project, defaults.max_active_jobs_per_project) == (100, 200)
    app = create_app(ServiceSettings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    doc = app.openapi()
    submit = doc["paths"]["/v1/jobs/sft"]["post"]["responses"]
    assert {"413", "429", "503"} <= set(submit)
    assert "503" in doc["paths"]["/v1/jobs"]["get"]["responses"]
    assert "503" in doc["paths"]["/v1/jobs/{job_id}/events/stream"]["get"]["responses"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    assert "503" not in doc["paths"]["/healthz"]["get"]["responses"]  # liveness never asks the database


# ---------------------------------------------------------------- request limits


def test_list_limits_are_capped(limited_caller: Caller) -> None:
    assert_error(limited_caller.get("/v1/jobs?limit=201"), 422, "invalid_parameter", "limit")
    job_id = insert_job(limited_caller.settings, limited_caller.project, status=JobStatus.SUCCEEDED)
    assert_error(limited_caller.get(f"/v1/jobs/{job_id}/events?limit=1001"), 422, "invalid_parameter", "limit")
