"""Jobs nobody is running: a worker that died (its lease expired) or a queue message that vanished (a broker flush,
an enqueue that failed after the commit). Every worker runs :func:`recover` periodically; running it in several
places at once is safe, because a re-sent message only starts a job that its claim can still take.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from jobcore import transitions
from jobcore.db import transaction, unpooled_sessions
from jobcore.executors import stop_ray_job
from jobcore.models import ACTIVE_STATUSES, Job, JobStatus
from jobcore.settings import ServiceSettings

logger = logging.getLogger(__name__)

# ``send(settings, job_id, queue)``, optionally taking ``countdown=`` seconds (the back-off of a requeued job)
Dispatch = Callable[..., None]


@dataclass
class Recovery:
    """What one pass did, by job id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    redispatched: list[str] = field(default_factory=list)


@functools.lru_cache
def _sessions(database_url: str) -> sessionmaker[Session]:
    return unpooled_sessions(database_url)


def recover(settings: ServiceSettings, dispatch: Dispatch | None = None) -> Recovery:
    """Requeue (or fail, after ``max_attempts`` counted runs) jobs whose lease expired, finish cancels their lost
    worker never carried out, and send queued jobs that waited a lease period without being claimed again.

    A requeued job's message is sent with a countdown that doubles with each lost run (``requeue_backoff_seconds``,
    at most ``requeue_backoff_max_seconds``), shown as ``not_before`` on the job and ``retry_in_s`` in its event, so a
    job that kills its workers does not hot-loop. Jobs a worker handed back while shutting down (their runs are
    uncounted) never reach this: they are queued and sent again by that worker."""
    from worker.dispatch import enqueue_job

    report = Recovery()
    # unpooled: this runs in Celery's main process, which forks pool processes that must not share a connection
    with transaction(_sessions(settings.database_url)) as session:
        to_stop: list[str] = []
        to_send = _settle_lost(session, settings, report, to_stop) + _waiting_too_long(session, settings, report)
    _send(settings, dispatch or enqueue_job, to_send)  # after the commit: a worker that takes it finds it claimable
    for submission_id in to_stop:  # ended without their worker: their Ray jobs must not train on unobserved
        if settings.ray_address:
            stop_ray_job(settings.ray_address, submission_id)
    for name in ("requeued", "failed", "cancelled", "redispatched"):
        if getattr(report, name):
            logger.warning("recovery: %s %s", name, ", ".join(getattr(report, name)))
    return report


Message = tuple[str, str, float]  # job id, queue, countdown in seconds


def _settle_lost(session: Session, settings: ServiceSettings, report: Recovery, to_stop: list[str]) -> list[Message]:
    """Jobs whose lease expired: cancelled (a cancel was asked), failed (lost ``max_attempts`` times) or requeued
    with a back-off (a requeued job's Ray job trains on: the next worker attaches to it); the messages of the
    requeued ones, and in ``to_stop`` the Ray jobs of those that ended."""
    now = transitions.db_now(session)
    # the same instant as a value, for the events and the back-off
    clock = now if isinstance(now, datetime) else session.execute(select(now)).scalar_one()
    lost = session.execute(
        select(Job.id, Job.attempt, Job.uncounted_attempts, Job.queue, Job.cancel_requested, Job.ray_submission)
        .where(Job.status.in_(ACTIVE_STATUSES), Job.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    messages: list[Message] = []
    for job_id, attempt, uncounted, queue, cancel_requested, ray_submission in lost:
        # hand-backs (a worker shut down cleanly) and the runs before a resume don't count
        counted = attempt - (uncounted or 0)
        delay = backoff_seconds(settings, counted)
        if cancel_requested:
            transition, outcome = transitions.lost_cancelled(now), report.cancelled
        elif counted >= settings.max_attempts:
            transition, outcome = transitions.lost_failed(now, counted), report.failed
        else:
            transition = transitions.lost_requeued(now, delay, clock + timedelta(seconds=delay))
            outcome = report.requeued
        still_lost = and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE_STATUSES))
        done = session.execute(
            update(Job)
            .where(still_lost)
            .values(**transition.values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).first()
        if done is None:  # claimed or finished meanwhile
            continue
        outcome.append(job_id)
        if outcome is report.requeued:
            messages.append((job_id, queue, delay))
        elif ray_submission:
            to_stop.append(str(ray_submission["id"]))
        transitions.record(session, job_id, attempt, transition, clock)
    return messages


def _waiting_too_long(session: Session, settings: ServiceSettings, report: Recovery) -> list[Message]:
    """Queued jobs no worker claimed for a lease period (their message was lost: a broker restart without
    persistence, a failed send): sent again."""
    now = transitions.db_now(session)
    quiet = now - timedelta(seconds=settings.lease_seconds)
    waiting = session.execute(
        select(Job.id, Job.queue)
        .where(
            Job.status == JobStatus.QUEUED.value,
            Job.updated_at < quiet,
            # a job waiting out its back-off has its message (with a countdown) in the queue already
            or_(Job.not_before.is_(None), Job.not_before < quiet),
        )
        .with_for_update(skip_locked=True)
    ).all()
    for job_id, _queue in waiting:
        # touched, so the next pass waits another lease period before sending it again
        session.execute(
            update(Job).where(Job.id == job_id).values(updated_at=now).execution_options(synchronize_session=False)
        )
        report.redispatched.append(job_id)
    return [(job_id, queue, 0.0) for job_id, queue in waiting]


def _send(settings: ServiceSettings, send: Dispatch, messages: list[Message]) -> None:
    for job_id, queue, delay in messages:
        try:
            if delay > 0 and _takes_countdown(send):
                send(settings, job_id, queue, countdown=delay)
            else:
                send(settings, job_id, queue)
        except Exception:  # the broker is down: the next pass sends it again
            logger.warning("could not re-send job %s to queue %s", job_id, queue, exc_info=True)


def backoff_seconds(settings: ServiceSettings, counted: int) -> float:
    """How long a job requeued after its ``counted``-th lost run waits: ``requeue_backoff_seconds`` doubled per run,
    at most ``requeue_backoff_max_seconds``."""
    base = settings.requeue_backoff_seconds
    return float(min(base * 2 ** max(counted - 1, 0), settings.requeue_backoff_max_seconds))


def _takes_countdown(send: Callable[..., None]) -> bool:
    try:
        parameters = inspect.signature(send).parameters
    except (TypeError, ValueError):
        return False
    return "countdown" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def install_recovery(settings: ServiceSettings) -> None:
    """Start the recovery thread in a Celery worker's main process once it is ready."""
    from celery import signals

    @signals.worker_ready.connect(weak=False)
    def _start(**_: object) -> None:
        start_recovery_thread(settings)


def start_recovery_thread(settings: ServiceSettings) -> threading.Event:
    """Run :func:`recover` every ``recovery_seconds`` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(settings.recovery_seconds):
            try:
                recover(settings)
            except Exception:  # the database is down: try again next time
                logger.warning("recovery pass failed", exc_info=True)

    threading.Thread(target=loop, name="job-recovery", daemon=True).start()
    return stop
