"""A job whose worker is killed between two checkpoints tells one story: real parts (Postgres, Redis, two Celery
worker processes, the tiny model training for real), a `kill -9` of the first worker's process group after the
first checkpoint and before the second.

The metrics series then holds each step once, the steps after the checkpoint from the run that carried the job on;
the first run's lost points are reachable with ``include_superseded``; the events show both runs and the resume; the
attempt history says what the kill cost."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import JobEvent, new_id
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import make_token
from tests.service.conftest import start_worker
from tests.service.test_graceful import get_job, insert_job, sft_config, wait_for
from tests.workers import stop_worker
from worker.dispatch import enqueue_job
from worker.recovery import recover

pytestmark = pytest.mark.slow

SAVE_STEPS = 150
KILL_AFTER_STEP = SAVE_STEPS + 10  # a kill between checkpoint-150 and checkpoint-300
MAX_STEPS = 400


def logged_step(settings: ServiceSettings, job_id: str) -> int:
    with session_scope(settings.database_url) as session:
        steps = [
            step
            for e in session.query(JobEvent).filter_by(job_id=job_id, type="metrics")
            if isinstance(step := e.data.get("step"), int)
        ]
    return max(steps, default=0)


def test_a_kill_between_checkpoints(
    settings: ServiceSettings, service_root: Path, tiny_model_dir: Path, data_dir: Path
) -> None:
    queue = f"resume-{secrets.token_hex(3)}"
    fast = settings.model_copy(
        update={"default_queue": queue, "lease_seconds": 5, "heartbeat_seconds": 1.0, "requeue_backoff_seconds": 0}
    )
    data = write_jsonl(tiny_chat_records(16), data_dir / "resume.jsonl")
    job_id = new_id()
    config = sft_config(fast, job_id, tiny_model_dir, data)
    config["training_args"].update(max_steps=MAX_STEPS, save_strategy="steps", save_steps=SAVE_STEPS)
    config["run_conf"] = {**config["run_conf"], "resume_from_checkpoint": "auto"}
    insert_job(fast, job_id, config, queue)
    project = "graceful"

    first = start_worker(fast, service_root / "resume-1.log", hostname=f"resume1-{secrets.token_hex(3)}@localhost")
    try:
        enqueue_job(fast, job_id, queue)
        deadline = time.monotonic() + 120
        while logged_step(fast, job_id) < KILL_AFTER_STEP:
            assert time.monotonic() < deadline, "the first run did not get past its first checkpoint"
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker: Celery, its pool and the engine
        first.wait()
    finally:
        stop_worker(first)
    time.sleep(fast.lease_seconds + 1)

    # the database is shared with other tests (their lost or queued jobs are recovered too): only this job is sent,
    # lest the session's default-queue worker serve their backlog
    def send_own(settings: ServiceSettings, sent_id: str, sent_queue: str, **kwargs: Any) -> None:
        if sent_id == job_id:
            enqueue_job(settings, sent_id, sent_queue, **kwargs)

    assert job_id in recover(fast, dispatch=send_own).requeued

    second = start_worker(fast, service_root / "resume-2.log", hostname=f"resume2-{secrets.token_hex(3)}@localhost")
    try:
        job = wait_for(fast, job_id, lambda j: j.status == "succeeded", 180, "succeeded")
    finally:
        stop_worker(second)

    # the attempt history: what the kill cost
    lost_run, carried = job.attempts[0], job.attempts[-1]
    assert lost_run["outcome"] == "lost"
    last_step = lost_run["last_step"]
    assert SAVE_STEPS < last_step < 2 * SAVE_STEPS  # the kill fell between the two checkpoints
    assert lost_run["lost_steps"] == last_step - SAVE_STEPS
    assert lost_run["lost_seconds"] > 0
    assert carried["resumed_from"]["step"] == SAVE_STEPS
    assert carried["resumed_from"]["checkpoint"].endswith(f"checkpoint-{SAVE_STEPS}")
    assert carried["last_step"] == MAX_STEPS

    token = make_token(fast, project)
    with TestClient(create_app(fast.model_copy(update={"token_cache_seconds": 0}))) as client:
        headers = {"Authorization": f"Bearer {token}"}
        read = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        assert read["lost_work"]["steps"] == last_step - SAVE_STEPS
        assert read["lost_work"]["seconds"] == pytest.approx(lost_run["lost_seconds"])

        series = client.get(f"/v1/jobs/{job_id}/metrics", headers=headers).json()
        loss = series["train"]["loss"]
        assert [p["step"] for p in loss] == list(range(1, MAX_STEPS + 1))  # each step once
        first_attempt, last_attempt = lost_run["attempt"], carried["attempt"]
        assert {p["attempt"] for p in loss if p["step"] <= SAVE_STEPS} == {first_attempt}
        assert {p["attempt"] for p in loss if p["step"] > SAVE_STEPS} == {last_attempt}

        full = client.get(f"/v1/jobs/{job_id}/metrics?include_superseded=true", headers=headers).json()
        lost = full["superseded"]["train"]["loss"]
        assert [p["step"] for p in lost] == list(range(SAVE_STEPS + 1, last_step + 1))
        assert {p["attempt"] for p in lost} == {first_attempt}

        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = client.get(f"/v1/jobs/{job_id}/events?after={after}&limit=1000", headers=headers).json()
            events += page["data"]
            if page["next"] is None:
                break
            after = page["next"]
        resumed = [e for e in events if e["type"] == "resumed"]
        assert len(resumed) == 1
        assert resumed[0]["attempt"] == last_attempt
        assert resumed[0]["data"]["from_step"] == SAVE_STEPS
        assert resumed[0]["data"]["rerun"] == {
            "attempt": first_attempt,
            "from_step": SAVE_STEPS + 1,
            "to_step": last_step,
            "lost_seconds": lost_run["lost_seconds"],
        }
        # the events stay a log: both runs' metrics are there, each tagged with its run
        logged = [(e["attempt"], e["data"]["step"]) for e in events if e["type"] == "metrics" and e["data"].get("loss")]
        assert (first_attempt, last_step) in logged
        assert (last_attempt, last_step) in logged
    assert get_job(fast, job_id).status == "succeeded"


def test_a_resume_and_its_first_steps_stored_in_one_batch(settings: ServiceSettings) -> None:
    """A short-lived run's run_started and first steps arrive in one batch: the resume must still come before them
    in the log (the chaos suite found a series missing steps when it came after)."""
    from api import results
    from jobcore.models import Job
    from worker import store

    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(Job(id=job_id, project="resume", kind="sft", queue="q", config={}, resolved={}, status="running"))
    for attempt in (1, 2):
        with session_scope(settings.database_url) as session:
            session.get(Job, job_id).attempt = attempt  # type: ignore[union-attr]  # the claim
        resumed = {"resolved": {"resume_from_checkpoint": "/out/checkpoint-3"}} if attempt == 2 else {"resolved": {}}
        batch = [("run_started", {"v": store.EVENTS_VERSION, "type": "run_started", "config": resumed})]
        steps = range(1, 6) if attempt == 1 else range(4, 7)
        batch += [("metrics", {"v": store.EVENTS_VERSION, "step": s, "loss": 10.0 * attempt + s}) for s in steps]
        assert store.append_events(settings, job_id, attempt, batch)
    with session_scope(settings.database_url) as session:
        series = results.job_metrics(session, "resume", job_id, include_superseded=True)
        history = session.get(Job, job_id).attempts  # type: ignore[union-attr]
    assert [(p["step"], p["attempt"]) for p in series["train"]["loss"]] == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
        (6, 2),
    ]
    assert [(p["step"], p["attempt"]) for p in series["superseded"]["train"]["loss"]] == [(4, 1), (5, 1)]
    lost = next(entry for entry in history if entry["attempt"] == 1)
    assert (lost["last_step"], lost["lost_steps"]) == (5, 2)
