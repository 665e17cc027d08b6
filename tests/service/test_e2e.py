"""The service end to end over real HTTP: uvicorn serving the API, Postgres, Redis, a real Celery worker process and
the tiny model. SFT -> merge -> generate chained by job id, live events over SSE with reconnects, and cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobcore.settings import ServiceSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(base_url: str, settings: ServiceSettings) -> Iterator[httpx.Client]:
    from api.admin import create_token
    from jobcore.db import session_scope

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "e2e", "end-to-end test")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


def sse_events(
    client: httpx.Client, job_id: str, *, last_event_id: int | None = None, stop_after: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """Read the job's SSE stream; stop after ``stop_after`` events (a client that disconnects) or at its end."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    received: list[tuple[int, str, dict[str, Any]]] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", headers=headers, timeout=120) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event_id, event_type = None, ""
        for line in stream.iter_lines():
            if line.startswith("id:"):
                event_id = int(line.split(":", 1)[1])
            elif line.startswith("event:"):
                event_type = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                assert event_id is not None
                received.append((event_id, event_type, json.loads(line.split(":", 1)[1])))
                if stop_after is not None and len(received) >= stop_after:
                    break
    return received


def wait_for_status(client: httpx.Client, job_id: str, statuses: set[str], seconds: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.3)


def sft_body(model: Path, data: Path, **training_args: Any) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "max_steps": 30,
            "learning_rate": 1e-2,
            "logging_steps": 2,
            "save_strategy": "no",
            "use_cpu": True,
            "report_to": [],
            **training_args,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
    }


def test_sft_merge_generate_chain_with_resumable_sse(
    client: httpx.Client, tiny_model_dir: Path, data_dir: Path
) -> None:
    from finetuning.tiny import tiny_chat_records, write_jsonl

    data = write_jsonl(tiny_chat_records(32), data_dir / "e2e-colors.jsonl")
    created = client.post("/v1/jobs/sft", json=sft_body(tiny_model_dir, data), params={"name": "e2e"})
    assert created.status_code == 201, created.text
    sft_id = created.json()["id"]

    # a client that drops the connection twice and resumes with Last-Event-ID sees every event exactly once
    first = sse_events(client, sft_id, stop_after=3)
    second = sse_events(client, sft_id, last_event_id=first[-1][0], stop_after=5)
    rest = sse_events(client, sft_id, last_event_id=second[-1][0])
    resumed = first + second + rest
    ids = [event_id for event_id, _, _ in resumed]
    assert ids == sorted(set(ids))
    paged = client.get(f"/v1/jobs/{sft_id}/events", params={"limit": 1000}).json()["data"]
    assert [e["id"] for e in paged] == ids

    job = wait_for_status(client, sft_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    losses = [point["value"] for point in client.get(f"/v1/jobs/{sft_id}/metrics").json()["train"]["loss"]]
    assert len(losses) == 15
    assert min(losses[-3:]) < losses[0] / 2
    assert job["progress"]["percent"] == pytest.approx(100)

    merge = client.post(
        "/v1/jobs/merge", json={"base_model": f"job:{sft_id}/new_basemodel", "adapter": f"job:{sft_id}"}
    )
    assert merge.status_code == 201, merge.text
    merged = wait_for_status(client, merge.json()["id"], {"succeeded", "failed"})
    assert merged["status"] == "succeeded", merged["error"]
    assert merged["inputs"]["adapter"]["job_id"] == sft_id

    generate = client.post(
        "/v1/jobs/generate",
        json={
            "model_conf": {"model": f"job:{merged['id']}"},
            "prompt_conf": {"type": "open-input", "input": "What color is the sky?", "num_samples": 2},
            "hf_gen_params": {"do_sample": False, "max_new_tokens": 4},
        },
    )
    assert generate.status_code == 201, generate.text
    generated = wait_for_status(client, generate.json()["id"], {"succeeded", "failed"})
    assert generated["status"] == "succeeded", generated["error"]
    output = client.get(f"/v1/jobs/{generated['id']}/output").json()
    assert len(output) == 2
    assert output[0]["answer"] == output[1]["answer"]  # greedy: the same prompt gives the same answer
    as_yaml = client.get(f"/v1/jobs/{generated['id']}/output", headers={"Accept": "application/yaml"})
    assert "answer:" in as_yaml.text


def test_cancel_a_running_job_stops_it_within_seconds(
    client: httpx.Client, tiny_model_dir: Path, data_dir: Path
) -> None:
    from finetuning.tiny import tiny_chat_records, write_jsonl

    data = write_jsonl(tiny_chat_records(32), data_dir / "e2e-long.jsonl")
    created = client.post("/v1/jobs/sft", json=sft_body(tiny_model_dir, data, max_steps=100000, logging_steps=50))
    job_id = created.json()["id"]
    running = wait_for_status(client, job_id, {"running"}, seconds=120)
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{job_id}").json()["phase"] != "training":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    cancelled_at = time.monotonic()
    answer = client.post(f"/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] in ("cancel_requested", "cancelled")
    final = wait_for_status(client, job_id, {"cancelled", "failed", "succeeded"}, seconds=30)
    assert final["status"] == "cancelled"
    assert time.monotonic() - cancelled_at < 10
    assert running["attempt"] == 1
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200  # idempotent
