"""Graceful stops with real parts (Postgres, Redis, real Celery worker processes, the tiny model training for real):
a worker sent SIGTERM hands its training job back with a checkpoint and exits, and another worker resumes it where
it stopped; a cancel with checkpoint leaves a resumable job, which ``POST .../resume`` continues to the end."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from finetuning.contract import EXIT_STOPPED
from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import Job, JobEvent, new_id
from jobcore.settings import ServiceSettings
from tests.service.conftest import start_worker
from tests.workers import stop_worker
from worker import shutdown
from worker.dispatch import enqueue_job

TERMINAL = {"succeeded", "failed", "cancelled"}
GRACE_S = 30  # the workers' shutdown_grace_seconds: an upper bound on the hand-back in these tests
MAX_STEPS = 240  # the tiny model takes some 40 steps a second here: a few seconds of training per run


def sft_config(settings: ServiceSettings, job_id: str, model: Path, data: Path) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "keep-original",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(settings.job_folder(job_id) / "output"),
            "max_steps": MAX_STEPS,
            "learning_rate": 5e-3,
            "logging_steps": 1,
            "save_strategy": "no",  # the only checkpoint is the one the stop saves
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
        },
        "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 64},
    }


def insert_job(settings: ServiceSettings, job_id: str, config: dict[str, Any], queue: str, kind: str = "sft") -> None:
    with session_scope(settings.database_url) as session:
        session.add(Job(id=job_id, project="graceful", kind=kind, queue=queue, config={}, resolved={"config": config}))


def get_job(settings: ServiceSettings, job_id: str) -> Job:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def get_events(settings: ServiceSettings, job_id: str) -> list[JobEvent]:
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def wait_for(settings: ServiceSettings, job_id: str, done: Any, timeout: float, what: str) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(settings, job_id)
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} not {what} after {timeout} s: {job.status} {job.phase}"
        time.sleep(0.1)


def metric_steps(events: list[JobEvent]) -> list[int]:
    """The steps of the per-step metrics events (not the end-of-training summaries), in order."""
    return [e.data["step"] for e in events if e.type == "metrics" and e.data.get("loss") is not None]


def assert_loadable_checkpoint(path: str | None, step: int | None = None) -> Path:
    assert path is not None
    folder = Path(path)
    assert folder.is_dir(), folder
    if step is not None:
        assert folder.name == f"checkpoint-{step}"
    assert (folder / "trainer_state.json").is_file()
    assert (folder / "adapter_config.json").is_file()
    assert (folder / "adapter_model.safetensors").is_file()
    assert (folder / "optimizer.pt").is_file()
    return folder


@pytest.fixture
def graceful_settings(settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The settings on a queue of this test's own (the session's worker must not take its job)."""
    monkeypatch.setenv("FINETUNING_SHUTDOWN_GRACE_SECONDS", str(GRACE_S))  # read by the workers started here
    queue = f"graceful-{secrets.token_hex(3)}"
    return settings.model_copy(update={"default_queue": queue, "shutdown_grace_seconds": GRACE_S})


@pytest.fixture
def data_file(data_dir: Path) -> Path:
    return write_jsonl(tiny_chat_records(16), data_dir / "graceful.jsonl")


