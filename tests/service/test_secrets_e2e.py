"""A job that uses a project secret, on real parts (the API over HTTP, Postgres, Redis, a Celery worker, the engine
process): the engine receives the value (the ``${secrets.NAME}`` in its config is filled), and the value appears in
no answer, no event (SSE or paged), no output file read through the API, and no line of the worker's log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobcore.settings import ServiceSettings

pytestmark = pytest.mark.slow

CANARY = "canary-secret-4f7Qz9"


@pytest.fixture(scope="module")
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "secrets-e2e", "secrets test")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


def finished(client: httpx.Client, job_id: str, seconds: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.3)


def test_the_engine_gets_the_secret_and_nobody_sees_it(
    client: httpx.Client, tiny_model_dir: Path, service_root: Path
) -> None:
    assert client.post("/v1/secrets", json={"name": "GREETING", "value": CANARY}).status_code == 201
    created = client.post(
        "/v1/jobs/generate",
        json={
            "model_conf": {"model": str(tiny_model_dir)},
            "prompt_conf": {"type": "open-input", "input": "Say ${secrets.GREETING} please", "num_samples": 1},
            "hf_gen_params": {"do_sample": False, "max_new_tokens": 2},
            "env_secrets": {"HF_TOKEN": "GREETING"},
        },
    )
    assert created.status_code == 201, created.text
    job = finished(client, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    output = client.get(f"/v1/jobs/{job['id']}/output")
    # the engine filled the reference (a literal ${secrets...} would be echoed as such) and masked what it filled
    assert output.json()[0]["prompt"] == "Say *** please"
    answers = [
        created.text,
        output.text,
        client.get(f"/v1/jobs/{job['id']}").text,
        client.get(f"/v1/jobs/{job['id']}/events", params={"limit": 1000}).text,
        client.get(f"/v1/jobs/{job['id']}/events/stream").text,
        client.get(f"/v1/jobs/{job['id']}/logs").text,
    ]
    for answer in answers:
        assert CANARY not in answer
    assert CANARY not in (service_root / "worker.log").read_text(errors="replace")


def test_the_worker_hands_secrets_only_to_the_engine_and_names_a_missing_one(settings: ServiceSettings) -> None:
    """What the worker puts in the engine's environment for a job (real database, real decryption)."""
    import logging

    from jobcore import secrets
    from jobcore.db import session_scope
    from jobcore.models import new_id
    from worker.runner import JobLog, JobRun, MissingSecret
    from worker.store import Claim

    project = f"secrets-{new_id()[:8]}"
    with session_scope(settings.database_url) as session:
        secrets.put(session, settings, project, "MLFLOW_PW", CANARY, by="test")
        secrets.put(session, settings, project, "HUB", CANARY + "-hub", by="test")
    resolved = {
        "config": {"tracking": {"mlflow_server_uri": "https://me:${secrets.MLFLOW_PW}@mlflow.example.org"}},
        "env_secrets": {"HF_TOKEN": "${secrets.HUB}"},
    }
    claim = Claim(new_id(), "sft", resolved, "q", 1, False, None, project)
    run = JobRun(settings, claim, JobLog(logging.getLogger("test"), {"job_id": "test"}))
    env = run.secret_environment()
    assert env == {"FINETUNING_SECRET__MLFLOW_PW": CANARY, "HF_TOKEN": CANARY + "-hub"}
    # another project's job naming the same secrets gets nothing
    other = Claim(new_id(), "sft", resolved, "q", 1, False, None, "someone-else")
    with pytest.raises(MissingSecret, match="HUB, MLFLOW_PW"):
        JobRun(settings, other, JobLog(logging.getLogger("test"), {"job_id": "test"})).secret_environment()
    with session_scope(settings.database_url) as session:
        secrets.delete(session, project, "HUB")
    with pytest.raises(MissingSecret, match="HUB"):
        run.secret_environment()
