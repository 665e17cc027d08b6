"""The reproducibility manifest through the real service (uvicorn, Postgres, Redis, a Celery worker and the tiny
model): ``GET /v1/jobs/{id}/manifest`` and a rerun with ``POST /v1/jobs/sft?from_manifest=<id>``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.admin import create_token
from jobcore.db import session_scope
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import new_project

pytestmark = pytest.mark.slow


def client_for(base_url: str, settings: ServiceSettings, project: str) -> httpx.Client:
    with session_scope(settings.database_url) as session:
        _, token = create_token(session, project, "manifest test")
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    with client_for(base_url, settings, new_project()) as http:
        yield http


def wait_for_status(client: httpx.Client, job_id: str, statuses: set[str], seconds: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.3)


def sft_body(model: Path, data: Path) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.25},
        },
        "training_args": {"max_steps": 2, "learning_rate": 1e-2, "logging_steps": 1, "use_cpu": True, "report_to": []},
        "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model), "resume_from_checkpoint": "auto"},
        "sft_args": {"max_seq_length": 128},
    }


def succeeded(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job = wait_for_status(client, job_id, {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job["error"]
    return job


def test_manifest_and_a_rerun_from_it(
    client: httpx.Client, base_url: str, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path
) -> None:
    from finetuning.tiny import tiny_chat_records, write_jsonl

    data = write_jsonl(tiny_chat_records(16), data_dir / "manifest-chat.jsonl")
    created = client.post("/v1/jobs/sft", json=sft_body(tiny_model_dir, data), params={"name": "m", "label": "t=1"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    succeeded(client, job_id)

    answer = client.get(f"/v1/jobs/{job_id}/manifest")
    assert answer.status_code == 200, answer.text
    manifest = answer.json()
    assert manifest["job_id"] == job_id
    assert manifest["kind"] == "sft"
    assert manifest["rerun_of"] is None
    assert manifest["warnings"] == []
    inputs = {record["param"]: record for record in manifest["inputs"]}
    assert inputs["data_conf.training_data.datasets[0].path"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert inputs["run_conf.model"]["kind"] == "folder"
    assert manifest["seeds"]["data_conf.validation_data.seed"] == 1289525893
    assert manifest["config"]["run_conf"]["resume_from_checkpoint"] is False
    assert manifest["versions"]["torch"]
    assert manifest["machine"]["world_size"] == 1
    assert manifest["resolved"]["per_device_train_batch_size"] == 4

    # another project sees neither the manifest nor can rerun it
    with client_for(base_url, settings, new_project()) as other:
        assert other.get(f"/v1/jobs/{job_id}/manifest").status_code == 404
        refused = other.post("/v1/jobs/sft", params={"from_manifest": job_id})
        assert refused.status_code == 404, refused.text
    # a body, or another kind, is refused with a reason
    with_body = client.post("/v1/jobs/sft", params={"from_manifest": job_id}, json=sft_body(tiny_model_dir, data))
    assert with_body.status_code == 422
    assert with_body.json()["error"]["code"] == "body_not_allowed"
    other_kind = client.post("/v1/jobs/dpo", params={"from_manifest": job_id})
    assert other_kind.status_code == 422
    assert other_kind.json()["error"]["code"] == "manifest_kind_mismatch"

    rerun = client.post("/v1/jobs/sft", params={"from_manifest": job_id})
    assert rerun.status_code == 201, rerun.text
    rerun_job = rerun.json()
    assert rerun_job["resolved"]["rerun_of"] == job_id
    assert rerun_job["name"] == "m"
    assert rerun_job["labels"] == {"t": "1"}
    assert rerun_job["resolved"]["config"]["training_args"]["seed"] == 42  # pinned: the default, made explicit
    assert rerun_job["resolved"]["config"]["run_conf"]["resume_from_checkpoint"] == "auto"  # as submitted
    succeeded(client, rerun_job["id"])
    again = client.get(f"/v1/jobs/{rerun_job['id']}/manifest").json()
    assert again["rerun_of"] == job_id
    assert again["warnings"] == []
    assert again["inputs"] == manifest["inputs"]
    for one in (again, manifest):
        assert one["config"]["training_args"].pop("output_dir").endswith(f"{one['job_id']}/output")
    assert again["config"] == manifest["config"]
    assert again["resolved"]["output_dir"] != manifest["resolved"]["output_dir"]

    # a data file that changed since is refused, unless asked for; the job then says what changed
    with data.open("a") as f:
        f.write(data.read_text().splitlines()[0] + "\n")
    changed = client.post("/v1/jobs/sft", params={"from_manifest": job_id})
    assert changed.status_code == 409, changed.text
    error = changed.json()["error"]
    assert error["code"] == "inputs_changed"
    assert "data_conf.training_data.datasets[0].path" in error["message"]
    anyway = client.post("/v1/jobs/sft", params={"from_manifest": job_id, "allow_changed_inputs": "true"})
    assert anyway.status_code == 201, anyway.text
    assert any("changed since" in warning for warning in anyway.json()["resolved"]["warnings"])
    client.post(f"/v1/jobs/{anyway.json()['id']}/cancel")


def test_jobs_without_a_manifest_say_why(client: httpx.Client, tiny_model_dir: Path, data_dir: Path) -> None:
    bad = data_dir / "manifest-bad.jsonl"
    bad.write_text("not json\n")
    created = client.post("/v1/jobs/sft", json=sft_body(tiny_model_dir, bad))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job = wait_for_status(client, job_id, {"succeeded", "failed"})
    assert job["status"] == "failed"
    answer = client.get(f"/v1/jobs/{job_id}/manifest")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "manifest_not_ready"
    rerun = client.post("/v1/jobs/sft", params={"from_manifest": job_id})
    assert rerun.status_code == 409
    assert rerun.json()["error"]["code"] == "manifest_not_ready"

    merge = client.post("/v1/jobs/merge", json={"base_model": str(tiny_model_dir), "adapter": str(tiny_model_dir)})
    assert merge.status_code == 201, merge.text
    answer = client.get(f"/v1/jobs/{merge.json()['id']}/manifest")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "no_manifest"
    assert "sft, dpo, grpo, generate" in answer.json()["error"]["message"]
    client.post(f"/v1/jobs/{merge.json()['id']}/cancel")