def test_sigterm_hands_the_job_back_with_a_checkpoint_and_another_worker_resumes_it(
    graceful_settings: ServiceSettings, service_root: Path, tiny_model_dir: Path, data_file: Path
) -> None:
    settings, queue = graceful_settings, graceful_settings.default_queue
    first = start_worker(settings, service_root / "graceful-1.log", hostname=f"first-{queue}@localhost")
    second: subprocess.Popen[bytes] | None = None
    job_id = new_id()
    try:
        insert_job(settings, job_id, sft_config(settings, job_id, tiny_model_dir, data_file), queue)
        enqueue_job(settings, job_id, queue)
        wait_for(settings, job_id, lambda job: job.status == "running", 30, "claimed")
        # the next worker waits on the queue meanwhile (it starts in a few seconds: not on the clock below)
        second = start_worker(settings, service_root / "graceful-2.log", hostname=f"second-{queue}@localhost")
        wait_for(settings, job_id, lambda job: (job.progress or {}).get("step", 0) >= 3, 60, "training")

        asked = time.monotonic()
        first.send_signal(signal.SIGTERM)  # the main process only, as Kubernetes does
        handed_back = wait_for(
            settings, job_id, lambda job: job.status != "running" or job.attempt > 1, GRACE_S + 10, "handed back"
        )
        queued_after = time.monotonic() - asked
        first.wait(timeout=GRACE_S + 10)
        exited_after = time.monotonic() - asked
        assert first.returncode == 0

        job = wait_for(settings, job_id, lambda job: job.status in TERMINAL, 120, "finished")
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    print(f"\nSIGTERM -> job queued {queued_after:.1f} s, worker exited {exited_after:.1f} s")
    assert handed_back.attempt == 1
    assert queued_after < GRACE_S
    assert job.status == "succeeded", job.error

    events = get_events(settings, job_id)
    transitions = [e.data for e in events if e.type == "job"]
    handback = transitions[1]
    assert {k: handback[k] for k in ("status", "attempt", "reason")} == {
        "status": "queued",
        "attempt": 1,
        "reason": "worker_shutdown",
    }
    stop_status = next(e.data for e in events if e.type == "status")
    assert stop_status["status"] == "cancelled"
    assert stop_status["checkpoint"] == handback["checkpoint"]
    stopped_at = stop_status["metrics"]["global_step"]
    checkpoint = assert_loadable_checkpoint(handback["checkpoint"], stopped_at)
    assert checkpoint.is_relative_to(settings.job_folder(job_id) / "output")
    assert [t["status"] for t in transitions] == ["running", "queued", "running", "succeeded"]
    assert transitions[0]["worker"].startswith("first-")
    assert transitions[2]["worker"].startswith("second-")
    assert transitions[2]["attempt"] == 2

    # the second run resumed from the checkpoint: its steps continue where the first stopped, one curve
    steps = metric_steps(events)
    assert steps == list(range(1, MAX_STEPS + 1)), steps
    second_run = next(i for i, e in enumerate(events) if e.type == "job" and e.data.get("attempt") == 2)
    assert metric_steps(events[second_run:])[0] == stopped_at + 1
    assert job.metrics["global_step"] == MAX_STEPS
    assert job.progress["step"] == MAX_STEPS

    history = job.attempts
    assert [(a["attempt"], a["outcome"], a["reason"]) for a in history] == [
        (1, "handed_back", "worker_shutdown"),
        (2, "succeeded", None),
    ]
    assert history[0]["checkpoint"] == str(checkpoint)
    assert history[0]["worker"].startswith("first-")
    assert history[1]["worker"].startswith("second-")
    assert all(a["started_at"] and a["ended_at"] for a in history)
    assert job.uncounted_attempts == 1  # the hand-back does not count against max_attempts


@pytest.fixture
def client(base_url: str, settings: ServiceSettings) -> Any:
    from api.admin import create_token

    with session_scope(settings.database_url) as session:
        _, token = create_token(session, "graceful", "graceful stop tests")
        _, other = create_token(session, "graceful-other", "another project")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        http.headers["X-Other-Token"] = other
        yield http


def api_sft_body(model: Path, data: Path) -> dict[str, Any]:
    body = sft_config(ServiceSettings(), "unused", model, data)
    del body["training_args"]["output_dir"]  # the service puts it under the job's folder
    return body


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        time.sleep(0.2)


