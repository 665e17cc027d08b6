"""The tables: jobs, their events (the log, metrics, phases, in order), API tokens, project secrets and webhooks
(endpoints, the deliveries to them, each delivery's attempts). Shared with the worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from finetuning.contract import TRAINING_COMMANDS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on Postgres (indexable, compact), plain JSON elsewhere (SQLite for the embedded demo)
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY
EventId = BigInteger().with_variant(Integer(), "sqlite")
# Postgres notifies this channel, with the job's id, when a job's events are committed (a trigger, see migrations)
EVENTS_CHANNEL = "job_events"
# the event a run that continued from a checkpoint writes: which, and what of an earlier run it repeats
RESUMED_EVENT = "resumed"
# the event type of a job's own transitions (``jobcore.transitions``): {"status", "attempt", ...}
JOB_EVENT = "job"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel_requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s.terminal)
# a worker holds the job (and its lease)
ACTIVE_STATUSES = (JobStatus.RUNNING.value, JobStatus.CANCEL_REQUESTED.value)


class JobKind(StrEnum):
    SFT = "sft"
    DPO = "dpo"
    GRPO = "grpo"
    MERGE = "merge"
    ADAPTER_CONVERSION = "adapter-conversion"
    GENERATE = "generate"


# the kinds that train: they stop at a checkpoint when asked and can be resumed
TRAINING_KINDS = tuple(kind for kind in JobKind if kind.value in TRAINING_COMMANDS)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.QUEUED.value, index=True)
    phase: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    queue: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)  # as submitted (validated)
    resolved: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # paths and computed values in force
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # where chained inputs came from
    progress: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # final metrics
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # the fencing token: each claim increments it
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # the cancel asks a training job to save a checkpoint first (POST .../cancel?checkpoint=true)
    cancel_checkpoint: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # one entry per claim: {attempt, worker, started_at, ended_at, outcome, reason, checkpoint}
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, server_default="[]")
    # claims that don't count against max_attempts: hand-backs (worker shutdown) and those before a resume
    uncounted_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # a job requeued after a lost worker waits until then (back-off); the re-sent message carries the same countdown
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the Ray job running it (a job on a Ray cluster): {"id": submission id, "seq_base": its events are numbered on
    # from}; a worker that claims the job after a lost one attaches to it instead of starting a second copy
    ray_submission: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("uq_jobs_project_idempotency_key", "project", "idempotency_key", unique=True),
        Index("ix_jobs_project_created_at", "project", "created_at"),
    )


class JobEvent(Base):
    """One engine event or log line. ``id`` is the global cursor (SSE ids, ``after=``): increasing, gap-free per
    insert order, shared by all jobs."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # the claim of the job that wrote it (0: before any; null: written before attempts were recorded)
    attempt: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings so people can tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Secret(Base):
    """A project's credential, by name, encrypted (``jobcore.secrets``); never readable through the API. A secret
    with a ``job_id`` was typed inline into that job's config and moved here at submission: it belongs to the job and
    is not listed with the project's named secrets."""

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))  # the API token (its name and prefix) that set it

    __table_args__ = (UniqueConstraint("project", "name", name="uq_secrets_project_name"),)


class WebhookEndpoint(Base):
    """A URL of a project that receives its jobs' events (``jobcore.webhooks``), signed with the endpoint's secret
    (encrypted like project secrets; during a rotation the previous one signs too, until it expires)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))  # the API token (its name and prefix)


class WebhookDelivery(Base):
    """One event for one endpoint: the message (``id`` is its ``webhook-id``, ``body`` the exact bytes signed and sent
    on every attempt) and where its delivery stands. Written in the transaction of the event it reports (an outbox),
    sent by :mod:`jobcore.webhooks.sender`; ``seq`` orders a job's deliveries to an endpoint."""

    __tablename__ = "webhook_deliveries"

    seq: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, succeeded, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # in a row, since the last (re)send
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    give_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # set by the first attempt
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a sender is sending it
    lease_token: Mapped[str | None] = mapped_column(String(36))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_seq", "endpoint_id", "seq"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_job_id_status", "endpoint_id", "job_id", "status"),
    )


class WebhookAttempt(Base):
    """One try to send a delivery: when, the answer's status code or the error, how long it took, the first bytes of
    the answer."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    delivery_seq: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(String(1000))  # an excerpt of the answer's body
