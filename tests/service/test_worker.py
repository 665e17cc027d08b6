"""The worker against real services: Postgres (jobs and events), Redis (the broker), a real Celery worker process and
the tiny model. Jobs are inserted straight into the database and sent with ``enqueue_job``, as the API does."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.db import session_scope
from jobcore.models import Base, Job, JobEvent, JobStatus, new_id, utcnow
from jobcore.settings import ServiceSettings
from worker import store
from worker.celery_app import broker_transport_options, create_celery
from worker.dispatch import enqueue_job

TERMINAL = {s.value for s in JobStatus if s.terminal}


# -- helpers ---------------------------------------------------------------------------------------------------------


def insert_job(
    settings: ServiceSettings, config: dict[str, Any], *, kind: str = "sft", job_id: str | None = None
) -> str:
    job_id = job_id or new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(
                id=job_id,
                project="p",
                kind=kind,
                queue=settings.default_queue,
                config={},
                resolved={"config": config},
            )
        )
    return job_id


def sft_config(settings: ServiceSettings, job_id: str, model: Path, data: Path, max_steps: int) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "keep-original",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(settings.job_folder(job_id) / "output"),
            "max_steps": max_steps,
            "learning_rate": 5e-3,
            "logging_steps": 1,
            "save_strategy": "no",
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
        },
        "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 4},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 64},
    }


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
    while time.monotonic() < deadline:
        job = get_job(settings, job_id)
        if done(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {what} after {timeout} s: {job.status} {job.phase} {job.error}")


def wait_terminal(settings: ServiceSettings, job_id: str, timeout: float = 60) -> Job:
    return wait_for(settings, job_id, lambda job: job.status in TERMINAL, timeout, "finished")


def wait_queue_drained(settings: ServiceSettings, timeout: float = 20) -> None:
    """Until no message waits in the test queue and none is being worked on (kombu keeps unacknowledged Redis messages
    in its ``unacked`` hash until the task ends)."""
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    deadline = time.monotonic() + timeout
    quiet = 0
    try:
        while time.monotonic() < deadline:
            busy = client.llen(settings.default_queue) or _unacked(client, settings.default_queue)
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError("the queue did not drain")


def _unacked(client: Any, queue: str) -> int:
    """Unacknowledged messages of ``queue``: the hash is shared by every queue of the Redis database, and a worker
    another test killed leaves its message there until the visibility timeout."""
    import json

    return sum(json.loads(value)[2] == queue for value in client.hvals("unacked"))


def process_event(events: list[JobEvent]) -> dict[str, Any]:
    found = [e.data for e in events if e.type == store.PROCESS_EVENT]
    assert len(found) == 1, found
    return found[0]


def wait_for_line(settings: ServiceSettings, job_id: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.type == "log" and e.data.get("line") == text for e in get_events(settings, job_id)):
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} printed no {text!r} within {timeout} s")


def assert_group_gone(pgid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


@pytest.fixture
def data_file(data_dir: Path) -> Path:
    return write_jsonl(tiny_chat_records(16), data_dir / "colors.jsonl")


# -- end to end through Celery ---------------------------------------------------------------------------------------


def test_sft_job_runs_once_and_streams_its_events(
    settings: ServiceSettings, celery_worker: Any, tiny_model_dir: Path, data_file: Path
) -> None:
    job_id = new_id()
    insert_job(settings, sft_config(settings, job_id, tiny_model_dir, data_file, max_steps=3), job_id=job_id)
    # the same message twice (an API retry, a broker redelivery): the job must run once
    enqueue_job(settings, job_id, settings.default_queue)
    enqueue_job(settings, job_id, settings.default_queue)

    job = wait_terminal(settings, job_id)
    assert job.status == "succeeded", job.error
    wait_queue_drained(settings)
    job = get_job(settings, job_id)
    events = get_events(settings, job_id)

    assert job.attempt == 1
    assert [e.data["status"] for e in events if e.type == "job"] == ["running", "succeeded"]
    assert sum(e.type == "run_started" for e in events) == 1
    ids = [e.id for e in events]
    assert ids == sorted(set(ids))
    engine = [e for e in events if "seq" in e.data]
    assert [e.data["seq"] for e in engine] == list(range(1, len(engine) + 1))
    assert [e.type for e in engine][0] == "run_started"
    assert engine[-1].type == "status"
    assert all(e.data["type"] == e.type for e in engine)

    phases = [e.data["phase"] for e in engine if e.type == "phase"]
    assert "training" in phases
    assert job.phase == phases[-1]
    assert job.progress["step"] == job.progress["total_steps"] == 3
    assert job.progress["percent"] == 100.0
    assert set(job.progress) == {"step", "total_steps", "percent", "elapsed_s", "eta_s"}
    assert job.resolved["config"]["run_conf"]["model"] == str(tiny_model_dir)
    assert job.resolved["engine"]["per_device_train_batch_size"] == 4
    assert Path(job.artifacts["final_checkpoint"]).is_dir()
    assert Path(job.artifacts["final_checkpoint"]).is_relative_to(settings.job_folder(job_id))
    assert job.metrics["global_step"] == 3
    assert job.error is None
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.lease_expires_at is None

    logs = [e.data for e in events if e.type == "log" and "stream" in e.data]
    assert any(d["stream"] == "stderr" and "INFO finetuning" in d["line"] for d in logs)
    assert all("\r" not in d["line"] and "\n" not in d["line"] for d in logs)
    # the engine ran in the job's folder, from the files the worker wrote there
    assert (settings.job_folder(job_id) / "config.yaml").is_file()
    assert (settings.job_folder(job_id) / "events.jsonl").is_file()
    assert_group_gone(process_event(events)["pgid"])


def test_a_user_error_fails_the_job_with_the_engines_code(
    settings: ServiceSettings, celery_worker: Any, tiny_model_dir: Path, data_dir: Path
) -> None:
    job_id = new_id()
    missing = data_dir / "missing.jsonl"
    insert_job(settings, sft_config(settings, job_id, tiny_model_dir, missing, max_steps=3), job_id=job_id)
    enqueue_job(settings, job_id, settings.default_queue)

    job = wait_terminal(settings, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error["code"] == "data_not_found"
    assert job.error["param"] == "data_conf.training_data.datasets[0].path"
    assert str(missing) in job.error["message"]
    events = get_events(settings, job_id)
    assert events[-1].type == "job"
    assert events[-1].data == {"status": "failed", "attempt": 1, "error": job.error, "exit_code": 2}
    assert any(e.type == "log" and "no data file" in e.data.get("line", "") for e in events)


def test_cancel_stops_a_running_job_and_its_process_group(
    settings: ServiceSettings, celery_worker: Any, tiny_model_dir: Path, data_file: Path
) -> None:
    job_id = new_id()
    insert_job(settings, sft_config(settings, job_id, tiny_model_dir, data_file, max_steps=100_000), job_id=job_id)
    enqueue_job(settings, job_id, settings.default_queue)
    try:
        wait_for(settings, job_id, lambda job: job.phase == "training", 60, "training")
        pgid = process_event(get_events(settings, job_id))["pgid"]
        os.killpg(pgid, 0)  # alive
        with session_scope(settings.database_url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        asked = time.monotonic()
        job = wait_terminal(settings, job_id, timeout=10)
        took = time.monotonic() - asked
    finally:
        with session_scope(settings.database_url) as session:  # never leave a 100k-step job to the next test
            session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    assert job.status == "cancelled", (job.status, job.error)
    assert took < 10
    assert job.error is None
    assert 0 < job.progress["step"] < 100_000
    assert_group_gone(pgid)
    events = get_events(settings, job_id)
    assert events[-1].type == "job"
    assert events[-1].data["status"] == "cancelled"


# -- the store: claims, leases and fencing ---------------------------------------------------------------------------


def claim_flow(settings: ServiceSettings) -> None:
    job_id = insert_job(settings, {"run_conf": {}})
    first = store.claim_job(settings, job_id, "w1")
    assert first is not None
    assert (first.attempt, first.kind, first.queue, first.cancel_requested) == (1, "sft", settings.default_queue, False)
    assert first.resolved == {"config": {"run_conf": {}}}
    # a live lease: nobody else gets it, not even the same worker again
    assert store.claim_job(settings, job_id, "w2") is None
    assert store.claim_job(settings, job_id, "w1") is None
    assert store.renew_lease(settings, job_id, 1) == store.LeaseState(held=True, cancel_requested=False)
    assert store.append_events(settings, job_id, 1, [("phase", {"v": 1, "seq": 1, "type": "phase", "phase": "x"})])

    # the lease runs out (its worker died): the next delivery claims it with a new fencing token
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    second = store.claim_job(settings, job_id, "w2")
    assert second is not None
    assert second.attempt == 2
    # the first worker is fenced off: it can neither renew, nor write events, nor finish
    assert store.renew_lease(settings, job_id, 1) == store.LeaseState(held=False)
    assert not store.append_events(settings, job_id, 1, [("log", {"stream": "stdout", "line": "late"})])
    assert not store.finish_job(settings, job_id, 1, "succeeded")

    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    assert store.lease_state(settings, job_id, 2) == store.LeaseState(held=True, cancel_requested=True)
    assert store.finish_job(settings, job_id, 2, "cancelled", exit_code=-15)
    # terminal statuses never change, and a finished job is not claimable
    assert not store.finish_job(settings, job_id, 2, "succeeded")
    assert store.claim_job(settings, job_id, "w3") is None

    job = get_job(settings, job_id)
    assert (job.status, job.attempt, job.worker, job.phase, job.lease_expires_at) == ("cancelled", 2, "w2", "x", None)
    events = get_events(settings, job_id)
    assert [(e.type, e.data.get("status"), e.data.get("attempt")) for e in events] == [
        ("job", "running", 1),
        ("phase", None, None),
        ("job", "running", 2),
        ("job", "cancelled", 2),
    ]
    assert events[-1].data["exit_code"] == -15


def test_store_claims_and_fences_on_postgres(settings: ServiceSettings) -> None:
    claim_flow(settings)


def test_store_works_on_sqlite_too(settings: ServiceSettings, tmp_path: Path) -> None:
    from jobcore.db import engine_for

    embedded = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'service.db'}"})
    Base.metadata.create_all(engine_for(embedded.database_url))
    claim_flow(embedded)
    engine_for(embedded.database_url).dispose()


def test_concurrent_deliveries_claim_a_job_once(settings: ServiceSettings) -> None:
    job_id = insert_job(settings, {})
    barrier = threading.Barrier(6)
    claims: list[store.Claim | None] = []

    def deliver(n: int) -> None:
        barrier.wait()
        claims.append(store.claim_job(settings, job_id, f"w{n}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert won[0].attempt == 1
    assert sum(e.type == "job" for e in get_events(settings, job_id)) == 1


def test_append_events_applies_phase_progress_and_resolved_in_order(settings: ServiceSettings) -> None:
    job_id = insert_job(settings, {"a": 1})
    claim = store.claim_job(settings, job_id, "w")
    assert claim is not None
    progress = {"step": 2, "total_steps": 4, "percent": 50.0, "elapsed_s": 1.0, "eta_s": 1.0}
    batch: list[store.Event] = [
        ("run_started", {"v": 1, "seq": 1, "type": "run_started", "config": {"resolved": {"lr": 0.1}}}),
        ("phase", {"v": 1, "seq": 2, "type": "phase", "phase": "training"}),
        ("log", {"stream": "stderr", "line": "hello"}),
        ("progress", {"v": 1, "seq": 3, "type": "progress", **{**progress, "step": 1, "percent": 25.0}}),
        ("progress", {"v": 1, "seq": 4, "type": "progress", **progress}),
        ("phase", {"v": 2, "seq": 5, "type": "phase", "phase": "from-the-future"}),  # unknown format: not applied
        ("status", {"v": 1, "seq": 6, "type": "status", "status": "succeeded"}),  # applied by finish_job only
    ]
    assert store.append_events(settings, job_id, claim.attempt, batch)
    job = get_job(settings, job_id)
    assert job.phase == "training"
    assert job.progress == progress
    assert job.resolved == {"config": {"a": 1}, "engine": {"lr": 0.1}}
    assert job.status == "running"
    stored = [(e.type, e.data) for e in get_events(settings, job_id)][1:]
    assert stored == batch
    assert store.finish_job(settings, job_id, claim.attempt, "succeeded", artifacts={"mlflow_run_id": "abc"})
    assert get_job(settings, job_id).mlflow_run_id == "abc"


# -- the Celery app --------------------------------------------------------------------------------------------------


def test_the_app_is_safe_for_long_jobs_on_either_broker(settings: ServiceSettings, tmp_path: Path) -> None:
    app = create_celery(settings)
    conf = app.conf
    assert conf.task_acks_late
    assert conf.task_reject_on_worker_lost
    assert conf.task_ignore_result
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] >= 24 * 3600
    assert conf.task_default_queue == settings.default_queue
    assert "jobs.run" in app.tasks
    # the embedded broker (kombu's SQLAlchemy transport) gets no visibility timeout: it would reach create_engine
    embedded = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    assert broker_transport_options(embedded, settings.broker_visibility_timeout_seconds) == {}


def test_enqueue_on_the_embedded_broker(settings: ServiceSettings, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    broker = tmp_path / "broker.db"
    embedded = settings.model_copy(update={"broker_url": f"sqla+sqlite:///{broker}"})
    enqueue_job(embedded, "00000000-0000-0000-0000-000000000001", "somewhere")
    engine = create_engine(f"sqlite:///{broker}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT q.name, m.payload FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id")
        ).all()
    engine.dispose()
    assert len(rows) == 1
    assert rows[0][0] == "somewhere"
    assert "00000000-0000-0000-0000-000000000001" in rows[0][1]


# -- the runner with a stand-in engine: crashes, kills, orphans, torn lines, lost leases ------------------------------

FAKE_ENGINE = """#!{python}
import json, os, signal, subprocess, sys, time
import yaml

