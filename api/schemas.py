"""Response schemas. Request bodies are the engine's own config classes (``api.jobkinds.REQUEST_MODELS``)."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from finetuning.redaction import redact
from jobcore.models import Job, JobKind, JobStatus

# The MLflow UI of the app serving the request (``FINETUNING_MLFLOW_UI_URL``): set per request by the app's middleware,
# read by :func:`job_read`.
MLFLOW_UI_URL: ContextVar[str | None] = ContextVar("finetuning_mlflow_ui_url", default=None)


class JobProgress(BaseModel):
    step: int | None = Field(default=None, description="Optimizer steps (or generate batches) done.")
    total_steps: int | None = None
    percent: float | None = None
    elapsed_s: float | None = Field(default=None, description="Seconds since training began (this attempt).")
    eta_s: float | None = Field(default=None, description="Estimated seconds left.")


class JobError(BaseModel):
    code: str = Field(
        default="error", description="e.g. invalid_data, model_not_found (user errors), worker_lost, out_of_memory."
    )
    message: str = ""
    param: str | None = Field(default=None, description="Config path at fault, if any.")


class JobInput(BaseModel):
    """Where a chained input came from: an earlier job's artifact."""

    job_id: str
    artifact: str
    path: str


class ResumePoint(BaseModel):
    checkpoint: str
    step: int


class JobAttempt(BaseModel):
    """One run of the job on a worker."""

    attempt: int = Field(description="The claim's number (the job's `attempt` then).")
    worker: str | None = Field(default=None, description="`<celery hostname>:<pool process pid>`.")
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = Field(
        default="running",
        description="running, succeeded, failed, cancelled, handed_back (its worker shut down: queued again, not "
        "counted against the attempt limit) or lost (its worker stopped answering).",
    )
    reason: str | None = Field(default=None, description="e.g. worker_shutdown, worker_lost, or the error code.")
    checkpoint: str | None = Field(default=None, description="The checkpoint the run saved when it was stopped.")
    last_step: int | None = Field(default=None, description="The last training step it logged, once it ended.")
    resumed_from: ResumePoint | None = Field(
        default=None, description="The checkpoint this run continued from, if it continued one."
    )
    lost_steps: int | None = Field(
        default=None,
        description="Steps this run had done after the checkpoint a later run resumed from: done again, their "
        "values superseded in the metrics.",
    )
    lost_seconds: float | None = Field(
        default=None, description="Wall-clock (GPU) seconds those lost steps took this run."
    )
    ray_restarts: int | None = Field(
        default=None,
        description="A run on a Ray cluster: how many times Ray Train restarted its training group (a lost Ray "
        "worker or node) from the newest checkpoint.",
    )


class LostWork(BaseModel):
    steps: int = Field(default=0, description="Training steps done twice because a run stopped between checkpoints.")
    seconds: float = Field(
        default=0.0, description="Wall-clock (GPU) seconds those steps took the runs that lost them."
    )


class JobLinks(BaseModel):
    mlflow: str | None = Field(
        default=None,
        description="The job's MLflow run in the MLflow UI; null when the job has no run or the service does not "
        "know the UI's address.",
    )


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: JobKind
    status: JobStatus
    phase: str | None = Field(description="Finer progress beside the status: loading_model, training, saving, ...")
    name: str | None
    labels: dict[str, str]
    queue: str
    attempt: int = Field(description="How many times a worker has claimed the job.")
    attempts: list[JobAttempt] = Field(default_factory=list, description="Each run of the job, oldest first.")
    lost_work: LostWork = Field(
        default_factory=LostWork, description="What runs that stopped between checkpoints cost (summed over attempts)."
    )
    not_before: datetime | None = Field(
        default=None, description="A job requeued after its worker was lost waits until then (back-off)."
    )
    progress: JobProgress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    config: dict[str, Any] = Field(description="The config as submitted (validated).")
    resolved: dict[str, Any] = Field(
        description="What runs: `config` (paths in force, outputs under the job's folder), `num_processes`, "
        "`training_config` (adapter conversion), `upgrades` (fields of the original engine's libraries that were "
        "read in today's spelling: `param`, `replacement`, `reason`), `rerun_of` (a rerun: the job whose manifest it "
        "reruns), `warnings` and, once running, `engine` (e.g. computed batch sizes)."
    )
    inputs: dict[str, JobInput] = Field(description="Config path -> the earlier job output it was chained to.")
    error: JobError | None
    artifacts: dict[str, Any] = Field(description="Name -> path of what the job produced.")
    metrics: dict[str, Any] = Field(description="Final metrics.")
    mlflow_run_id: str | None
    links: JobLinks = Field(default_factory=JobLinks, description="Where to see the job elsewhere.")


