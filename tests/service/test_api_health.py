"""Health and readiness, the OpenAPI document, the admin command, no 500s on bad input, and the embedded SQLite setup.

The HTTP API against a real Postgres; no worker runs here: the enqueue hook is replaced by a recorder, and events
are inserted directly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import services
from api.admin import list_tokens, main
from api.main import create_app
from jobcore.db import session_scope
from jobcore.models import Job, JobStatus, new_id
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import (
    Caller,
    assert_error,
    insert_events,
    insert_job,
    new_project,
    parse_sse,
    sft_body,
)

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
