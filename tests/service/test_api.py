"""The HTTP API against a real Postgres: submission (validation, paths, chaining, idempotency), auth and project
scoping, reading, events (paged and SSE), logs, metrics, output, cancel, health, the admin command.

No worker runs here: the enqueue hook is replaced by a recorder, and events are inserted directly.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import services
from api.admin import create_token, list_tokens, main, revoke_token
from api.main import create_app
from finetuning.config import SFTConfig
from jobcore.db import session_scope
from jobcore.models import Job, JobEvent, JobKind, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings

# ---------------------------------------------------------------- fixtures and factories


@pytest.fixture(scope="module")
def app_client(settings: ServiceSettings) -> Iterator[TestClient]:
    # fast stream timings, so SSE and follow tests take fractions of a second
    app = create_app(settings, heartbeat_seconds=0.2, poll_seconds=0.02)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """Replaces the enqueue hook; records (job id, queue, whether the job was already committed)."""
    calls: list[tuple[str, str, bool]] = []

    def record(app_settings: ServiceSettings, job_id: str, queue: str) -> None:
        with session_scope(app_settings.database_url) as session:  # another connection sees only committed rows
            committed = session.get(Job, job_id) is not None
        calls.append((job_id, queue, committed))

    monkeypatch.setattr(services, "enqueue_job", record)
    return calls


def new_project() -> str:
    return f"p-{secrets.token_hex(4)}"


def make_token(settings: ServiceSettings, project: str) -> str:
    with session_scope(settings.database_url) as session:
        return create_token(session, project, "test")[1]


class Caller:
    """A client acting for one project."""

    def __init__(self, client: TestClient, settings: ServiceSettings, project: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.project = project or new_project()
        self.headers = {"Authorization": f"Bearer {make_token(settings, self.project)}"}

    def post(self, url: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None and "content" not in kwargs:
            kwargs["json"] = body
        return self.client.post(url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture
def caller(app_client: TestClient, settings: ServiceSettings, enqueued: list[Any]) -> Caller:
    return Caller(app_client, settings)


@pytest.fixture
def other(app_client: TestClient, settings: ServiceSettings) -> Caller:
    return Caller(app_client, settings)


@pytest.fixture(scope="module")
def data_file(data_dir: Path) -> Path:
    path = data_dir / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    return path


def sft_body(model: Path | str, data: Path | str) -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {"max_steps": 2, "learning_rate": 1e-3},
        "batchsize_conf": {"total_train_batch_size": 2, "max_per_device_train_batch_size": 2},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 64},
    }


@pytest.fixture
def body(tiny_model_dir: Path, data_file: Path) -> dict[str, Any]:
    return sft_body(tiny_model_dir, data_file)


def insert_job(
    settings: ServiceSettings,
    project: str,
    *,
    kind: JobKind = JobKind.SFT,
    status: JobStatus = JobStatus.QUEUED,
    artifacts: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(
                id=job_id,
                project=project,
                kind=kind.value,
                status=status.value,
                queue="q",
                labels=labels or {},
                config=config or {},
                resolved={"config": config or {}},
                artifacts=artifacts or {},
                finished_at=utcnow() if JobStatus(status).terminal else None,
            )
        )
    return job_id


def set_job(settings: ServiceSettings, job_id: str, **values: Any) -> None:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)


def insert_events(settings: ServiceSettings, job_id: str, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
    with session_scope(settings.database_url) as session:
        rows = [JobEvent(job_id=job_id, type=type_, data=data) for type_, data in events]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def assert_error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "param"}
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return dict(error)


# ---------------------------------------------------------------- submission


def test_submit_sft_answers_201_with_the_job(
    caller: Caller, body: dict[str, Any], settings: ServiceSettings, enqueued: list[Any]
) -> None:
    body["training_args"]["output_dir"] = "/somewhere/else"
    r = caller.post("/v1/jobs/sft?name=first&label=team=nlp&label=run=1&processes=2", body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "sft"
    assert job["status"] == "queued"
    assert job["name"] == "first"
    assert job["labels"] == {"team": "nlp", "run": "1"}
    assert job["queue"] == settings.default_queue
    assert job["progress"] == {"step": None, "total_steps": None, "percent": None, "elapsed_s": None, "eta_s": None}
    assert job["error"] is None
    assert job["attempt"] == 0
    assert job["created_at"]
    # as submitted, and what runs: outputs forced under the job's folder, the user's value recorded
    assert job["config"]["training_args"]["output_dir"] == "/somewhere/else"
    resolved = job["resolved"]
    assert resolved["config"]["training_args"]["output_dir"] == str(settings.artifact_root / job["id"] / "output")
    assert resolved["overridden"] == {"training_args.output_dir": "/somewhere/else"}
    assert resolved["num_processes"] == 2
    assert resolved["config"]["run_conf"]["model"] == body["run_conf"]["model"]
    # what the engine gets is what was set (paths resolved): defaults stay the engine's, and it validates
    assert "model_args" not in resolved["config"]["run_conf"]
    SFTConfig.validate_config(resolved["config"])
    # enqueued once, after the commit
    assert enqueued == [(job["id"], settings.default_queue, True)]
    assert caller.get(f"/v1/jobs/{job['id']}").json() == job
    events = caller.get(f"/v1/jobs/{job['id']}/events").json()["data"]
    assert [(e["type"], e["data"]) for e in events] == [("job", {"status": "queued", "attempt": 0})]


def test_submit_yaml_body(caller: Caller, body: dict[str, Any]) -> None:
    text = yaml.safe_dump(body)
    r = caller.post("/v1/jobs/sft?queue=gpu-a100", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["queue"] == "gpu-a100"
    assert r.json()["config"]["run_conf"] == body["run_conf"]


def test_unknown_key_is_named_with_a_suggestion(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["learnin_rate"] = 1e-4
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.learnin_rate")
    assert "did you mean 'learning_rate'" in error["message"]


def test_every_config_issue_is_listed(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["learnin_rate"] = 1e-4
    body["batchsize_conf"]["total_train_batch_size"] = "many"
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config")
    params = {d["param"] for d in error["details"]}
    assert params == {"training_args.learnin_rate", "batchsize_conf.total_train_batch_size"}


def test_wrong_type_names_the_field(caller: Caller, body: dict[str, Any]) -> None:
    body["batchsize_conf"]["total_train_batch_size"] = "many"
    assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "batchsize_conf.total_train_batch_size")


DATA_PARAM = "data_conf.training_data.datasets[0].path"


def test_missing_data_file(caller: Caller, body: dict[str, Any], data_dir: Path) -> None:
    body["data_conf"]["training_data"]["datasets"][0]["path"] = str(data_dir / "nope.jsonl")
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_found", DATA_PARAM)
    assert "nope.jsonl" in error["message"]


def test_missing_model_folder(caller: Caller, body: dict[str, Any], tiny_model_dir: Path) -> None:
    body["run_conf"]["model"] = str(tiny_model_dir.parent / "no-such-model")
    assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_found", "run_conf.model")


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_paths_outside_the_allowed_roots(
    caller: Caller, body: dict[str, Any], data_dir: Path, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    if how == "absolute":
        path = str(outside)
    elif how == "dotdot":
        path = str(data_dir) + "/" + "/".join([".."] * len(data_dir.parts)) + str(outside)
    else:
        link = data_dir / f"link-{secrets.token_hex(3)}.jsonl"
        link.symlink_to(outside)
        path = str(link)
    assert Path(os.path.realpath(path)) == outside.resolve()
    body["data_conf"]["training_data"]["datasets"][0]["path"] = path
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "path_not_allowed", DATA_PARAM)
    assert "outside the allowed roots" in error["message"]


def test_hub_ids_refused_unless_allowed(
    caller: Caller, body: dict[str, Any], settings: ServiceSettings, enqueued: list[Any]
) -> None:
    body["run_conf"]["model"] = "some-org/some-model"
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "hub_models_disabled", "run_conf.model")
    assert "allow_hub_models" in error["message"]
    hub_app = create_app(settings.model_copy(update={"allow_hub_models": True}))
    with TestClient(hub_app) as client:
        r = client.post("/v1/jobs/sft", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text
    assert r.json()["resolved"]["config"]["run_conf"]["model"] == "some-org/some-model"


def test_trust_remote_code_refused(caller: Caller, body: dict[str, Any]) -> None:
    body["run_conf"]["model_args"] = {"trust_remote_code": True}
    assert_error(
        caller.post("/v1/jobs/sft", body), 422, "trust_remote_code_disabled", "run_conf.model_args.trust_remote_code"
    )


def test_submission_reaches_the_broker(app_client: TestClient, settings: ServiceSettings, body: dict[str, Any]) -> None:
    """The real hook (worker.dispatch): the Celery message on the job's queue carries the job id only."""
    import redis

    queue = f"api-test-{secrets.token_hex(3)}"  # a queue no test worker consumes
    r = Caller(app_client, settings).post(f"/v1/jobs/sft?queue={queue}", body)
    assert r.status_code == 201, r.text
    client = redis.Redis.from_url(settings.broker_url)
    try:
        messages = [json.loads(m) for m in cast(list[bytes], client.lrange(queue, 0, -1))]
    finally:
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "jobs.run"
    assert r.json()["id"] in messages[0]["headers"]["argsrepr"]