mode = yaml.safe_load(open("config.yaml"))["fake"]
events = open(sys.argv[sys.argv.index("--events-file") + 1], "a")


def emit(seq, kind, **fields):
    event = {{"v": 1, "seq": seq, "time": "2026-01-01T00:00:00.000Z", "type": kind, **fields}}
    events.write(json.dumps(event) + "\\n")
    events.flush()


if mode == "events":
    emit(1, "run_started", method="sft", config={{"resolved": {{"x": 1}}}})
    emit(2, "phase", phase="training")
    print("a\\x00b", flush=True)
    sys.stderr.write("10%\\r50%\\r100%\\n")
    sys.stderr.flush()
    events.write('{{"v": 1, "seq": 3, "time": "2026-01-01T00:00:00.000Z", "type": "progress", "step": 1, ')
    events.flush()
    time.sleep(0.6)  # the worker sees the torn line at least once
    events.write('"total_steps": 2, "percent": 50.0, "elapsed_s": 1.0, "eta_s": NaN}}\\n')
    events.flush()
    emit(4, "log", level="warning", message="x\\ud800\\x00y")  # a lone surrogate and a NUL: not for jsonb
    emit(5, "status", status="succeeded", error=None, metrics={{"loss": 1.5}},
         artifacts={{"model_path": "/m", "mlflow_run_id": "run-1"}})
