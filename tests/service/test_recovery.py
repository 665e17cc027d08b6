"""Jobs nobody runs any more are found: a lost worker's job is sent again (and resumes its checkpoint), given up
after max_attempts, or cancelled if a cancel was pending; a queued job whose message vanished is sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.db import session_scope
from api.models import Job, JobEvent, JobKind, JobStatus, new_id
from api.settings import ServiceSettings
from worker.recovery import recover
from worker.runner import retry_config


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


def past(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def test_a_lost_workers_job_is_queued_and_sent_again_once(settings: ServiceSettings, sent: list) -> None:
    job_id = make_job(settings, status="running", attempt=1, worker="dead@host:1", lease_expires_at=past(1))
    run_recovery(settings, sent)
    job, events = read(settings, job_id)
    assert (job.status, job.worker, job.lease_expires_at) == ("queued", None, None)
    assert events[-1] == {"status": "queued", "attempt": 1, "reason": "worker_lost"}
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
