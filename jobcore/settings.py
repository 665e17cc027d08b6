"""Service settings, from environment variables (pydantic-settings); each has a documented default.

The defaults are the embedded ones: SQLite and a broker that needs no server, under ``./.service``. ``make serve``
and ``make demo`` switch to Postgres and Redis when those answer on their default ports (see ``api/embedded.py``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finetuning.storage.uri import S3Uri, is_remote

SERVICE_HOME = Path(".service")


def _location(value: Any) -> Any:
    if isinstance(value, str) and is_remote(value):
        return S3Uri.parse(value)
    return value


Location = Annotated[Path | S3Uri, BeforeValidator(_location)]
"""A local folder or an ``s3://bucket/prefix``."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FINETUNING_", extra="ignore", env_ignore_empty=True)

    database_url: str = Field(
        default=f"sqlite:///{SERVICE_HOME / 'service.db'}",
        description="SQLAlchemy URL of the job database, e.g. postgresql+psycopg://user@host:5432/finetuning.",
    )
    broker_url: str = Field(
        default=f"sqla+sqlite:///{SERVICE_HOME / 'broker.db'}",
        description="Celery broker URL, e.g. redis://host:6379/0 (embedded default: a SQLite-backed transport).",
    )
    artifact_root: Location = Field(
        default=SERVICE_HOME / "artifacts",
        description="Where each job's outputs go: <artifact_root>/<job id>/. A folder, or s3://bucket/prefix: then "
        "checkpoints are uploaded as they are saved and any worker can resume any job (credentials and endpoint "
        "from the AWS_* environment variables).",
    )
    work_root: Path = Field(
        default=SERVICE_HOME / "work",
        description="Where a worker keeps a job's folder (its config and events) when the artifact root is a bucket; "
        "with a local artifact root the job folder is <artifact_root>/<job id>.",
    )
    allowed_roots: list[Location] = Field(
        default_factory=list,
        description="Folders and s3://bucket/prefix locations that models, adapters and data sets named in jobs "
        "must lie under (JSON list). The artifact root is always allowed. Empty: only the artifact root.",
    )
    allow_hub_models: bool = Field(
        default=True, description="Accept hub ids (e.g. org/model) for models; workers then need hub access."
    )
    allow_trust_remote_code: bool = Field(
        default=False, description="Let jobs set model_args.trust_remote_code: true (runs the model repo's code)."
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) that encrypt project secrets at rest, comma-separated: the first encrypts, every "
        "one decrypts (add a new key first to rotate). The API and every worker need the same. Unset: a key is made "
        "once in <service home>/secrets.key (mode 0600), which suits one machine only.",
    )
    auth_disabled: bool = Field(
        default=False, description="Serve without tokens, every request as project 'default'. For a local demo only."
    )
    mlflow_tracking_uri: str | None = Field(default=None, description="MLflow for training jobs that set none.")
    default_queue: str = Field(default="gpu", description="Celery queue of jobs that name none.")
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs one worker runs at once (one per GPU group).")
    gpus_per_job: int = Field(default=1, ge=1, description="Processes launched per training job (accelerate).")
    plan_max_rows: int = Field(
        default=200_000,
        ge=1,
        description="A dry run (POST /v1/jobs/{kind}?dry_run=true) reads at most this many rows of each JSONL file "
        "and extrapolates the rest (the report says so).",
    )
    plan_timeout_seconds: float = Field(
        default=300.0, gt=0, description="A dry run's plan that takes longer is stopped (503 plan_timeout)."
    )
    ray_address: str | None = Field(
        default=None,
        description="A Ray cluster's job-submission address (http://ray-head:8265): jobs with nodes > 1 run there as "
        "Ray jobs under Ray Train. Unset: multi-node jobs are refused.",
    )
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where training jobs run: local (a worker's own GPUs; nodes > 1 still go to Ray) or ray (every "
        "training job on the Ray cluster).",
    )
    ray_queue: str | None = Field(
        default=None,
        description="Celery queue of jobs that run on the Ray cluster and name no queue: their worker only follows "
        "the Ray job, so a pool without GPUs serves them. Unset: the default queue.",
    )
    ray_max_failures: int = Field(
        default=3, ge=0, description="Restarts of a Ray job's training group after a lost worker or node."
    )
    ray_unreachable_seconds: float = Field(
        default=120.0, gt=0, description="A running Ray job whose cluster does not answer this long has failed."
    )
    lease_seconds: int = Field(default=60, ge=5, description="A running job whose worker is silent this long is lost.")
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="How often a worker renews its lease.")
    max_attempts: int = Field(
        default=3, ge=1, description="Runs of a job whose worker was lost before it fails with worker_lost."
    )
    recovery_seconds: float = Field(
        default=15.0, gt=0, description="How often each worker looks for lost jobs and queued jobs without a message."
    )
    broker_visibility_timeout_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description="Redis (and SQS) deliver a message that was not acknowledged within this long again, while its "
        "job may still run: the database claim makes such a copy exit without running anything.",
    )
    cancel_grace_seconds: float = Field(default=5.0, ge=0, description="SIGTERM to SIGKILL delay when cancelling.")
    shutdown_grace_seconds: float = Field(
        default=120.0,
        ge=0,
        description="A worker asked to stop (SIGTERM) gives its running training job this long to save a checkpoint "
        "at its next step and exit (a cancel with checkpoint too); then the engine is killed. Either way the job goes "
        "back to the queue (or ends cancelled) and resumes from its newest checkpoint.",
    )
    requeue_backoff_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A job requeued after its worker was lost waits this long before it runs again, doubled for each "
        "further lost run.",
    )
    requeue_backoff_max_seconds: float = Field(default=300.0, ge=0, description="The longest such wait.")
    db_pool_size: int = Field(
        default=5,
        ge=1,
        description="Database connections each API process keeps, and so how many of its requests use the database "
        "at once (the others wait, see db_wait_seconds). Keep API processes x db_pool_size (+ workers) under "
        "Postgres' max_connections, or put pgbouncer in front.",
    )
    db_wait_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How long a request waits for one of those connections before it answers 503 overloaded with "
        "Retry-After: a burst is answered quickly rather than queued until clients time out.",
    )
    max_requests_in_flight: int = Field(
        default=64,
        ge=0,
        description="Requests one API process works on at once (a live stream counts only until it starts); more "
        "answer 503 overloaded with Retry-After at once. 0: no limit.",
    )
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process remembers which project a valid token belongs to (most requests then "
        "make no token query); a revoked token keeps working on a process for at most this long. 0: look up every "
        "time.",
    )
    max_body_bytes: int = Field(default=2_000_000, ge=1024, description="Largest accepted request body.")
    max_queued_jobs_per_project: int = Field(
        default=100,
        ge=0,
        description="Queued jobs (waiting for a worker) one project may have; a submission beyond it answers 429 "
        "too_many_jobs. Guards the queue and the other projects against a runaway script. 0: no limit.",
    )
    max_active_jobs_per_project: int = Field(
        default=200,
        ge=0,
        description="Unfinished jobs (queued, running or cancelling) one project may have; a submission beyond it "
        "answers 429 too_many_jobs. 0: no limit.",
    )
    engine_python: str | None = Field(
        default=None, description="Python that runs the engine CLIs (default: the worker's own interpreter)."
    )
    # -- webhooks ---------------------------------------------------------------------------------------------------
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts and networks webhooks may be sent to besides public addresses (JSON list): host names "
        "(hooks.internal, or *.internal for its subdomains), addresses and networks (10.1.2.3, 10.0.0.0/8, "
        "fd00::/8). A webhook URL whose host resolves to a loopback, private, link-local, multicast or reserved "
        "address is refused unless its host or every address it resolves to is listed.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one webhook request may take (connect, send, answer)."
    )
    webhook_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="The wait before a failed webhook delivery is retried, doubled after each further failure (with "
        "jitter), at most webhook_retry_max_seconds.",
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="The longest wait between two attempts of a webhook delivery."
    )
    webhook_retry_window_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A webhook delivery is retried until this long after its first attempt, then marked failed "
        "(POST .../redeliver sends it again).",
    )
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often an idle webhook sender looks for deliveries that are due."
    )
    webhook_sender: bool = Field(
        default=True,
        description="Run a webhook sender in this process (each API process and each worker runs one; any number "
        "may run at once).",
    )
    webhook_log_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Finished webhook deliveries (and their attempts) older than this are removed from the delivery "
        "log. 0: kept forever.",
    )
    # -- operations: metrics, logs, links -----------------------------------------------------------------------
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at GET /metrics (no token: keep it off the public network).",
    )
    metrics_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long the metrics computed from the database (jobs by status, queue depth, durations, "
        "tokens per second) are reused, so frequent scrapes cost one query per interval.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port on which a Celery worker serves its Prometheus metrics; 0: off. One port per worker "
        "process on a machine.",
    )
    worker_metrics_host: str = Field(default="0.0.0.0", description="Address the worker's metrics server binds.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: the usual log lines; json: one JSON object per line (time, level, logger, message, and "
        "job_id / request_id where known) for log collectors.",
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description="Address of the MLflow UI (e.g. http://mlflow:5000); when set, a job with an MLflow run links "
        "to it (links.mlflow).",
    )

    @field_validator("artifact_root", mode="after")
    @classmethod
    def _absolute(cls, value: Path | S3Uri) -> Path | S3Uri:
        return value.expanduser().resolve() if isinstance(value, Path) else value

    @field_validator("work_root", mode="after")
    @classmethod
    def _absolute_work_root(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("allowed_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: list[Path | S3Uri]) -> list[Path | S3Uri]:
        return [p.expanduser().resolve() if isinstance(p, Path) else p for p in value]

    @field_validator("webhook_allowed_hosts", mode="after")
    @classmethod
    def _webhook_hosts(cls, value: list[str]) -> list[str]:
        from jobcore.webhooks.urls import parse_allowed

        parse_allowed(value)  # raises ValueError naming a malformed entry
        return value

    @property
    def roots(self) -> list[Path]:
        """The local folders inputs may lie under."""
        return [root for root in (self.artifact_root, *self.allowed_roots) if isinstance(root, Path)]

    @property
    def bucket_roots(self) -> list[S3Uri]:
        """The bucket locations inputs may lie under."""
        return [root for root in (self.artifact_root, *self.allowed_roots) if isinstance(root, S3Uri)]

    def job_outputs(self, job_id: str) -> Path | S3Uri:
        """Where a job's outputs go (a folder or a bucket prefix)."""
        return self.artifact_root / job_id

    def job_folder(self, job_id: str) -> Path:
        """The worker's local folder for a job: its config, its events, and its outputs when they stay local."""
        if isinstance(self.artifact_root, Path):
            return self.artifact_root / job_id
        return self.work_root / job_id


@lru_cache
def get_settings() -> ServiceSettings:
    return ServiceSettings()