def test_cancel_with_checkpoint_then_resume(client: httpx.Client, tiny_model_dir: Path, data_file: Path) -> None:
    created = client.post("/v1/jobs/sft", json=api_sft_body(tiny_model_dir, data_file))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while (client.get(f"/v1/jobs/{job_id}").json()["progress"].get("step") or 0) < 3:
        assert time.monotonic() < deadline, "not training"
        time.sleep(0.1)

    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel", params={"checkpoint": "true"}).status_code == 200
    job = wait_status(client, job_id, TERMINAL, 30)
    print(f"\ncancel with checkpoint -> cancelled in {time.monotonic() - asked:.1f} s")
    assert job["status"] == "cancelled", job["error"]
    checkpoint = assert_loadable_checkpoint(job["artifacts"]["checkpoint"])
    assert job["attempts"][-1]["outcome"] == "cancelled"
    assert job["attempts"][-1]["checkpoint"] == str(checkpoint)
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    cancelled = [e["data"] for e in events if e["type"] == "job"][-1]
    assert cancelled["status"] == "cancelled"
    assert cancelled["checkpoint"] == str(checkpoint)
    assert cancelled["exit_code"] == EXIT_STOPPED

    # only the owner sees it; a job that cannot be resumed says why
    other = {"Authorization": f"Bearer {client.headers['X-Other-Token']}"}
    assert client.post(f"/v1/jobs/{job_id}/resume", headers=other).status_code == 404
    resumed = client.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "queued"
    again = client.post(f"/v1/jobs/{job_id}/resume")  # it is queued or running now
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_resumable"

    job = wait_status(client, job_id, TERMINAL, 120)
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["global_step"] == MAX_STEPS
    steps = [p["step"] for p in client.get(f"/v1/jobs/{job_id}/metrics").json()["train"]["loss"]]
    assert steps == list(range(1, MAX_STEPS + 1))  # one curve: the resumed run continued at the checkpoint's step
    assert [a["outcome"] for a in job["attempts"]] == ["cancelled", "succeeded"]
    done = client.post(f"/v1/jobs/{job_id}/resume")
    assert done.status_code == 409
    assert "only a cancelled or failed job" in done.json()["error"]["message"]


def test_a_job_without_a_checkpoint_is_not_resumable(
    client: httpx.Client, tiny_model_dir: Path, data_file: Path
) -> None:
    # a queue nobody consumes: the job stays queued until it is cancelled
    created = client.post("/v1/jobs/sft", params={"queue": "nobody"}, json=api_sft_body(tiny_model_dir, data_file))
    job_id = created.json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", params={"checkpoint": "true"}).json()["status"] == "cancelled"
    answer = client.post(f"/v1/jobs/{job_id}/resume")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_resumable"
    assert "saved no checkpoint" in answer.json()["error"]["message"]
    assert client.post(f"/v1/jobs/{new_id()}/resume").status_code == 404


# -- the runner alone, with a stand-in engine --------------------------------------------------------------------

SLEEPY_ENGINE = """#!{python}
import time
print("ready", flush=True)
time.sleep(300)  # ignores the stop signal (the worker starts it ignored), as an engine busy loading would
"""


def test_an_engine_that_does_not_stop_is_killed_after_the_grace_and_the_job_handed_back(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    from worker.runner import run_job

    script = tmp_path / "engine"
    script.write_text(SLEEPY_ENGINE.format(python=sys.executable))
    script.chmod(0o755)
    fast = settings.model_copy(update={"engine_python": str(script), "shutdown_grace_seconds": 1.0})
    job_id = new_id()
    insert_job(fast, job_id, {"run_conf": {}}, queue=f"nobody-{secrets.token_hex(3)}")
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(run_job(fast, job_id, "test-worker")))
    thread.start()
    try:
        wait_for(fast, job_id, lambda job: job.status == "running", 10, "running")
        time.sleep(1.0)  # the engine printed "ready"
        asked = time.monotonic()
        shutdown.request()
        thread.join(timeout=15)
        took = time.monotonic() - asked
    finally:
        shutdown.reset()
    assert not thread.is_alive()
    assert result == ["queued"]
    assert took < 5
    job = get_job(fast, job_id)
    assert (job.status, job.worker, job.lease_expires_at, job.uncounted_attempts) == ("queued", None, None, 1)
    last = [e.data for e in get_events(fast, job_id) if e.type == "job"][-1]
    assert last == {"status": "queued", "attempt": 1, "reason": "worker_shutdown", "checkpoint": None}
    assert job.attempts[-1]["outcome"] == "handed_back"