class JobPage(BaseModel):
    data: list[JobRead]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The cursor: increasing; the SSE `id`.")
    attempt: int | None = Field(
        default=None, description="The run of the job that wrote it (0: before any run; null: from an older version)."
    )
    type: str = Field(
        description="An engine event type (run_started, phase, metrics, eval, progress, preprocessing, checkpoint, "
        "storage, manifest, log, status), "
        "or `log` with {stream, line} for an output line, or `job` with {status, attempt} for a service transition."
    )
    data: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    data: list[EventRead]
    next: int | None = Field(description="Pass as `after` for the next page; null when no more events exist now.")


class MetricPoint(BaseModel):
    step: int
    value: float | str | None = Field(description='A number, or "NaN"/"Infinity" for a diverging run.')
    attempt: int | None = Field(default=None, description="The run of the job that logged it.")


class CheckpointRead(BaseModel):
    step: int
    name: str = Field(description="checkpoint-<step>; `job:<id>/checkpoint-<step>` names it in another job's config.")
    complete: bool = Field(
        description="Saved to the end (weights and trainer state; in a bucket: every file uploaded). Only a complete "
        "checkpoint is resumed from or used by another job."
    )
    created_at: datetime | None
    size_bytes: int
    location: str = Field(description="Its folder, or its s3:// prefix.")
    metrics: dict[str, dict[str, float | str]] = Field(
        description="The train metrics logged at its step (`train`) and the evaluation at its step (`eval`), if any."
    )


class CheckpointPage(BaseModel):
    data: list[CheckpointRead]
    next: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


class SupersededSeries(BaseModel):
    train: dict[str, list[MetricPoint]] = Field(default_factory=dict)
    eval: dict[str, list[MetricPoint]] = Field(default_factory=dict)


class JobMetrics(BaseModel):
    train: dict[str, list[MetricPoint]] = Field(
        description="Per logging step: loss, learning_rate, grad_norm, ...; each step once, from the run that "
        "carried the job on (a run that resumed a checkpoint supersedes what an earlier run logged after it)."
    )
    eval: dict[str, list[MetricPoint]] = Field(description="Per evaluation: loss, runtime, ...; the same way.")
    summary: dict[str, Any] = Field(description="The trainer's end-of-training summary (train_runtime, train_loss).")
    through_event_id: int = Field(
        default=0,
        description="The job's newest event when the series was read: follow the stream from here (`after`) to "
        "extend the series without reading its history again.",
    )
    superseded: SupersededSeries | None = Field(
        default=None,
        description="With include_superseded=true: the points earlier runs logged after the checkpoint a later run "
        "resumed from (the lost timeline), each with its attempt.",
    )


class ManifestInput(BaseModel):
    """One file or folder the run read, as it was when the run read it."""

    model_config = ConfigDict(extra="allow")

    param: str = Field(
        description="The config location that names it, e.g. `data_conf.training_data.datasets[0].path`."
    )
    value: str = Field(description="What the config names: a path, a hub id, or the `s3://` URI.")
    uri: str | None = Field(default=None, description="The bucket object or prefix it was downloaded from.")
    path: str | None = Field(default=None, description="Where the run read it (a bucket input: its local copy).")
    kind: str | None = Field(default=None, description="`file`, `folder` or `hub` (a hub model, from the hub cache).")
    sha256: str | None = Field(
        default=None,
        description="A file's SHA-256; a folder's: SHA-256 over `<name>\\0<sha256>\\n` of each file, sorted by name "
        "(hidden files left out).",
    )
    bytes: int | None = None
    revision: str | None = Field(default=None, description="A hub model's commit.")
    files: dict[str, dict[str, Any]] | None = Field(
        default=None, description="A folder's files: name -> sha256, bytes."
    )
    error: str | None = Field(default=None, description="Why it could not be hashed, if it could not.")