elif mode == "crash":
    for i in range(30):
        print(f"line {{i}}", file=sys.stderr)
    sys.exit(3)
elif mode == "oom":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "orphan":
    child = subprocess.Popen(["sleep", "300"])  # keeps our pipes open after we exit
    print(child.pid, flush=True)
elif mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(300)
elif mode == "sleep":
    print("ready", flush=True)
    time.sleep(300)
"""


@pytest.fixture(scope="module")
def fake_settings(settings: ServiceSettings, tmp_path_factory: pytest.TempPathFactory) -> ServiceSettings:
    """The settings, with a stand-in for the engine's Python: it acts out ``config["fake"]``."""
    import stat
    import sys

    script = tmp_path_factory.mktemp("fake") / "engine"
    script.write_text(FAKE_ENGINE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return settings.model_copy(update={"engine_python": str(script)})


def run_fake(settings: ServiceSettings, mode: str) -> tuple[str | None, Job, list[JobEvent]]:
    from worker.runner import run_job

    job_id = insert_job(settings, {"fake": mode})
    status = run_job(settings, job_id, "test-worker")
    return status, get_job(settings, job_id), get_events(settings, job_id)


def process_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that no longer reaps it (reparented orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_events_and_lines_are_stored_whole_and_the_engines_outcome_applied(fake_settings: ServiceSettings) -> None:
    status, job, events = run_fake(fake_settings, "events")
    assert status == "succeeded"
    assert (job.status, job.phase, job.mlflow_run_id) == ("succeeded", "training", "run-1")
    assert job.progress == {"step": 1, "total_steps": 2, "percent": 50.0, "elapsed_s": 1.0, "eta_s": "NaN"}
    assert job.resolved["engine"] == {"x": 1}
    assert job.artifacts == {"model_path": "/m", "mlflow_run_id": "run-1"}
    assert job.metrics == {"loss": 1.5}
    assert [e.data["seq"] for e in events if "seq" in e.data] == [1, 2, 3, 4, 5]
    assert next(e.data["message"] for e in events if e.type == "log" and "message" in e.data) == "x?\ufffdy"
    lines = [(e.data["stream"], e.data["line"]) for e in events if e.type == "log" and "line" in e.data]
    # a NUL becomes U+FFFD; a redrawn line (a progress bar) is stored as it ends. The two pipes race each other.
    assert sorted(lines) == [("stderr", "100%"), ("stdout", "a\ufffdb")]


def test_a_crash_fails_with_the_exit_code_and_the_last_lines(fake_settings: ServiceSettings) -> None:
    status, job, events = run_fake(fake_settings, "crash")
    assert status == "failed"
    assert job.error is not None
    assert job.error["code"] == "engine_crashed"
    assert "exited with 3" in job.error["message"]
    assert "line 29" in job.error["message"]
    assert "line 5\n" not in job.error["message"]  # the last lines only
    assert events[-1].data["exit_code"] == 3


def test_a_sigkill_from_outside_reads_as_out_of_memory(fake_settings: ServiceSettings) -> None:
    status, job, _ = run_fake(fake_settings, "oom")
    assert status == "failed"
    assert job.error is not None
    assert job.error["code"] == "out_of_memory"
    assert "SIGKILL" in job.error["message"]
    for remedy in ("batchsize_conf.max_per_device_train_batch_size", "gradient_checkpointing", "load_in_4bit"):
        assert remedy in job.error["message"]
    assert [a["outcome"] for a in job.attempts] == ["failed"]  # recorded, never requeued


def test_processes_the_engine_leaves_behind_are_killed(fake_settings: ServiceSettings) -> None:
    status, job, events = run_fake(fake_settings, "orphan")
    assert status == "failed"
    assert job.error is not None
    assert job.error["code"] == "engine_crashed"
    assert "without reporting an outcome" in job.error["message"]
    orphan = int(next(e.data["line"] for e in events if e.type == "log" and e.data["stream"] == "stdout"))
    deadline = time.monotonic() + 5
    while not process_gone(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_gone(orphan)


def test_cancel_escalates_to_sigkill_when_sigterm_is_ignored(fake_settings: ServiceSettings) -> None:
    from worker.runner import run_job

    job_id = insert_job(fake_settings, {"fake": "ignore_term"})
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(run_job(fake_settings, job_id, "test-worker")))
    thread.start()
    wait_for_line(fake_settings, job_id, "ready")
    with session_scope(fake_settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert result == ["cancelled"]
    events = get_events(fake_settings, job_id)
    assert events[-1].data == {"status": "cancelled", "attempt": 1, "exit_code": -9}
    assert_group_gone(process_event(events)["pgid"])


def test_a_worker_that_lost_its_lease_kills_the_engine_and_writes_nothing(fake_settings: ServiceSettings) -> None:
    from worker.runner import run_job

    job_id = insert_job(fake_settings, {"fake": "sleep"})
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(run_job(fake_settings, job_id, "test-worker")))
    thread.start()
    wait_for_line(fake_settings, job_id, "ready")
    with session_scope(fake_settings.database_url) as session:  # another worker claimed it after our lease ran out
        session.execute(update(Job).where(Job.id == job_id).values(attempt=Job.attempt + 1, worker="other"))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert result == [None]
    job = get_job(fake_settings, job_id)
    assert (job.status, job.attempt, job.worker) == ("running", 2, "other")
    events = get_events(fake_settings, job_id)
    assert [e.data["status"] for e in events if e.type == "job"] == ["running"]
    assert_group_gone(process_event(events)["pgid"])


def test_a_job_cancelled_while_queued_never_starts(fake_settings: ServiceSettings) -> None:
    from worker.runner import run_job

    job_id = insert_job(fake_settings, {"fake": "sleep"})
    with session_scope(fake_settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    assert run_job(fake_settings, job_id, "test-worker") == "cancelled"
    assert not any(e.type == store.PROCESS_EVENT for e in get_events(fake_settings, job_id))
    assert not (fake_settings.job_folder(job_id)).exists()


def test_events_an_earlier_attempt_wrote_but_never_stored_are_stored_first(fake_settings: ServiceSettings) -> None:
    """A worker killed while the database was away dies with the events it had read but not stored; they are still in
    the job's events file, and the next attempt stores them before its own (a chaos-suite finding)."""
    import json

    from worker.runner import run_job

    settings = fake_settings
    job_id = insert_job(settings, {"fake": "crash"})
    first = store.claim_job(settings, job_id, "lost-worker")
    assert first is not None
    earlier = [
        {"v": 1, "seq": 1, "time": "2026-01-01T00:00:00.000Z", "type": "run_started", "method": "sft"},
        {"v": 1, "seq": 2, "time": "2026-01-01T00:00:01.000Z", "type": "phase", "phase": "training"},
        # the earlier attempt's own outcome (a hand-back's, say) must not become this attempt's
        {"v": 1, "seq": 3, "time": "2026-01-01T00:00:02.000Z", "type": "status", "status": "succeeded"},
    ]
    assert store.append_events(settings, job_id, first.attempt, [("run_started", earlier[0])])
    folder = settings.job_folder(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in earlier))
    with session_scope(settings.database_url) as session:  # what recovery does once the lease expired
        session.execute(update(Job).where(Job.id == job_id).values(status="queued", worker=None, lease_expires_at=None))

    assert run_job(settings, job_id, "test-worker") == "failed"
    job, events = get_job(settings, job_id), get_events(settings, job_id)
    assert [e.data["seq"] for e in events if "seq" in e.data] == [1, 2, 3]
    assert job.error is not None
    assert job.error["code"] == "engine_crashed"
    assert job.phase == "training"  # the backfilled phase event was applied
