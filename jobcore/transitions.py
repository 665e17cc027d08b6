"""Every change of a job's state, written once: for each transition the row's new values, the ``job`` event that
tells it, and the change to the attempt's history entry (``jobs.attempts``). The API, the worker's store and recovery
build a :class:`Transition` here and only carry it out inside their own fences (the row lock, the attempt token),
then :func:`record` its event, its webhooks (:mod:`jobcore.webhooks.outbox`) and history in the same transaction.

Row values may hold SQL expressions (``now``: the database's clock on Postgres, see :func:`db_now`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from finetuning.contract import EventType
from jobcore.models import JOB_EVENT, Job, JobEvent, JobStatus, utcnow
from jobcore.webhooks import outbox

Stamp = Literal["started_at", "ended_at"]


@dataclass(frozen=True)
class Transition:
    values: dict[str, Any]  # the job row's new values
    event: dict[str, Any]  # the ``job`` event's data, but for the attempt (:meth:`event_for`)
    entry: dict[str, Any] | None = None  # the changes to the attempt's history entry
    stamp: Stamp | None = None  # the entry field that gets the transition's time

    def event_for(self, attempt: int) -> dict[str, Any]:
        return {"status": self.event["status"], "attempt": attempt, **self.event}


def db_now(session: Session) -> Any:
    """The clock leases are stamped with: the database's on Postgres (workers whose clocks disagree still agree on
    who holds a lease), this process' UTC time elsewhere (SQLite, the embedded demo)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.now()
    return utcnow()


# -- the transitions -------------------------------------------------------------------------------------------------


def submitted() -> Transition:
    return Transition({"status": JobStatus.QUEUED.value}, {"status": JobStatus.QUEUED.value})


def claimed(worker: str, now: Any, lease_seconds: float) -> Transition:
    """A worker takes the job (queued, or running with an expired lease): a new attempt, its fencing token."""
    values = {
        "status": JobStatus.RUNNING.value,
        "attempt": Job.attempt + 1,
        "worker": worker,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "started_at": func.coalesce(Job.started_at, now),
        "updated_at": now,
        "not_before": None,
    }
    return Transition(values, {"status": JobStatus.RUNNING.value, "worker": worker}, {"worker": worker}, "started_at")


def finished(
    status: JobStatus,
    now: Any,
    *,
    error: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    exit_code: int | None = None,
    checkpoint: str | None = None,
) -> Transition:
    """The run ended (succeeded, failed, cancelled); ``checkpoint``: the folder a stopped run saved, kept as
    ``artifacts.checkpoint`` to resume from."""
    if not status.terminal:
        raise ValueError(f"a job finishes with a terminal status, not {status.value}")
    values: dict[str, Any] = {
        "status": status.value,
        "error": error,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
        "ray_submission": None,  # that Ray job is over: a resume starts a new one
    }
    if checkpoint is not None:
        artifacts = {**(artifacts or {}), "checkpoint": checkpoint}
    if artifacts is not None:
        values["artifacts"] = artifacts
        if artifacts.get("mlflow_run_id"):
            values["mlflow_run_id"] = str(artifacts["mlflow_run_id"])[:64]
    if metrics is not None:
        values["metrics"] = metrics
    event: dict[str, Any] = {"status": status.value}
    if error is not None:
        event["error"] = error
    if exit_code is not None:
        event["exit_code"] = exit_code
    if checkpoint is not None:
        event["checkpoint"] = checkpoint
    entry = {"outcome": status.value, "reason": error.get("code") if error else None, "checkpoint": checkpoint}
    return Transition(values, event, entry, "ended_at")


def handed_back(now: Any, artifacts: dict[str, Any], checkpoint: str | None, *, cancelled: bool) -> Transition:
    """A worker shutting down gives the job back to the queue (that run does not count against ``max_attempts``),
    with the checkpoint it saved; a cancel requested meanwhile wins: the job ends cancelled."""
    if checkpoint is not None:
        artifacts = {**artifacts, "checkpoint": checkpoint}
    values: dict[str, Any] = {"lease_expires_at": None, "updated_at": now, "artifacts": artifacts}
    if cancelled:
        values.update(status=JobStatus.CANCELLED.value, finished_at=now)
    else:
        values.update(status=JobStatus.QUEUED.value, worker=None, uncounted_attempts=Job.uncounted_attempts + 1)
    status = JobStatus.CANCELLED if cancelled else JobStatus.QUEUED
    event = {"status": status.value, "reason": "worker_shutdown", "checkpoint": checkpoint}
    entry = {
        "outcome": "cancelled" if cancelled else "handed_back",
        "reason": "worker_shutdown",
        "checkpoint": checkpoint,
    }
    return Transition(values, event, entry, "ended_at")


def lost_requeued(now: Any, retry_in_s: float, not_before: datetime) -> Transition:
    """Its worker stopped renewing the lease: queued again, sent after a back-off."""
    values = {
        "status": JobStatus.QUEUED.value,
        "worker": None,
        "not_before": not_before,
        "lease_expires_at": None,
        "updated_at": now,
    }
    event = {
        "status": JobStatus.QUEUED.value,
        "reason": "worker_lost",
        "retry_in_s": retry_in_s,
        "not_before": not_before.isoformat(),
    }
    return Transition(values, event, {"reason": "worker_lost", "outcome": "lost"}, "ended_at")