class JobManifest(BaseModel):
    """A job's reproducibility manifest: what its engine run recorded once its data and model were loaded."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    kind: JobKind
    attempt: int | None = Field(default=None, description="The run of the job that wrote it (the newest run's).")
    recorded_at: datetime
    rerun_of: str | None = Field(
        default=None, description="The job this one reruns (`POST /v1/jobs/{kind}?from_manifest=<id>`)."
    )
    method: str = Field(description="sft, dpo or generate.")
    config: dict[str, Any] = Field(
        description="The config as run, in its YAML form, with every value the engine chose made concrete (seeds, a "
        "hub model's commit, `auto` values, the training arguments it picks for the machine). Secrets are masked."
    )
    pins: dict[str, Any] = Field(description="Config location -> the value made concrete in `config`.")
    seeds: dict[str, Any] = Field(description="Config location -> seed (training, data order, data mixing, split).")
    resolved: dict[str, Any] = Field(
        description="What the engine computed: per-device batch sizes, accumulation, learning rate, output folder, "
        "the checkpoint resumed (generate: its generation config)."
    )
    training_arguments: dict[str, Any] | None = Field(
        default=None, description="The trainer's arguments as it ran with them (sft, dpo)."
    )
    inputs: list[ManifestInput]
    versions: dict[str, str | None] = Field(
        description="Python, torch, transformers, trl, peft, accelerate, bitsandbytes, datasets, ... and "
        "silogen-finetuning; null when not installed."
    )
    machine: dict[str, Any] = Field(
        description="hostname, image (`FINETUNING_IMAGE`, `FINETUNING_IMAGE_REVISION`, `FINETUNING_IMAGE_DIGEST`), "
        "world_size, processes_per_node, cuda / hip / cudnn versions, gpu_count and gpus (name, memory, capability)."
    )
    determinism: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(
        default_factory=list,
        description="Where the job's runs disagree (an input, a version or the machine changed between attempts), "
        "and where a rerun differs from the job it reruns.",
    )


class PlanProblemRow(BaseModel):
    file: str
    line: int | None = Field(description="1-based line of the record (JSONL), or where its JSON array element starts.")
    kind: str = Field(
        description="not_json, not_utf8, not_an_object, bad_role, invalid_record, template_error, missing_chosen, "
        "missing_rejected, empty_assistant_turn, no_assistant_turn, too_long_filtered, truncated, prompt_truncated, "
        "completion_truncated."
    )
    reason: str
    skipped: bool = Field(description="A bad row: the run skips it (within data_conf.max_bad_rows) or fails on it.")


class PlanProblems(BaseModel):
    total: int
    by_kind: dict[str, int]
    rows: list[PlanProblemRow] = Field(description="The first 1000, by file and line.")


class PlanReport(BaseModel):
    """A pre-flight plan (``dry_run=true``, ``finetuning plan``): what the run would do, measured on its data with its
    own tokenizer, template, masking, filtering and packing. See docs/plan.md for every field."""

    model_config = ConfigDict(extra="allow")

    plan_version: int
    kind: str
    data: dict[str, Any] = Field(description="The files read, and whether counts are extrapolated from a sample.")
    problems: PlanProblems
    statistics: dict[str, Any] = Field(
        description="train (and validation): rows, tokens, mean/p50/p95/max length, truncated, filtered, loss tokens "
        "and their share; packing: rows and efficiency (null unpacked)."
    )
    resolved: dict[str, Any] = Field(
        description="Batch sizes, accumulation and learning rate, as the run resolves them."
    )
    steps: dict[str, Any] = Field(description="Rows per epoch, steps per epoch, total optimizer steps.")
    model: dict[str, Any]
    memory: dict[str, Any] = Field(description="Bytes per device by kind, and a verdict per GPU.")
    time: dict[str, Any] = Field(
        description="FLOPs and durations: the CPU's from a measured throughput, each GPU's from an ASSUMED MFU."
    )
    verdicts: list[str] = Field(description="What would stop or spoil the run, in words.")
    elapsed_s: float


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


def mlflow_run_url(ui_url: str, run_id: str) -> str:
    """The MLflow UI's page of a run known by id alone: ``#/runs/<id>`` finds the run's experiment and redirects to
    its run page (``#/experiments/<experiment>/runs/<id>``)."""
    return f"{ui_url.rstrip('/')}/#/runs/{quote(run_id, safe='')}"


def job_read(job: Job, *, mlflow_ui_url: str | None = None) -> JobRead:
    """The job as the API shows it: credentials masked (:mod:`finetuning.redaction`), links filled in (the MLflow
    UI: ``mlflow_ui_url``, by default the serving app's)."""
    read = JobRead.model_validate(job)
    ui_url = mlflow_ui_url or MLFLOW_UI_URL.get()
    links = JobLinks(mlflow=mlflow_run_url(ui_url, job.mlflow_run_id) if ui_url and job.mlflow_run_id else None)
    lost = LostWork(
        steps=sum(a.lost_steps or 0 for a in read.attempts),
        seconds=round(sum(a.lost_seconds or 0.0 for a in read.attempts), 1),
    )
    return read.model_copy(
        update={
            "config": redact(read.config),
            "resolved": redact(read.resolved),
            "links": links,
            "lost_work": lost,
        }
    )
