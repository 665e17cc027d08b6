"""Operations: the API's Prometheus metrics (requests by route template, jobs, queues, durations, tokens per second),
a worker's metrics, JSON logs carrying the job and request ids, and the MLflow link. Against the real Postgres and
Redis; jobs and events are inserted directly (nothing is trained)."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.admin import create_token
from api.main import create_app
from jobcore.db import engine_for, session_factory, session_scope
from jobcore.logs import JsonFormatter, job_context, use_json_logs
from jobcore.models import Base, Job, JobEvent, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings
from jobcore.stats import query_job_stats
from tests.service.conftest import start_worker
from tests.workers import stop_worker
from worker.dispatch import enqueue_job
from worker.observability import WorkerCollector
from worker.runner import run_job

# -- helpers ---------------------------------------------------------------------------------------------------------


def new_queue() -> str:
    return f"obs-{secrets.token_hex(4)}"


def insert_job(
    settings: ServiceSettings,
    *,
    queue: str,
    kind: JobKind = JobKind.SFT,
    status: JobStatus = JobStatus.QUEUED,
    project: str = "obs",
    **values: Any,
) -> str:
    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(id=job_id, project=project, kind=kind.value, status=status.value, queue=queue, config={}, **values)
        )
    return job_id


def insert_events(settings: ServiceSettings, job_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    with session_scope(settings.database_url) as session:
        session.add_all(JobEvent(job_id=job_id, type=kind, data=data) for kind, data in events)


def metrics_event(step: int, tokens_per_second: float | None) -> tuple[str, dict[str, Any]]:
    return ("metrics", {"v": 1, "type": "metrics", "step": step, "loss": 1.0, "tokens_per_second": tokens_per_second})


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def client(settings: ServiceSettings) -> Iterator[TestClient]:
    fresh = settings.model_copy(update={"metrics_cache_seconds": 0.0, "mlflow_ui_url": "http://mlflow.test:5000/"})
    with TestClient(create_app(fresh), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def headers(settings: ServiceSettings) -> dict[str, str]:
    with session_scope(settings.database_url) as session:
        return {"Authorization": f"Bearer {create_token(session, 'obs', 'test')[1]}"}


# -- the API's /metrics ------------------------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template(client: TestClient, headers: dict[str, str]) -> None:
    before = client.get("/metrics").text
    job_id = new_id()
    for _ in range(2):
        assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 404
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    assert client.get(f"/no/such/{job_id}").status_code == 404
    assert client.delete("/v1/jobs", headers=headers).status_code == 405

    response = client.get("/metrics")  # no token needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    def delta(name: str, **labels: str) -> float:
        return (value(text, name, **labels) or 0) - (value(before, name, **labels) or 0)

    requests = "finetuning_http_requests_total"
    assert delta(requests, method="GET", route="/v1/jobs/{job_id}", status="404") == 2
    assert delta(requests, method="GET", route="/v1/jobs", status="200") == 1
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    assert delta(requests, method="DELETE", route="/v1/jobs", status="405") == 1
    assert delta(requests, method="GET", route="/metrics", status="200") == 1
    assert delta("finetuning_http_request_duration_seconds_count", method="GET", route="/v1/jobs/{job_id}") == 2
    assert job_id not in text  # raw paths never become labels
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_can_be_turned_off(settings: ServiceSettings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    with TestClient(app) as off:
        assert off.get("/metrics").status_code == 404
        assert off.get("/healthz").status_code == 200


def test_jobs_by_status_and_queue_depth(client: TestClient, settings: ServiceSettings) -> None:
    busy, other = new_queue(), new_queue()
    an_hour_ago = utcnow() - timedelta(hours=1)
    for _ in range(2):
        insert_job(settings, queue=busy, created_at=an_hour_ago)
    insert_job(settings, queue=busy, status=JobStatus.RUNNING, started_at=utcnow())
    insert_job(settings, queue=busy, kind=JobKind.DPO, status=JobStatus.FAILED, finished_at=utcnow())
    waiting = insert_job(settings, queue=other, kind=JobKind.MERGE)
    enqueue_job(settings, waiting, other)  # a real message in Redis, which no worker consumes
    try:
        text = client.get("/metrics").text
    finally:
        import redis

        redis.Redis.from_url(settings.broker_url).delete(other)

    assert value(text, "finetuning_jobs", status="queued", kind="sft", queue=busy) == 2
    assert value(text, "finetuning_jobs", status="running", kind="sft", queue=busy) == 1
    assert value(text, "finetuning_jobs", status="failed", kind="dpo", queue=busy) == 1
    assert value(text, "finetuning_jobs", status="succeeded", kind="sft", queue=busy) == 0  # every status, as 0
    assert value(text, "finetuning_queue_depth", queue=busy) == 2
    assert value(text, "finetuning_queue_depth", queue=other) == 1
    assert value(text, "finetuning_queue_depth", queue=settings.default_queue) is not None
    age = value(text, "finetuning_queue_oldest_job_age_seconds", queue=busy)
    assert age is not None
    assert 3500 < age < 3700
    assert value(text, "finetuning_broker_queue_length", queue=other) == 1
    assert value(text, "finetuning_broker_queue_length", queue=busy) == 0
    assert value(text, "finetuning_database_up") == 1


def test_job_duration_and_tokens_per_second(client: TestClient, settings: ServiceSettings) -> None:
    queue = new_queue()
    before = client.get("/metrics").text
    now = utcnow()
    insert_job(
        settings,
        queue=queue,
        kind=JobKind.GENERATE,
        status=JobStatus.SUCCEEDED,
        started_at=now - timedelta(seconds=120),
        finished_at=now,
    )
    running = insert_job(settings, queue=queue, status=JobStatus.RUNNING, started_at=now)
    # the engine's last metrics event is its end-of-training summary, without tokens per second
    insert_events(settings, running, [metrics_event(1, 400.0), ("log", {"line": "x"}), metrics_event(2, 406.8)])
    insert_events(settings, running, [metrics_event(2, None)])
    text = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return (value(text, name, **labels) or 0) - (value(before, name, **labels) or 0)

    labels = {"kind": "generate", "status": "succeeded"}
    assert delta("finetuning_job_duration_seconds_count", **labels) == 1
    assert delta("finetuning_job_duration_seconds_bucket", le="60.0", **labels) == 0
    assert delta("finetuning_job_duration_seconds_bucket", le="300.0", **labels) == 1
    assert 119 < delta("finetuning_job_duration_seconds_sum", **labels) < 121
    assert value(text, "finetuning_job_tokens_per_second", job_id=running, kind="sft", queue=queue) == 406.8


def test_the_embedded_sqlite_database_gives_the_same_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    Base.metadata.create_all(engine_for(url))
    embedded = ServiceSettings(database_url=url, artifact_root=tmp_path, broker_url=f"sqla+{url}")
    now = utcnow()
    insert_job(embedded, queue="q", status=JobStatus.FAILED, started_at=now - timedelta(seconds=90), finished_at=now)
    insert_job(embedded, queue="q", created_at=now - timedelta(seconds=30))
    with session_factory(url)() as session:
        stats = query_job_stats(session)
    durations = stats.durations[("sft", "failed")]
    assert durations.count == 1
    assert 89 < durations.total < 91
    assert durations.buckets[:4] == [0, 0, 0, 1]  # 10, 30, 60: no; 300: yes

    with TestClient(create_app(embedded)) as client:
        text = client.get("/metrics").text
    engine_for(url).dispose()
    assert value(text, "finetuning_queue_depth", queue="q") == 1
    assert 29 < (value(text, "finetuning_queue_oldest_job_age_seconds", queue="q") or 0) < 60
    assert value(text, "finetuning_job_duration_seconds_bucket", kind="sft", status="failed", le="300.0") == 1
    assert value(text, "finetuning_broker_queue_length", queue="q") is None  # Redis brokers only


def test_a_workers_metrics_count_its_own_jobs(settings: ServiceSettings) -> None:
    node = f"celery@obs-{secrets.token_hex(3)}"
    queue = new_queue()
    now = utcnow()
    for status in (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED):
        insert_job(
            settings,
            queue=queue,
            status=status,
            worker=f"{node}:1234",
            started_at=now - timedelta(seconds=30),
            finished_at=now,
        )
    running = insert_job(settings, queue=queue, status=JobStatus.RUNNING, worker=f"{node}:99", started_at=now)
    insert_events(settings, running, [metrics_event(5, 1234.5)])
    insert_job(settings, queue=queue, status=JobStatus.RUNNING, worker="celery@elsewhere:1", started_at=now)

    registry = CollectorRegistry()
    registry.register(WorkerCollector(session_factory(settings.database_url), node, cache_seconds=0))
    text = generate_latest(registry).decode()
    assert value(text, "finetuning_worker_running_jobs") == 1
    assert value(text, "finetuning_worker_jobs_total", kind="sft", status="succeeded") == 2
    assert value(text, "finetuning_worker_jobs_total", kind="sft", status="failed") == 1
    assert value(text, "finetuning_worker_job_duration_seconds_count", kind="sft", status="succeeded") == 2
    assert value(text, "finetuning_worker_job_tokens_per_second", job_id=running, kind="sft", queue=queue) == 1234.5


def test_a_forked_child_can_fork_again(tmp_path: Path) -> None:
    """Celery's pool processes are forked from the worker that serves the metrics, and fork again to start the engine
    (``preexec_fn``): the metrics cache's fork hooks must not deadlock there."""
    WorkerCollector(session_factory(f"sqlite:///{tmp_path / 'none.db'}"), "celery@fork", cache_seconds=0)
    pid = os.fork()
    if pid == 0:  # the "pool process"
        signal.alarm(10)  # a deadlock ends the child rather than the test run
        try:
            subprocess.run(["true"], preexec_fn=lambda: None, check=True)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- logs --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def json_lines(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler writes JSON lines into a buffer, set up by ``use_json_logs``."""
    caplog.set_level(logging.INFO)
    target = logging.getLogger(f"obs-{secrets.token_hex(3)}")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    target.addHandler(handler)
    use_json_logs([target])
    assert isinstance(handler.formatter, JsonFormatter)
    yield target, buffer
    target.removeHandler(handler)


def parse(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_the_job_id(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    target, buffer = json_lines
    target.info("outside")
    with job_context("job-1"):
        target.warning("inside %s", "a job", extra={"step": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            target.exception("failed")
    outside, inside, failed = parse(buffer)
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["time"].endswith("Z")
    assert inside == {**inside, "level": "WARNING", "message": "inside a job", "job_id": "job-1", "step": 3}
    assert failed["job_id"] == "job-1"
    assert "ValueError: boom" in failed["exception"]


def test_every_line_the_runner_logs_for_a_job_has_its_id(
    settings: ServiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("worker").addHandler(handler)
    try:
        # cancelled while queued: the runner claims it and records the outcome without starting anything
        job_id = insert_job(settings, queue=new_queue(), cancel_requested=True, resolved={"config": {}})
        assert run_job(settings, job_id, worker_name="celery@obs:1") == "cancelled"
    finally:
        logging.getLogger("worker").removeHandler(handler)
    lines = parse(buffer)
    assert len(lines) >= 2
    assert all(line["job_id"] == job_id and line["logger"] == "worker.runner" for line in lines)
    assert any("finished: cancelled" in line["message"] for line in lines)


def test_api_lines_carry_the_request_and_job_ids(
    client: TestClient, headers: dict[str, str], json_lines: tuple[logging.Logger, io.StringIO]
) -> None:
    target, buffer = json_lines

    def probe(job_id: str) -> dict[str, str]:  # a plain (threadpool) handler, like the API's
        target.info("probing")
        return {"job_id": job_id}

    app = cast(FastAPI, client.app)
    app.add_api_route("/v1/jobs/{job_id}/probe", probe, methods=["GET"])
    try:
        answer = client.get("/v1/jobs/j-1/probe", headers={"X-Request-ID": "req-42"})
        assert answer.headers["x-request-id"] == "req-42"
        generated = client.get("/v1/jobs/j-2/probe", headers={"X-Request-ID": "bad id\nwith lines"})
    finally:
        app.router.routes.pop()
    assert generated.headers["x-request-id"] != "bad id\nwith lines"
    first, second = parse(buffer)
    assert (first["request_id"], first["job_id"], first["message"]) == ("req-42", "j-1", "probing")
    assert (second["request_id"], second["job_id"]) == (generated.headers["x-request-id"], "j-2")


# -- the MLflow link ---------------------------------------------------------------------------------------------------


def test_jobs_link_their_mlflow_run(client: TestClient, headers: dict[str, str], settings: ServiceSettings) -> None:
    with_run = insert_job(settings, queue=new_queue(), status=JobStatus.SUCCEEDED, mlflow_run_id="0123abcd")
    without = insert_job(settings, queue=new_queue())
    job = client.get(f"/v1/jobs/{with_run}", headers=headers).json()
    assert job["mlflow_run_id"] == "0123abcd"
    assert job["links"] == {"mlflow": "http://mlflow.test:5000/#/runs/0123abcd"}
    assert client.get(f"/v1/jobs/{without}", headers=headers).json()["links"] == {"mlflow": None}
    listed = {j["id"]: j for j in client.get("/v1/jobs", headers=headers).json()["data"]}
    assert listed[with_run]["links"]["mlflow"].endswith("/#/runs/0123abcd")

    with TestClient(create_app(settings)) as plain:  # no FINETUNING_MLFLOW_UI_URL: no link
        assert plain.get(f"/v1/jobs/{with_run}", headers=headers).json()["links"] == {"mlflow": None}


# -- a real worker -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_worker_logs_json_with_job_ids_and_serves_metrics(
    settings: ServiceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("FINETUNING_LOG_FORMAT", "json")
    monkeypatch.setenv("FINETUNING_WORKER_METRICS_PORT", str(port))
    monkeypatch.setenv("FINETUNING_WORKER_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("FINETUNING_METRICS_CACHE_SECONDS", "0")
    own = settings.model_copy(update={"default_queue": new_queue()})
    node = f"obs-{secrets.token_hex(3)}@localhost"
    log = tmp_path / "worker.log"
    process = start_worker(own, log, hostname=node)
    try:
        job_id = insert_job(own, queue=own.default_queue, cancel_requested=True, resolved={"config": {}})
        enqueue_job(own, job_id, own.default_queue)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with session_scope(own.database_url) as session:
                job = session.get(Job, job_id)
                if job is not None and job.status == JobStatus.CANCELLED.value:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"the job was not cancelled: see {log}")
        text = ""
        while time.monotonic() < deadline:  # the task's last line comes just after the outcome is stored
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            if "succeeded in" in log.read_text():
                break
            time.sleep(0.1)
    finally:
        stop_worker(process)
    assert value(text, "finetuning_worker_jobs_total", kind="sft", status="cancelled") == 1
    assert value(text, "finetuning_worker_running_jobs") == 0

    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert records, f"no JSON lines in {log}"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    of_job = [r for r in records if r.get("job_id") == job_id]
    assert any("claimed by" in r["message"] for r in of_job)
    assert any("succeeded in" in r["message"] and r.get("task_name") == "jobs.run" for r in of_job)
    # every line about the job, Celery's included, carries its id, except the main process' "received"
    about = [r for r in records if job_id in r["message"] and "received" not in r["message"]]
    assert about
    assert all(r.get("job_id") == job_id for r in about)