def lost_failed(now: Any, counted: int) -> Transition:
    """Its worker was lost once too often: given up."""
    error = {
        "code": "worker_lost",
        "message": f"the worker running this job stopped answering, {counted} times: given up",
        "param": None,
    }
    values = {
        "status": JobStatus.FAILED.value,
        "finished_at": now,
        "error": error,
        "lease_expires_at": None,
        "updated_at": now,
        "ray_submission": None,
    }
    event = {"status": JobStatus.FAILED.value, "error": error}
    return Transition(values, event, {"reason": "worker_lost", "outcome": "failed"}, "ended_at")


def lost_cancelled(now: Any) -> Transition:
    """Its worker was lost while carrying out a cancel: the cancel is done."""
    values = {
        "status": JobStatus.CANCELLED.value,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
        "ray_submission": None,
    }
    event = {"status": JobStatus.CANCELLED.value, "reason": "worker_lost"}
    return Transition(values, event, {"reason": "worker_lost", "outcome": "cancelled"}, "ended_at")


def cancelled_while_queued(now: Any, checkpoint: str | None = None) -> Transition:
    """Cancelled before any worker took it; ``checkpoint``: one an earlier run saved, named in the event."""
    values = {"status": JobStatus.CANCELLED.value, "cancel_requested": True, "finished_at": now, "ray_submission": None}
    event: dict[str, Any] = {"status": JobStatus.CANCELLED.value}
    if checkpoint:
        event["checkpoint"] = checkpoint
    return Transition(values, event)


def cancel_requested(*, save_checkpoint: bool) -> Transition:
    """A running job is asked to stop; its worker finishes it (``save_checkpoint``: a training run saves one first)."""
    values = {
        "status": JobStatus.CANCEL_REQUESTED.value,
        "cancel_requested": True,
        "cancel_checkpoint": save_checkpoint,
    }
    event: dict[str, Any] = {"status": JobStatus.CANCEL_REQUESTED.value}
    if save_checkpoint:
        event["save_checkpoint"] = True
    return Transition(values, event)


def resumed(attempt: int, artifacts: dict[str, Any], checkpoint: str) -> Transition:
    """A cancelled or failed training job queued again to continue from ``checkpoint``; its runs so far no longer
    count against ``max_attempts``."""
    values = {
        "status": JobStatus.QUEUED.value,
        "cancel_requested": False,
        "cancel_checkpoint": False,
        "error": None,
        "finished_at": None,
        "worker": None,
        "lease_expires_at": None,
        "not_before": None,
        "uncounted_attempts": attempt,  # a fresh max_attempts budget
        "ray_submission": None,
        "artifacts": {**artifacts, "checkpoint": checkpoint},
    }
    return Transition(values, {"status": JobStatus.QUEUED.value, "reason": "resumed", "checkpoint": checkpoint})


# -- carrying one out ------------------------------------------------------------------------------------------------


def record(session: Session, job_id: str, attempt: int, transition: Transition, at: Any = None) -> None:
    """After the job row was updated (in this transaction, which holds its lock): the ``job`` event, and the
    attempt's history entry stamped with ``at``, the transition's time."""
    data = transition.event_for(attempt)
    session.execute(insert(JobEvent).values(job_id=job_id, type=JOB_EVENT, data=data, attempt=attempt))
    outbox.enqueue(session, job_id, [(JOB_EVENT, data)])  # its webhooks, in the same transaction
    if transition.entry is not None:
        changes = dict(transition.entry)
        if transition.stamp is not None:
            changes[transition.stamp] = _iso(at)
        record_attempt(session, job_id, attempt, changes, ended_at=at)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def record_attempt(
    session: Session, job_id: str, attempt: int, changes: dict[str, Any], *, ended_at: Any = None
) -> None:
    """Update the history entry of ``attempt`` in ``jobs.attempts`` with ``changes`` (adding it when new). A new
    entry closes an earlier one still open (its worker was lost: ``outcome`` lost, ended at ``ended_at``). Called after
    an UPDATE of the job in the same transaction, which holds the row's lock."""
    history = list(session.execute(select(Job.attempts).where(Job.id == job_id)).scalar() or [])
    for entry in history:
        if entry.get("attempt") == attempt:
            entry.update(changes)
            if changes.get("ended_at") and "last_step" not in entry:
                entry["last_step"] = attempt_last_step(session, job_id, attempt)
            break
    else:
        for entry in history:
            if entry.get("ended_at") is None:
                entry.update(ended_at=_iso(ended_at), outcome="lost", reason=entry.get("reason") or "worker_lost")
                if "last_step" not in entry and isinstance(entry.get("attempt"), int):
                    entry["last_step"] = attempt_last_step(session, job_id, entry["attempt"])
        history.append(
            {
                "attempt": attempt,
                "worker": None,
                "started_at": None,
                "ended_at": None,
                "outcome": "running",
                "reason": None,
                "checkpoint": None,
                **changes,
            }
        )
    session.execute(
        update(Job).where(Job.id == job_id).values(attempts=history).execution_options(synchronize_session=False)
    )


def logged_step() -> Any:
    """A metrics event's ``step``, in SQL."""
    return JobEvent.data["step"].as_integer()


def attempt_last_step(session: Session, job_id: str, attempt: int) -> int | None:
    """The last training step an attempt logged (None when it logged none)."""
    query = select(func.max(logged_step())).where(
        JobEvent.job_id == job_id, JobEvent.attempt == attempt, JobEvent.type == EventType.METRICS
    )
    value = session.scalar(query)
    return int(value) if value is not None else None
