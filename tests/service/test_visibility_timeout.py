"""A job that runs several times longer than the broker's visibility timeout completes once: Redis hands its
unacknowledged message to another worker, and the database claim makes that copy exit without running anything."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.models import new_id
from jobcore.settings import ServiceSettings
from tests.chaos.local_redis import LocalRedis
from tests.service.conftest import start_worker
from tests.service.test_worker import get_events, get_job, insert_job, sft_config, wait_for, wait_terminal
from tests.workers import stop_worker
from worker.dispatch import enqueue_job

pytestmark = pytest.mark.skipif(not LocalRedis.available(), reason="redis-server is not installed")

VISIBILITY_S = 2
DROPPED = "not claimable"  # what a worker logs when it drops a message whose job it cannot claim


def test_a_job_three_times_longer_than_the_visibility_timeout_runs_once(
    settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tiny_chat_records(16), data_dir / "visibility.jsonl")
    # a Redis of its own: a short visibility timeout applies to every unacknowledged message in a Redis database
    with LocalRedis(tmp_path / "redis") as redis:
        local = settings.model_copy(
            update={
                "broker_url": redis.url,
                "default_queue": f"visibility-{secrets.token_hex(3)}",
                "broker_visibility_timeout_seconds": VISIBILITY_S,
            }
        )
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [start_worker(local, logs[0], hostname=f"vis-a-{secrets.token_hex(3)}@localhost")]
        try:
            job_id = new_id()
            insert_job(local, sft_config(local, job_id, tiny_model_dir, data, max_steps=300), job_id=job_id)
            started = time.monotonic()
            enqueue_job(local, job_id, local.default_queue)
            wait_for(local, job_id, lambda job: job.status == "running", 60, "running")
            time.sleep(2 * VISIBILITY_S)
            # a worker that connects restores the messages whose visibility timeout passed (kombu also does so
            # every 100 s or so): the running job's message goes to this idle worker
            workers.append(start_worker(local, logs[1], hostname=f"vis-b-{secrets.token_hex(3)}@localhost"))
            job = wait_terminal(local, job_id, timeout=240)
            took = time.monotonic() - started
        finally:
            for worker in workers:
                stop_worker(worker)
    assert job.status == "succeeded", job.error
    assert took > 3 * VISIBILITY_S
    # the message came back while the job ran, and the second worker dropped it
    dropped = logs[1].read_text(errors="replace").count(DROPPED)
    assert dropped >= 1, f"no redelivery was seen in {took:.0f} s"
    assert get_job(local, job_id).attempt == 1
    events = get_events(local, job_id)
    assert [e.data["status"] for e in events if e.type == "job"] == ["running", "succeeded"]
    assert sum(e.type == "process" for e in events) == 1
    assert sum(e.type == "run_started" for e in events) == 1
