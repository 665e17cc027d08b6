"""What a job produced, as the API reads it: its metrics as per-step series, a generate job's answers, a training
job's checkpoints (on disk or in a bucket) with the metrics at their step."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from api import repository
from api.errors import ApiError
from api.jobkinds import training_output_dir
from api.services import get_job
from finetuning.checkpoints import list_checkpoints
from finetuning.contract import EventType
from finetuning.storage import S3Uri, StorageError, is_remote
from finetuning.storage import client as storage_client
from jobcore.models import RESUMED_EVENT, TRAINING_KINDS, JobKind, JobStatus


def _series_value(value: Any) -> bool:
    # numbers, and the strings the event format uses for non-finite numbers
    return isinstance(value, int | float) and not isinstance(value, bool) or value in ("NaN", "Infinity", "-Infinity")


MetricKey = tuple[str, str, int]  # (train or eval, name, step)


def job_metrics(session: Session, project: str, job_id: str, *, include_superseded: bool = False) -> dict[str, Any]:
    """Per-step series from the job's ``metrics`` and ``eval`` events: each (split, name, step) once.

    Events are a log, the metrics a series: when a run resumes a checkpoint (a ``resumed`` event), what earlier runs
    logged after that checkpoint's step is superseded, and a later point for a step replaces an earlier one.
    Superseded points are returned only with ``include_superseded``.
    """
    get_job(session, project, job_id)
    # read first: every metrics event up to it is in the series, so a client follows the stream from there
    through = repository.last_event_id(session, project, job_id)
    current: dict[MetricKey, dict[str, Any]] = {}
    superseded: list[tuple[MetricKey, dict[str, Any]]] = []
    summary: dict[str, Any] = {}
    after = 0
    while True:
        events = repository.list_events(
            session, project, job_id, after=after, limit=1000, types=(EventType.METRICS, EventType.EVAL, RESUMED_EVENT)
        )
        for event in events:
            data = event.data
            if event.type == RESUMED_EVENT:
                from_step = data.get("from_step")
                if isinstance(from_step, int):
                    for key in [k for k in current if k[2] > from_step]:
                        superseded.append((key, current.pop(key)))
                continue
            step = data.get("step")
            if not isinstance(step, int):
                continue
            if event.type == EventType.EVAL:
                split, values = "eval", dict(data.get("metrics") or {})
            else:
                extra = dict(data.get("extra") or {})
                core = {k: data.get(k) for k in ("loss", "learning_rate", "grad_norm", "tokens_per_second")}
                if all(value is None for value in core.values()):
                    summary.update(extra)  # the trainer's end-of-run summary (docs/events.md), not a step's values
                    continue
                split, values = "train", {**core, "epoch": data.get("epoch"), **extra}
            for name, value in values.items():
                if not _series_value(value):
                    continue
                key = (split, name, step)
                if key in current:
                    superseded.append((key, current[key]))
                current[key] = {"step": step, "value": value, "attempt": event.attempt}
        if len(events) < 1000:
            break
        after = events[-1].id
    result: dict[str, Any] = {**_series(current.items()), "summary": summary, "through_event_id": through}
    if include_superseded:
        result["superseded"] = _series(superseded)
    return result


def _series(points: Iterable[tuple[MetricKey, dict[str, Any]]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {"train": {}, "eval": {}}
    for (split, name, _step), point in points:
        out[split].setdefault(name, []).append(point)
    for series in out.values():
        for name in series:
            series[name].sort(key=lambda point: (point["step"], point["attempt"] or 0))
    return out


def job_output_location(session: Session, project: str, job_id: str) -> str:
    """Where a succeeded generate job's answers are: a YAML file, or an object in the artifact bucket."""
    job = get_job(session, project, job_id)
    if job.kind != JobKind.GENERATE:
        raise ApiError(404, "no_output", f"job {job.id} is a {job.kind} job; only generate jobs have an output")
    if job.status != JobStatus.SUCCEEDED:
        raise ApiError(409, "job_not_succeeded", f"job {job.id} is {job.status}; its output exists once it succeeded")
    location = (job.artifacts or {}).get("output")
    if not isinstance(location, str) or not (is_remote(location) or Path(location).is_file()):
        raise ApiError(404, "no_output", f"the output file of job {job.id} is missing")
    return location


def read_output_bytes(location: str) -> bytes:
    """The output file's bytes (blocking: call it in a thread)."""
    if not is_remote(location):
        return Path(location).read_bytes()
    try:
        return storage_client.get_bytes(S3Uri.parse(location))
    except StorageError as exc:
        status = 404 if exc.code == "storage_object_not_found" else 503
        raise ApiError(status, "no_output" if status == 404 else "storage_unavailable", exc.message) from None


def parse_output(content: bytes) -> Any:
    try:
        return yaml.safe_load(content.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ApiError(409, "invalid_output", "the output file is not valid YAML") from None


def list_job_checkpoints(
    session: Session, project: str, job_id: str, *, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A training job's checkpoints by step (after step ``after``), each with the metrics logged at its step; the
    cursor of the next page."""
    job = get_job(session, project, job_id)
    output_dir = training_output_dir(job)
    if job.kind not in TRAINING_KINDS or output_dir is None:
        return [], None
    try:
        found = [c for c in list_checkpoints(output_dir) if c.step > after]
    except StorageError as exc:
        raise ApiError(503, "storage_unavailable", exc.message) from None
    page = found[:limit]
    series = job_metrics(session, project, job_id) if page else {"train": {}, "eval": {}}
    steps = {c.step for c in page}
    at_step: dict[int, dict[str, dict[str, Any]]] = {step: {"train": {}, "eval": {}} for step in steps}
    for split in ("train", "eval"):
        for name, points in series[split].items():
            for point in points:
                if point["step"] in steps:
                    at_step[point["step"]][split][name] = point["value"]
    rows = [
        {
            "step": c.step,
            "name": c.name,
            "complete": c.complete,
            "created_at": c.created_at,
            "size_bytes": c.size_bytes,
            "location": c.location,
            "metrics": {split: values for split, values in at_step[c.step].items() if values},
        }
        for c in page
    ]
    return rows, (page[-1].step if len(found) > limit else None)
