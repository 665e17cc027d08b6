"""Checkpoints as resources, on real parts (a real training job on the session's worker): listed with the metrics at
their step, complete or not by the engine's own rule, paged by step, and usable as ``job:<id>/checkpoint-<step>``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import sft_body

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "checkpoints", "checkpoint tests")
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


def test_a_jobs_checkpoints_with_their_metrics_and_as_inputs(
    client: httpx.Client, tiny_model_dir: Path, data_dir: Path, settings: ServiceSettings
) -> None:
    data = write_jsonl(tiny_chat_records(8), data_dir / "checkpoints.jsonl")
    body = sft_body(tiny_model_dir, data)
    body["training_args"].update(max_steps=6, save_strategy="steps", save_steps=2, logging_steps=1)
    created = client.post("/v1/jobs/sft", json=body)
    assert created.status_code == 201, created.text
    job = finished(client, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    job_id = job["id"]
    output = Path(job["resolved"]["config"]["training_args"]["output_dir"])
    (output / "checkpoint-8").mkdir()  # a save cut off before its weights: listed, not complete

    listed = client.get(f"/v1/jobs/{job_id}/checkpoints").json()
    steps = [c["step"] for c in listed["data"]]
    assert steps == [2, 4, 6, 8]
    assert [c["complete"] for c in listed["data"]] == [True, True, True, False]
    second = listed["data"][1]
    loss = {p["step"]: p["value"] for p in client.get(f"/v1/jobs/{job_id}/metrics").json()["train"]["loss"]}
    assert second["metrics"]["train"]["loss"] == loss[4]
    assert second["size_bytes"] > 0
    assert second["location"] == str(output / "checkpoint-4")

    page = client.get(f"/v1/jobs/{job_id}/checkpoints", params={"limit": 2}).json()
    assert [c["step"] for c in page["data"]] == [2, 4]
    rest = client.get(f"/v1/jobs/{job_id}/checkpoints", params={"after": page["next"]}).json()
    assert [c["step"] for c in rest["data"]] == [6, 8]
    assert rest["next"] is None

    merge = client.post(
        "/v1/jobs/merge", json={"base_model": str(tiny_model_dir), "adapter": f"job:{job_id}/checkpoint-4"}
    )
    assert merge.status_code == 201, merge.text
    assert merge.json()["resolved"]["config"]["adapter"] == str(output / "checkpoint-4")
    assert merge.json()["inputs"]["adapter"]["artifact"] == "checkpoint-4"
    merged = finished(client, merge.json()["id"])
    assert merged["status"] == "succeeded", merged["error"]

    for name, code in (("checkpoint-8", "checkpoint_not_found"), ("checkpoint-99", "checkpoint_not_found")):
        refused = client.post(
            "/v1/jobs/merge", json={"base_model": str(tiny_model_dir), "adapter": f"job:{job_id}/{name}"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code

    # another project sees neither the job nor its checkpoints
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, other = create_token(session, "someone-else", "checkpoint tests")
    headers = {"Authorization": f"Bearer {other}"}
    assert client.get(f"/v1/jobs/{job_id}/checkpoints", headers=headers).status_code == 404
