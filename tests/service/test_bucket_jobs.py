"""Jobs whose models, data and outputs live in a bucket (a real S3 API over HTTP: moto's server, reached through the
AWS environment variables only), on real parts: Postgres, Redis, two Celery workers on "two machines" (each its own
job folders and download cache), the tiny model training for real.

The chain: SFT from a model and data in the bucket, its checkpoints uploaded while it trains, its worker killed;
resumed by a second worker with an empty cache from the newest checkpoint in the bucket; merge from ``job:<id>``;
generate from the merged model; the answers read back through the API."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from finetuning.contract import UPLOAD_MARKER
from finetuning.storage import S3Uri
from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import JobEvent
from jobcore.settings import ServiceSettings
from tests.s3server import S3Server, upload_folder
from tests.service.api_helpers import make_token, sft_body
from tests.service.conftest import start_worker
from tests.workers import stop_worker
from worker.dispatch import enqueue_job
from worker.recovery import recover

pytestmark = pytest.mark.slow

SAVE_STEPS = 40
MAX_STEPS = 160


@pytest.fixture
def bucket_settings(
    settings: ServiceSettings, s3_server: S3Server, s3_bucket: str, service_root: Path
) -> ServiceSettings:
    return settings.model_copy(
        update={
            "artifact_root": S3Uri(s3_bucket, "artifacts"),
            "allowed_roots": [S3Uri(s3_bucket, "inputs")],
            "work_root": service_root / f"work-{s3_bucket}-a",
            "default_queue": f"bucket-{secrets.token_hex(3)}",
            "lease_seconds": 5,
            "heartbeat_seconds": 1.0,
            "requeue_backoff_seconds": 0,
            "token_cache_seconds": 0,
        }
    )


@pytest.fixture
def client(bucket_settings: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(bucket_settings)) as client:
        client.headers["Authorization"] = f"Bearer {make_token(bucket_settings, 'bucket')}"
        yield client


def events_of(settings: ServiceSettings, job_id: str, kind: str) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        rows = session.query(JobEvent).filter_by(job_id=job_id, type=kind).order_by(JobEvent.id)
        return [{**row.data, "attempt": row.attempt} for row in rows]


def keys(bucket: str, prefix: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", [])}


def wait_status(client: TestClient, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} ({job['phase']})"
        time.sleep(0.3)


def test_sft_in_a_bucket_survives_its_worker_and_chains_to_merge_and_generate(
    bucket_settings: ServiceSettings,
    client: TestClient,
    s3_bucket: str,
    tiny_model_dir: Path,
    service_root: Path,
    tmp_path: Path,
) -> None:
    settings = bucket_settings
    upload_folder(tiny_model_dir, s3_bucket, "inputs/tiny")
    data = write_jsonl(tiny_chat_records(16), tmp_path / "chat.jsonl")
    boto3.client("s3").upload_file(str(data), s3_bucket, "inputs/chat.jsonl")
    model, data_uri = f"s3://{s3_bucket}/inputs/tiny", f"s3://{s3_bucket}/inputs/chat.jsonl"

    body = sft_body(model, data_uri)
    body["data_conf"]["chat_template_name"] = "chat-ml"  # grows the vocabulary: a grown base is saved beside
    body["training_args"].update(max_steps=MAX_STEPS, save_strategy="steps", save_steps=SAVE_STEPS, logging_steps=1)
    body["run_conf"]["resume_from_checkpoint"] = "auto"
    created = client.post("/v1/jobs/sft", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    job_id = job["id"]
    output = f"s3://{s3_bucket}/artifacts/{job_id}/output"
    assert job["resolved"]["config"]["training_args"]["output_dir"] == output
    assert job["resolved"]["config"]["run_conf"]["model"] == model
    assert "test-secret-key" not in created.text

    first = start_worker(
        settings,
        service_root / f"{job_id}-1.log",
        hostname=f"bucket1-{secrets.token_hex(3)}@localhost",
        env={"FINETUNING_STORAGE_CACHE_DIR": str(tmp_path / "cache-1")},
    )
    try:
        first_checkpoint = f"{output}/checkpoint-{SAVE_STEPS}"
        deadline = time.monotonic() + 180
        while not any(
            e.get("state") == "uploaded" and e.get("uri") == first_checkpoint
            for e in events_of(settings, job_id, "storage")
        ):
            assert time.monotonic() < deadline, "the first checkpoint was not uploaded while training"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the first machine is gone: its disk with it
        first.wait()
    finally:
        stop_worker(first)
    downloads = [e for e in events_of(settings, job_id, "storage") if e.get("action") == "download"]
    assert {e["uri"] for e in downloads if e.get("state") == "downloaded"} == {model, data_uri}
    assert f"checkpoint-{SAVE_STEPS}/{UPLOAD_MARKER}" in keys(s3_bucket, f"artifacts/{job_id}/output/")
    time.sleep(settings.lease_seconds + 1)

    def send_own(sent_settings: ServiceSettings, sent_id: str, queue: str, **kwargs: Any) -> None:
        if sent_id == job_id:
            enqueue_job(sent_settings, sent_id, queue, **kwargs)

    assert job_id in recover(settings, dispatch=send_own).requeued

    # the second machine: its own job folders and an empty download cache; everything comes from the bucket
    second_settings = settings.model_copy(update={"work_root": service_root / f"work-{s3_bucket}-b"})
    second = start_worker(
        second_settings,
        service_root / f"{job_id}-2.log",
        hostname=f"bucket2-{secrets.token_hex(3)}@localhost",
        env={"FINETUNING_STORAGE_CACHE_DIR": str(tmp_path / "cache-2")},
    )
    try:
        done = wait_status(client, job_id, 240)
        assert done["status"] == "succeeded", done["error"]
        assert done["artifacts"]["final_checkpoint"] == f"{output}/checkpoint-final"
        assert done["artifacts"]["new_basemodel"] == f"{output}/checkpoint-new-basemodel"
        carried = done["attempts"][-1]
        assert carried["resumed_from"]["checkpoint"].startswith(f"{output}/checkpoint-")
        resumed_step = carried["resumed_from"]["step"]
        assert resumed_step >= SAVE_STEPS
        refetched = [
            e
            for e in events_of(settings, job_id, "storage")
            if e["attempt"] == carried["attempt"] and e.get("action") == "download" and e.get("state") == "downloaded"
        ]
        assert {e["uri"] for e in refetched} >= {model, data_uri, f"{output}/checkpoint-{resumed_step}"}
        stored = keys(s3_bucket, f"artifacts/{job_id}/output/")
        assert "checkpoint-final/adapter_model.safetensors" in stored
        assert "checkpoint-new-basemodel/model.safetensors" in stored
        listed = client.get(f"/v1/jobs/{job_id}/checkpoints").json()["data"]
        assert [c["step"] for c in listed] == list(range(SAVE_STEPS, MAX_STEPS + 1, SAVE_STEPS))
        assert all(c["complete"] and c["location"] == f"{output}/checkpoint-{c['step']}" for c in listed)
        assert listed[-1]["metrics"]["train"]["loss"] is not None
        # the second machine kept nothing of a finished job but its events and config
        assert not (second_settings.job_folder(job_id) / "staging").exists()

        merge = client.post("/v1/jobs/merge", json={"base_model": model, "adapter": f"job:{job_id}"})
        assert merge.status_code == 201, merge.text
        merged = wait_status(client, merge.json()["id"], 180)
        assert merged["status"] == "succeeded", merged["error"]
        merged_uri = f"s3://{s3_bucket}/artifacts/{merged['id']}/merged"
        assert merged["artifacts"]["model_path"] == merged_uri
        # the adapter needs the grown vocabulary: the merge found the grown base beside it in the bucket
        assert merged["artifacts"]["base_model"] == f"{output}/checkpoint-new-basemodel"
        assert "model.safetensors" in keys(s3_bucket, f"artifacts/{merged['id']}/merged/")

        conversion = client.post("/v1/jobs/adapter-conversion", json={"adapter": f"job:{job_id}"})
        assert conversion.status_code == 201, conversion.text
        converted = wait_status(client, conversion.json()["id"], 120)
        assert converted["status"] == "succeeded", converted["error"]
        converted_uri = f"s3://{s3_bucket}/artifacts/{converted['id']}/adapter"
        assert converted["artifacts"]["adapter_path"] == converted_uri
        assert "adapter_model.safetensors" in keys(s3_bucket, f"artifacts/{converted['id']}/adapter/")
        # converted in a copy: the training job's adapter is as it was
        assert not any("old_with_extra_layers" in key for key in keys(s3_bucket, f"artifacts/{job_id}/output/"))

        generate = client.post(
            "/v1/jobs/generate",
            json={
                "model_conf": {"model": f"job:{merged['id']}"},
                "prompt_conf": {"type": "open-input", "input": "What color is the sky?", "num_samples": 2},
                "hf_gen_params": {"do_sample": False, "max_new_tokens": 4},
            },
        )
        assert generate.status_code == 201, generate.text
        generated = wait_status(client, generate.json()["id"], 180)
        assert generated["status"] == "succeeded", generated["error"]
        assert generated["artifacts"]["output"] == f"s3://{s3_bucket}/artifacts/{generated['id']}/output.yaml"
        answers = client.get(f"/v1/jobs/{generated['id']}/output").json()
        assert len(answers) == 2
        assert answers[0]["answer"] == answers[1]["answer"]
    finally:
        stop_worker(second)
