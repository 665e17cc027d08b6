"""Jobs nobody runs any more are found: a lost worker's job is sent again (and resumes its checkpoint), given up
after max_attempts, or cancelled if a cancel was pending; a queued job whose message vanished is sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from jobcore.db import session_scope
from jobcore.models import Job, JobEvent, JobKind, JobStatus, new_id
from jobcore.settings import ServiceSettings
from worker.launch import retry_config
from worker.recovery import backoff_seconds, recover


def make_job(settings: ServiceSettings, **fields: Any) -> str:
    job_id = new_id()
    with session_scope(settings.database_url) as session:
        session.add(
            Job(
                id=job_id,
                project="recovery",
                kind="sft",
                queue="recovery-test",
                config={},
                resolved={"config": {}},
                **fields,
            )
        )
    return job_id


def read(settings: ServiceSettings, job_id: str) -> tuple[Job, list[dict[str, Any]]]:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        events = [e.data for e in session.query(JobEvent).filter_by(job_id=job_id, type="job").order_by(JobEvent.id)]
        return job, events


@pytest.fixture
def sent() -> list[tuple[str, str]]:
    return []


def run_recovery(settings: ServiceSettings, sent: list[tuple[str, str]]) -> None:
    recover(settings, dispatch=lambda _settings, job_id, queue: sent.append((job_id, queue)))


def run_recovery_with_countdowns(settings: ServiceSettings) -> dict[str, float | None]:
    sent: dict[str, float | None] = {}

    def dispatch(_settings: ServiceSettings, job_id: str, queue: str, countdown: float | None = None) -> None:
        sent[job_id] = countdown

    recover(settings, dispatch=dispatch)
    return sent


def past(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def test_a_lost_workers_job_is_queued_and_sent_again_once(settings: ServiceSettings, sent: list) -> None:
    job_id = make_job(settings, status="running", attempt=1, worker="dead@host:1", lease_expires_at=past(1))
    run_recovery(settings, sent)
    job, events = read(settings, job_id)
    assert (job.status, job.worker, job.lease_expires_at) == ("queued", None, None)
    assert {k: events[-1][k] for k in ("status", "attempt", "reason")} == {
        "status": "queued",
        "attempt": 1,
        "reason": "worker_lost",
    }
    assert (job_id, "recovery-test") in sent
    sent.clear()
    run_recovery(settings, sent)  # just requeued and sent: not sent again before a lease period has passed
    assert job_id not in [j for j, _ in sent]


def test_a_live_lease_is_left_alone(settings: ServiceSettings, sent: list) -> None:
    job_id = make_job(settings, status="running", attempt=1, lease_expires_at=datetime.now(UTC) + timedelta(seconds=60))
    run_recovery(settings, sent)
    assert read(settings, job_id)[0].status == "running"
    assert job_id not in [j for j, _ in sent]


def test_attempts_are_bounded(settings: ServiceSettings, sent: list) -> None:
    job_id = make_job(settings, status="running", attempt=settings.max_attempts, lease_expires_at=past(1))
    run_recovery(settings, sent)
    job, events = read(settings, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None
    assert job.error["code"] == "worker_lost"
    assert job.finished_at is not None
    assert job_id not in [j for j, _ in sent]


def test_a_pending_cancel_of_a_lost_job_completes(settings: ServiceSettings, sent: list) -> None:
    job_id = make_job(settings, status="cancel_requested", cancel_requested=True, attempt=1, lease_expires_at=past(1))
    run_recovery(settings, sent)
    job, events = read(settings, job_id)
    assert job.status == JobStatus.CANCELLED
    assert events[-1]["reason"] == "worker_lost"


def test_a_queued_job_without_a_message_is_sent_again(settings: ServiceSettings, sent: list) -> None:
    stale = make_job(settings, status="queued", updated_at=past(settings.lease_seconds + 5))
    fresh = make_job(settings, status="queued")
    run_recovery(settings, sent)
    sent_ids = [j for j, _ in sent]
    assert stale in sent_ids
    assert fresh not in sent_ids


def test_a_retried_training_job_resumes_its_last_checkpoint() -> None:
    config = {"run_conf": {"model": "/m"}, "training_args": {"max_steps": 5}}
    assert retry_config(JobKind.SFT, config, 1) == config
    assert retry_config(JobKind.SFT, config, 2)["run_conf"] == {"model": "/m", "resume_from_checkpoint": "auto"}
    explicit = {"run_conf": {"model": "/m", "resume_from_checkpoint": "/ckpt/checkpoint-10"}}
    assert retry_config(JobKind.DPO, explicit, 3) == explicit
    assert retry_config(JobKind.GENERATE, {"model_conf": {}}, 2) == {"model_conf": {}}


def test_a_requeue_waits_a_backoff_that_grows_with_the_lost_runs(settings: ServiceSettings) -> None:
    base = settings.requeue_backoff_seconds
    first = make_job(settings, status="running", attempt=1, worker="dead@host:1", lease_expires_at=past(1))
    second = make_job(settings, status="running", attempt=2, lease_expires_at=past(1))
    # three claims, two of them hand-backs (a worker shut down cleanly): one counted run, like ``first``
    handed = make_job(settings, status="running", attempt=3, uncounted_attempts=2, lease_expires_at=past(1))
    before = datetime.now(UTC)
    countdowns = run_recovery_with_countdowns(settings)
    assert countdowns[first] == base
    assert countdowns[second] == 2 * base
    assert countdowns[handed] == base  # not failed: max_attempts counts neither hand-backs nor resumed runs
    for job_id, factor in ((first, 1), (second, 2), (handed, 1)):
        job, events = read(settings, job_id)
        assert job.status == "queued"
        assert job.not_before is not None
        waits = (job.not_before - before).total_seconds()
        assert factor * base - 5 < waits < factor * base + 5
        assert events[-1]["retry_in_s"] == factor * base
        assert datetime.fromisoformat(events[-1]["not_before"]) == job.not_before
        assert job.attempts[-1]["outcome"] == "lost"
        assert job.attempts[-1]["reason"] == "worker_lost"
    # a job waiting out its back-off has its message: the pass for queued jobs without one leaves it alone
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == second).values(updated_at=past(settings.lease_seconds + 5)))
    assert second not in run_recovery_with_countdowns(settings)


def test_the_backoff_is_capped(settings: ServiceSettings) -> None:
    capped = settings.model_copy(update={"requeue_backoff_seconds": 10, "requeue_backoff_max_seconds": 25})
    assert [backoff_seconds(capped, n) for n in (1, 2, 3, 4)] == [10, 20, 25, 25]