def test_enqueue_failure_leaves_the_job_queued(
    caller: Caller, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(services, "enqueue_job", broken)
    r = caller.post("/v1/jobs/sft", body)
    assert r.status_code == 201, r.text
    assert caller.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "queued"


def test_body_size_limit(caller: Caller, settings: ServiceSettings) -> None:
    too_big = b"{" + b" " * settings.max_body_bytes + b"}"
    assert_error(caller.post("/v1/jobs/sft", content=too_big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield too_big

    r = caller.post("/v1/jobs/sft", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "body_too_large")


# ---------------------------------------------------------------- chaining


def test_chaining_by_job_id(caller: Caller, body: dict[str, Any], settings: ServiceSettings) -> None:
    trained = caller.post("/v1/jobs/sft", body).json()
    merge = {"base_model": body["run_conf"]["model"], "adapter": f"job:{trained['id']}"}
    error = assert_error(caller.post("/v1/jobs/merge", merge), 409, "job_not_succeeded", "adapter")
    assert "queued" in error["message"]
    adapter = settings.artifact_root / trained["id"] / "output" / "checkpoint-final"
    adapter.mkdir(parents=True)
    set_job(settings, trained["id"], status="succeeded", artifacts={"final_checkpoint": str(adapter)})

    r = caller.post("/v1/jobs/merge", merge)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["inputs"] == {"adapter": {"job_id": trained["id"], "artifact": "final_checkpoint", "path": str(adapter)}}
    assert job["resolved"]["config"]["adapter"] == str(adapter)
    assert job["resolved"]["config"]["device_map"] == "auto"  # merge fields become arguments: defaults included
    assert job["config"]["adapter"] == f"job:{trained['id']}"

    # adapter conversion from the training job also gets the config it was trained with
    r = caller.post("/v1/jobs/adapter-conversion", {"adapter": f"job:{trained['id']}/final_checkpoint"})
    assert r.status_code == 201, r.text
    assert r.json()["resolved"]["training_config"] == trained["resolved"]["config"]

    # a generate job on the merged model, by job id
    merged = settings.artifact_root / job["id"] / "merged"
    merged.mkdir(parents=True)
    set_job(settings, job["id"], status="succeeded", artifacts={"model_path": str(merged)})
    gen = {"model_conf": {"model": f"job:{job['id']}"}, "prompt_conf": {"type": "open-input", "input": "Hi"}}
    r = caller.post("/v1/jobs/generate", gen)
    assert r.status_code == 201, r.text
    assert r.json()["inputs"]["model_conf.model"]["path"] == str(merged)


def test_chaining_errors(caller: Caller, other: Caller, body: dict[str, Any], settings: ServiceSettings) -> None:
    base = body["run_conf"]["model"]
    missing = {"base_model": base, "adapter": f"job:{new_id()}"}
    assert_error(caller.post("/v1/jobs/merge", missing), 422, "job_not_found", "adapter")
    # another project's job is not found either
    theirs = insert_job(settings, other.project, status=JobStatus.SUCCEEDED, artifacts={"final_checkpoint": base})
    assert_error(caller.post("/v1/jobs/merge", {**missing, "adapter": f"job:{theirs}"}), 422, "job_not_found")
    mine = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED, artifacts={"final_checkpoint": base})
    bad_artifact = {"base_model": base, "adapter": f"job:{mine}/nothing"}
    assert_error(caller.post("/v1/jobs/merge", bad_artifact), 422, "artifact_not_found", "adapter")
    assert_error(caller.post("/v1/jobs/merge", {**missing, "adapter": "job:42"}), 422, "invalid_job_reference")


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_returns_the_first_job(caller: Caller, other: Caller, body: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = caller.post("/v1/jobs/sft", body, headers=headers)
    again = caller.post("/v1/jobs/sft", body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(caller.get("/v1/jobs").json()["data"]) == 1
    # keys are per project
    assert other.post("/v1/jobs/sft", body, headers=headers).status_code == 201
    # the same key for another kind of job is a mistake, not a retry
    merge = {"base_model": body["run_conf"]["model"], "adapter": body["run_conf"]["model"]}
    assert_error(caller.post("/v1/jobs/merge", merge, headers=headers), 409, "idempotency_key_reused")


def test_idempotency_race_on_the_unique_index(settings: ServiceSettings, body: dict[str, Any]) -> None:
    """Two requests with one key, interleaved: the second waits on the first's insert, then answers its job."""
    project, raw = new_project(), json.dumps(body).encode()
    meta = services.SubmitMeta(queue="q", idempotency_key="race")
    results: dict[str, tuple[str, bool]] = {}
    with session_scope(settings.database_url) as first:
        job, created = services.submit_job(first, settings, project, JobKind.SFT, raw, None, meta)
        results["first"] = (job.id, created)

        def second() -> None:
            with session_scope(settings.database_url) as session:
                other_job, other_created = services.submit_job(session, settings, project, JobKind.SFT, raw, None, meta)
                results["second"] = (other_job.id, other_created)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)  # the second insert is now blocked on the unique index
    thread.join(10)
    assert results["first"] == (job.id, True)
    assert results["second"] == (job.id, False)


# ---------------------------------------------------------------- auth and project scoping


def test_401_without_or_with_a_bad_or_revoked_token(app_client: TestClient, settings: ServiceSettings) -> None:
    project = new_project()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwdw=="}):
        r = app_client.get("/v1/jobs", headers=headers)
        assert_error(r, 401, "unauthorized", "Authorization")
        assert r.headers["WWW-Authenticate"] == "Bearer"
    with session_scope(settings.database_url) as session:
        row, token = create_token(session, project)
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/v1/jobs", headers=headers).status_code == 200
    with session_scope(settings.database_url) as session:
        revoke_token(session, row.prefix)
    error = assert_error(app_client.get("/v1/jobs", headers=headers), 401, "unauthorized")
    assert "revoked" in error["message"]


def test_a_process_remembers_a_token_for_token_cache_seconds(settings: ServiceSettings) -> None:
    """The token query is spared for token_cache_seconds; a revocation reaches a running process within that."""
    with session_scope(settings.database_url) as session:
        row, token = create_token(session, new_project())
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings.model_copy(update={"token_cache_seconds": 1.0}))) as client:
        assert client.get("/v1/jobs", headers=headers).status_code == 200
        with session_scope(settings.database_url) as session:
            revoke_token(session, row.prefix)
        assert client.get("/v1/jobs", headers=headers).status_code == 200  # remembered
        time.sleep(1.1)
        assert_error(client.get("/v1/jobs", headers=headers), 401, "unauthorized")


def test_another_projects_job_is_404_everywhere(caller: Caller, other: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, kind=JobKind.GENERATE, status=JobStatus.SUCCEEDED)
    assert caller.get(f"/v1/jobs/{job_id}").status_code == 200
    for path in ("", "/events", "/events/stream", "/logs", "/logs?follow=true", "/metrics", "/output"):
        assert_error(other.get(f"/v1/jobs/{job_id}{path}"), 404, "not_found")
    r = other.get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
    assert_error(r, 404, "not_found")
    assert_error(other.post(f"/v1/jobs/{job_id}/cancel"), 404, "not_found")
    assert other.get("/v1/jobs").json()["data"] == []


def test_auth_disabled_serves_project_default(
    settings: ServiceSettings, caplog: pytest.LogCaptureFixture, enqueued: list[Any]
) -> None:
    insert_job(settings, "default", labels={"marker": "auth-off"})
    app = create_app(settings.model_copy(update={"auth_disabled": True}))
    with caplog.at_level(logging.WARNING, logger="api"), TestClient(app) as client:
        jobs = client.get("/v1/jobs?label=marker=auth-off").json()["data"]
    assert len(jobs) == 1
    assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- reading


def test_list_filters_and_pagination(caller: Caller, settings: ServiceSettings) -> None:
    ids = []
    for i in range(5):
        kind = JobKind.SFT if i % 2 == 0 else JobKind.MERGE
        status = JobStatus.SUCCEEDED if i < 2 else JobStatus.QUEUED
        ids.append(insert_job(settings, caller.project, kind=kind, status=status, labels={"n": str(i), "team": "a"}))
    newest_first = list(reversed(ids))
    seen, after = [], None
    while True:
        page = caller.get("/v1/jobs", params={"limit": 2, **({"after": after} if after else {})}).json()
        assert len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        after = page["next"]
        if after is None:
            break
    assert seen == newest_first
    assert [j["id"] for j in caller.get("/v1/jobs?kind=merge").json()["data"]] == [ids[3], ids[1]]
    assert [j["id"] for j in caller.get("/v1/jobs?status=succeeded").json()["data"]] == [ids[1], ids[0]]
    assert [j["id"] for j in caller.get("/v1/jobs?label=n=3&label=team=a").json()["data"]] == [ids[3]]
    assert caller.get("/v1/jobs?label=team=b").json()["data"] == []
    assert_error(caller.get(f"/v1/jobs?after={new_id()}"), 422, "invalid_cursor", "after")
    assert_error(caller.get("/v1/jobs?status=nonsense"), 422, "invalid_parameter", "status")
    assert_error(caller.get("/v1/jobs?limit=0"), 422, "invalid_parameter", "limit")
    assert_error(caller.get("/v1/jobs?label=novalue"), 422, "invalid_label", "label")


def test_unknown_job_is_404(caller: Caller) -> None:
    assert_error(caller.get(f"/v1/jobs/{new_id()}"), 404, "not_found")
    assert_error(caller.get("/v1/jobs/not-a-uuid"), 404, "not_found")


def test_events_paging(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    ids = insert_events(settings, job_id, [("log", {"stream": "stdout", "line": f"line {i}"}) for i in range(7)])
    seen, after = [], 0
    while True:
        page = caller.get(f"/v1/jobs/{job_id}/events", params={"after": after, "limit": 3}).json()
        seen += [e["id"] for e in page["data"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == ids
    first = caller.get(f"/v1/jobs/{job_id}/events?limit=1").json()["data"][0]
    assert set(first) == {"id", "type", "data", "attempt", "created_at"}
    assert first["data"] == {"stream": "stdout", "line": "line 0"}


def parse_sse(lines: Iterator[str], stop_after: int | None = None) -> list[dict[str, Any]]:
    """Reads SSE messages (comments included, as {"comment": ...}) until the stream ends or enough events came."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            messages.append({"comment": line[1:].strip()})
        elif line == "":
            if current:
                messages.append(current)
                current = {}
                if stop_after is not None and sum(1 for m in messages if "id" in m) >= stop_after:
                    break
        else:
            key, _, value = line.partition(": ")
            current[key] = value
    return messages


def test_sse_resumes_with_last_event_id(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    ids = insert_events(settings, job_id, [("progress", {"step": i, "total_steps": 10}) for i in range(6)])
    url = f"/v1/jobs/{job_id}/events/stream"
    with caller.client.stream("GET", url, headers=caller.headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        first = [m for m in parse_sse(r.iter_lines(), stop_after=3) if "id" in m]
    assert [int(m["id"]) for m in first] == ids[:3]
    assert first[0]["event"] == "progress"
    assert json.loads(first[0]["data"]) == {"step": 0, "total_steps": 10}

    # the job goes on while the client is away, then finishes
    ids += insert_events(settings, job_id, [("metrics", {"step": 7, "loss": 1.0}), ("status", {"status": "ok"})])
    set_job(settings, job_id, status="succeeded", finished_at=utcnow())
    headers = {**caller.headers, "Last-Event-ID": first[-1]["id"]}
    with caller.client.stream("GET", url, params={"after": 0}, headers=headers) as r:
        rest = parse_sse(r.iter_lines())  # ends by itself: the job is terminal
    got = [int(m["id"]) for m in rest if "id" in m]
    assert [int(m["id"]) for m in first] + got == ids  # every event exactly once, in order


def test_sse_live_with_heartbeats_and_accept_header(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)

    def worker() -> None:
        time.sleep(0.5)  # long enough for heartbeats (every 0.2 s in this app)
        insert_events(settings, job_id, [("phase", {"phase": "training"})])
        time.sleep(0.1)
        insert_events(settings, job_id, [("job", {"status": "succeeded", "attempt": 1})])
        set_job(settings, job_id, status="succeeded", finished_at=utcnow())

    thread = threading.Thread(target=worker)
    thread.start()
    headers = {**caller.headers, "Accept": "text/event-stream"}
    with caller.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as r:
        messages = parse_sse(r.iter_lines())
    thread.join()
    assert {"comment": "keep-alive"} in messages
    assert [m["event"] for m in messages if "event" in m] == ["phase", "job"]


def test_sse_bad_last_event_id(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    r = caller.get(f"/v1/jobs/{job_id}/events/stream", headers={"Last-Event-ID": "abc"})
    assert_error(r, 422, "invalid_parameter", "Last-Event-ID")


def test_logs_and_follow(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    insert_events(
        settings,
        job_id,
        [
            ("log", {"stream": "stdout", "line": "loading"}),
            ("metrics", {"step": 1, "loss": 2.0}),
            ("log", {"level": "warning", "message": "few samples"}),
        ],
    )
    r = caller.get(f"/v1/jobs/{job_id}/logs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "loading\n[warning] few samples\n"

    def finish() -> None:
        time.sleep(0.2)
        insert_events(settings, job_id, [("log", {"stream": "stderr", "line": "done"})])
        set_job(settings, job_id, status="failed", finished_at=utcnow())

    thread = threading.Thread(target=finish)
    thread.start()
    followed = caller.get(f"/v1/jobs/{job_id}/logs?follow=true").text  # returns once the job is terminal
    thread.join()
    assert followed == "loading\n[warning] few samples\ndone\n"


def test_metrics_series(caller: Caller, settings: ServiceSettings) -> None:
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    metrics = {"total_steps": 2, "learning_rate": 1e-3, "grad_norm": 1.5, "tokens_per_second": 400.0}
    insert_events(
        settings,
        job_id,
        [
            (
                "metrics",
                {**metrics, "step": 1, "epoch": 0.5, "loss": 4.5, "extra": {"entropy": 2.0, "train_runtime": 0.1}},
            ),
            ("progress", {"step": 1, "total_steps": 2, "percent": 50.0}),
            ("metrics", {**metrics, "step": 2, "epoch": 1.0, "loss": "NaN", "extra": {}}),
            ("eval", {"step": 2, "epoch": 1.0, "metrics": {"loss": 4.6, "runtime": 0.1}}),
            (
                "metrics",
                {
                    "step": 2,
                    "loss": None,
                    "learning_rate": None,
                    "grad_norm": None,
                    "tokens_per_second": None,
                    "extra": {"train_runtime": 0.2, "train_loss": 4.4},
                },
            ),
        ],
    )
    data = caller.get(f"/v1/jobs/{job_id}/metrics").json()

    def points(series: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        return [(p["step"], p["value"]) for p in series]

    assert points(data["train"]["loss"]) == [(1, 4.5), (2, "NaN")]
    assert points(data["train"]["learning_rate"]) == [(1, 1e-3), (2, 1e-3)]
    assert points(data["train"]["entropy"]) == [(1, 2.0)]
    assert points(data["train"]["epoch"]) == [(1, 0.5), (2, 1.0)]
    assert {name: points(series) for name, series in data["eval"].items()} == {
        "loss": [(2, 4.6)],
        "runtime": [(2, 0.1)],
    }
    assert data["summary"] == {"train_runtime": 0.2, "train_loss": 4.4}
    assert data["superseded"] is None


def test_a_resumed_jobs_metrics_hold_each_step_once(caller: Caller, settings: ServiceSettings) -> None:
    """Attempt 1 logged steps 1-5 and was lost; attempt 2 resumed checkpoint-3 and logged 4-6 (and an eval at 4):
    the series is steps 1-6 once, 4 and 5 from attempt 2; attempt 1's 4 and 5 are superseded, and reachable."""
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    rows: list[tuple[str, dict[str, Any], int]] = [("metrics", {"step": s, "loss": 10.0 - s}, 1) for s in range(1, 6)]
    rows.append(("eval", {"step": 4, "metrics": {"loss": 9.0}}, 1))
    rows.append(("resumed", {"attempt": 2, "checkpoint": "/x/checkpoint-3", "from_step": 3, "rerun": None}, 2))
    rows += [("metrics", {"step": s, "loss": 20.0 - s}, 2) for s in range(4, 7)]
    rows.append(("eval", {"step": 4, "metrics": {"loss": 8.0}}, 2))
    with session_scope(settings.database_url) as session:
        for kind, data, attempt in rows:
            session.add(JobEvent(job_id=job_id, type=kind, data=data, attempt=attempt))
            session.flush()
    series = caller.get(f"/v1/jobs/{job_id}/metrics").json()
    loss = [(p["step"], p["value"], p["attempt"]) for p in series["train"]["loss"]]
    assert loss == [(1, 9.0, 1), (2, 8.0, 1), (3, 7.0, 1), (4, 16.0, 2), (5, 15.0, 2), (6, 14.0, 2)]
    assert [(p["value"], p["attempt"]) for p in series["eval"]["loss"]] == [(8.0, 2)]
    assert series["superseded"] is None
    full = caller.get(f"/v1/jobs/{job_id}/metrics?include_superseded=true").json()
    lost = [(p["step"], p["value"], p["attempt"]) for p in full["superseded"]["train"]["loss"]]
    assert lost == [(4, 6.0, 1), (5, 5.0, 1)]
    assert [(p["value"], p["attempt"]) for p in full["superseded"]["eval"]["loss"]] == [(9.0, 1)]
    assert full["train"] == series["train"]
    # the events stay a log: every one is there, each with its attempt
    events = caller.get(f"/v1/jobs/{job_id}/events?limit=1000").json()["data"]
    assert [(e["type"], e["attempt"]) for e in events].count(("metrics", 1)) == 5


def test_generate_output(caller: Caller, settings: ServiceSettings) -> None:
    answers = [{"prompt": "Hi", "answer": "Hello"}]
    job_id = insert_job(settings, caller.project, kind=JobKind.GENERATE, status=JobStatus.RUNNING)
    assert_error(caller.get(f"/v1/jobs/{job_id}/output"), 409, "job_not_succeeded")
    output = settings.artifact_root / job_id / "output.yaml"
    output.parent.mkdir(parents=True)
    output.write_text(yaml.safe_dump(answers))
    set_job(settings, job_id, status="succeeded", artifacts={"output": str(output)})
    assert caller.get(f"/v1/jobs/{job_id}/output").json() == answers
    r = caller.get(f"/v1/jobs/{job_id}/output", headers={"Accept": "application/yaml"})
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == answers
    sft = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    assert_error(caller.get(f"/v1/jobs/{sft}/output"), 404, "no_output")


# ---------------------------------------------------------------- cancel


def test_cancel(caller: Caller, settings: ServiceSettings, body: dict[str, Any]) -> None:
    queued = caller.post("/v1/jobs/sft", body).json()
    r = caller.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["finished_at"]
    assert caller.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"  # idempotent
    events = caller.get(f"/v1/jobs/{queued['id']}/events").json()["data"]
    assert events[-1]["type"] == "job"
    assert events[-1]["data"]["status"] == "cancelled"

    running = insert_job(settings, caller.project, status=JobStatus.RUNNING)
    assert caller.post(f"/v1/jobs/{running}/cancel").json()["status"] == "cancel_requested"
    assert caller.post(f"/v1/jobs/{running}/cancel").json()["status"] == "cancel_requested"
    with session_scope(settings.database_url) as session:
        job = session.get(Job, running)
        assert job is not None
        assert job.cancel_requested
        assert job.finished_at is None

    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        finished = insert_job(settings, caller.project, status=status)
        assert_error(caller.post(f"/v1/jobs/{finished}/cancel"), 409, "job_finished")


# ---------------------------------------------------------------- health, OpenAPI, admin


def test_health_and_readiness(app_client: TestClient, settings: ServiceSettings) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    r = app_client.get("/readyz")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert r.json()["status"] == "ready"
    assert (checks["database"], checks["broker"]) == ("ok", "ok")
    assert checks["database_pool"] == f"0 of {settings.db_pool_size} connections in use, 0 requests waiting"
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken)) as client:
        assert_error(client.get("/readyz"), 503, "not_ready", "broker")
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as client:
        error = assert_error(client.get("/readyz"), 503, "not_ready", "database")
    assert [d["param"] for d in error["details"]] == ["database"]


def test_openapi_documents_each_kind(app_client: TestClient) -> None:
    doc = app_client.get("/openapi.json").json()
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {
        "submit_sft_job", "submit_dpo_job", "submit_merge_job", "submit_adapter_conversion_job",
        "submit_generate_job", "list_jobs", "get_job", "cancel_job", "list_job_events", "stream_job_events",
        "get_job_logs", "get_job_metrics", "get_job_output", "get_health", "get_readiness",
    } <= operations  # fmt: skip
    content = doc["paths"]["/v1/jobs/sft"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/SFTConfig"}
    assert "application/yaml" in content
    assert "data_conf" in doc["components"]["schemas"]["SFTConfig"]["properties"]
    assert doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def test_admin_cli(
    settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], app_client: Any
) -> None:
    monkeypatch.setenv("FINETUNING_DATABASE_URL", settings.database_url)
    project = new_project()
    assert main(["token", "create", "--project", project, "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ft_")
    assert "\n" not in token
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/v1/jobs", headers=headers).status_code == 200

    assert main(["token", "list", "--project", project]) == 0
    listing = capsys.readouterr().out
    assert token[:12] in listing
    assert "ci" in listing
    assert token not in listing
    with session_scope(settings.database_url) as session:
        (row,) = list_tokens(session, project)
        assert row.token_hash != token
        assert row.revoked_at is None

    assert main(["token", "revoke", token[:12]]) == 0
    assert app_client.get("/v1/jobs", headers=headers).status_code == 401
    assert main(["token", "revoke", "nope"]) == 1
    assert main(["token", "create", "--project", "bad name!"]) == 1


# ---------------------------------------------------------------- no 500s


def test_unexpected_errors_answer_the_envelope_without_internals(
    caller: Caller, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "get_job", broken)
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        error = assert_error(caller.get(f"/v1/jobs/{new_id()}"), 500, "internal_error")
    assert "secret" not in error["message"]
    assert "Traceback" not in error["message"]
    reference = error["message"].split("reference ")[1].split(")")[0]
    assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)  # the log has the details


def test_bad_inputs_never_answer_500(
    caller: Caller, settings: ServiceSettings, body: dict[str, Any], tiny_model_dir: Path
) -> None:
    json_headers = {"Content-Type": "application/json"}
    deep = "[" * 100_000 + "]" * 100_000
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    job_id = insert_job(settings, caller.project, status=JobStatus.SUCCEEDED)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("post", "/v1/jobs/sft", {"content": b"{not json", "headers": json_headers}),
        ("post", "/v1/jobs/sft", {"content": b"[1, 2]", "headers": json_headers}),
        ("post", "/v1/jobs/sft", {"content": b"", "headers": json_headers}),
        ("post", "/v1/jobs/sft", {"content": b"\xff\xfe", "headers": json_headers}),
        ("post", "/v1/jobs/sft", {"content": deep.encode(), "headers": json_headers}),
        ("post", "/v1/jobs/sft", {"content": b"a: [b", "headers": {"Content-Type": "application/yaml"}}),
        ("post", "/v1/jobs/sft", {"content": bomb.encode(), "headers": {"Content-Type": "application/yaml"}}),
        ("post", "/v1/jobs/sft", {"content": b"x=1", "headers": {"Content-Type": "text/plain"}}),
        ("post", "/v1/jobs/sft", {"content": b"x" * (settings.max_body_bytes + 1), "headers": json_headers}),
        ("post", "/v1/jobs/sft?processes=9", {"json": body}),
        ("post", "/v1/jobs/sft?queue=bad%20queue", {"json": body}),
        ("post", "/v1/jobs/sft?label==x", {"json": body}),
        ("post", "/v1/jobs/sft", {"json": {**body, "run_conf": {"model": "job:zzz"}}}),
        ("post", "/v1/jobs/sft", {"json": {**body, "run_conf": {"model": "../" * 30 + "etc"}}}),
        ("post", "/v1/jobs/sft", {"json": {**body, "run_conf": {"model": "\x00bad"}}}),
        ("post", "/v1/jobs/sft", {"json": {**body, "data_conf": "nope"}}),
        ("post", "/v1/jobs/merge", {"json": {"base_model": str(tiny_model_dir), "adapter": 5}}),
        ("post", "/v1/jobs/generate", {"json": {"model_conf": {"model": str(tiny_model_dir)}}}),
        ("post", "/v1/jobs/dpo", {"json": body}),
        ("post", "/v1/jobs/unknown-kind", {"json": body}),
        ("get", "/v1/jobs?limit=500", {}),
        ("get", "/v1/jobs?kind=nonsense", {}),
        ("get", f"/v1/jobs/{job_id}/events?after=-1", {}),
        ("get", f"/v1/jobs/{job_id}/events?limit=abc", {}),
        ("get", f"/v1/jobs/{job_id}/events/stream", {"headers": {"Last-Event-ID": "-5"}}),
        ("get", f"/v1/jobs/{job_id}/logs?follow=maybe", {}),
        ("delete", f"/v1/jobs/{job_id}", {}),
        ("get", "/v1/nothing-here", {}),
    ]
    for method, url, kwargs in requests:
        headers = {**caller.headers, **kwargs.pop("headers", {})}
        r = caller.client.request(method, url, headers=headers, **kwargs)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
        assert set(r.json()["error"]) >= {"code", "message", "param"}, (url, r.text[:300])
    count = select(Job).where(Job.project == caller.project)
    with session_scope(settings.database_url) as session:
        assert len(list(session.scalars(count))) == 1  # none of them made a job


def test_embedded_sqlite_works_the_same(
    tmp_path: Path,
    tiny_model_dir: Path,
    data_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    enqueued: list[Any],
) -> None:
    """The embedded database of `make demo`: migrated by `finetuning-admin db upgrade`, then the same API."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    monkeypatch.setenv("FINETUNING_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 0
    assert main(["token", "create", "--project", "demo"]) == 0
    headers = {"Authorization": f"Bearer {capsys.readouterr().out.strip()}"}
    local = ServiceSettings(
        database_url=url,
        artifact_root=tmp_path / "artifacts",
        allowed_roots=[tiny_model_dir.parent, data_file.parent],
        allow_hub_models=False,
    )
    with TestClient(create_app(local, heartbeat_seconds=0.2, poll_seconds=0.02)) as client:
        body = sft_body(tiny_model_dir, data_file)
        r = client.post("/v1/jobs/sft?label=a=1", json=body, headers={**headers, "Idempotency-Key": "k"})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        again = client.post("/v1/jobs/sft?label=a=1", json=body, headers={**headers, "Idempotency-Key": "k"})
        assert again.status_code == 200
        assert again.json()["id"] == job_id
        assert [j["id"] for j in client.get("/v1/jobs?label=a=1", headers=headers).json()["data"]] == [job_id]
        insert_events(local, job_id, [("phase", {"phase": "training"})])
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).json()["status"] == "cancelled"
        with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", headers=headers) as stream:
            messages = parse_sse(stream.iter_lines())
        assert [m["event"] for m in messages if "event" in m] == ["job", "phase", "job"]
    assert enqueued == [(job_id, local.default_queue, True)]


# ---------------------------------------------------------------- configs of the original engine

ORIGINAL_LORA = Path(__file__).parents[1] / "assets" / "original-configs" / "aw-tutorial-01-finetune-lora.yaml"


def test_an_original_recipe_is_accepted_and_its_upgrades_are_recorded(
    caller: Caller, tiny_model_dir: Path, data_file: Path
) -> None:
    text = ORIGINAL_LORA.read_text()
    text = text.replace("/local_resources/basemodel", str(tiny_model_dir))
    text = text.replace(
        "/local_resources/default-bucket_datasets_argilla-mistral-large-human-prompts.jsonl", str(data_file)
    )
    r = caller.post("/v1/jobs/sft", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["config"]["training_args"]["warmup_steps"] == 0.01
    assert "warmup_ratio" not in job["config"]["training_args"]
    assert job["config"]["run_conf"]["model_args"]["dtype"] == "bfloat16"
    upgrades = {u["param"]: u for u in job["resolved"]["upgrades"]}
    assert set(upgrades) == {"training_args.warmup_ratio", "run_conf.model_args.torch_dtype"}
    assert upgrades["training_args.warmup_ratio"]["replacement"] == "training_args.warmup_steps: 0.01"
    assert "transformers 5" in upgrades["training_args.warmup_ratio"]["reason"]
    SFTConfig.validate_config(job["resolved"]["config"])  # what the worker runs is in today's spelling


def test_an_original_field_that_cannot_be_kept_is_a_422_naming_it(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"]["save_safetensors"] = False
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.save_safetensors")
    assert "safetensors" in error["message"]


def test_a_config_that_could_not_start_is_refused_at_submission(caller: Caller, body: dict[str, Any]) -> None:
    body["training_args"].update(eval_strategy="steps", eval_steps=5)  # validation_data is NONE
    error = assert_error(caller.post("/v1/jobs/sft", body), 422, "invalid_config", "training_args.eval_strategy")
    assert "validation" in error["message"]
