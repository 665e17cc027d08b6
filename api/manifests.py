"""A job's reproducibility manifest (docs/manifest.md) as the API serves it, and a rerun from it.

The engine writes the manifest (a ``manifest`` event, :mod:`finetuning.manifest`) once per run, after its data and
model are loaded; the worker stores it with the job's other events. ``GET /v1/jobs/{id}/manifest`` serves the newest
run's, with warnings where the job's runs, or a rerun and the job it reruns, disagree. ``POST /v1/jobs/{kind}?
from_manifest=<id>`` submits the earlier job's config as it ran (its stored config with the manifest's concrete
values applied), after checking that the local files it read are still the same.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api import repository
from api.errors import ApiError, ErrorIssue, not_found
from finetuning.config.paths import set_field
from finetuning.contract import EVENTS_VERSION, EventType
from finetuning.redaction import SECRET_REFERENCE, redact
from jobcore.models import TRAINING_KINDS, Job, JobKind, JobStatus

MANIFEST_KINDS = (JobKind.SFT, JobKind.DPO, JobKind.GRPO, JobKind.GENERATE)
"""The kinds whose engine writes a manifest; merge and adapter conversion are described by their config and inputs."""
# a file up to this size is hashed when a rerun is submitted; a larger one is compared by size there, and by hash
# when the rerun's manifest is written (its warnings)
VERIFY_HASH_MAX_BYTES = 64 * 1024 * 1024
_ENVELOPE = ("v", "seq", "time", "type", "attempt")
_WATCHED_VERSIONS = ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets")


def _kinds_with_manifests() -> str:
    return ", ".join(kind.value for kind in MANIFEST_KINDS)


def manifest_events(session: Session, project: str, job_id: str) -> list[tuple[int | None, datetime, dict[str, Any]]]:
    """(attempt, stored at, data) of each ``manifest`` event of the job, oldest first."""
    rows = repository.list_events(session, project, job_id, limit=1000, types=(EventType.MANIFEST,))
    return [(row.attempt, row.created_at, row.data) for row in rows if row.data.get("v") == EVENTS_VERSION]


def _no_manifest(job: Job) -> ApiError:
    if JobKind(job.kind) not in MANIFEST_KINDS:
        return ApiError(
            404,
            "no_manifest",
            f"job {job.id} is a {job.kind} job: only {_kinds_with_manifests()} jobs have a manifest (a {job.kind} "
            "job is described by its config and inputs: GET /v1/jobs/{job_id})",
        )
    if JobStatus(job.status).terminal:
        return ApiError(
            404,
            "manifest_not_ready",
            f"job {job.id} {job.status} before its data and model were loaded, so it wrote no manifest",
        )
    return ApiError(
        404,
        "manifest_not_ready",
        f"job {job.id} is {job.status} (phase {job.phase or 'none yet'}): its manifest is written once its data and "
        "model are loaded; ask again then",
    )


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in _ENVELOPE}


def _job(session: Session, project: str, job_id: str) -> Job:
    job = repository.get_job(session, project, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def job_manifest(session: Session, project: str, job_id: str) -> dict[str, Any]:
    """The newest manifest of the job, with ``warnings``; 404 ``no_manifest`` for kinds without one and
    ``manifest_not_ready`` while the job has not written one."""
    job = _job(session, project, job_id)
    manifests = manifest_events(session, project, job.id)
    if not manifests:
        raise _no_manifest(job)
    attempt, stored_at, data = manifests[-1]
    warnings: list[str] = []
    first_attempt, _, first = manifests[0]
    if len(manifests) > 1:
        for difference in differences(first, data):
            warnings.append(f"attempt {first_attempt} and attempt {attempt} of this job differ: {difference}")
    rerun_of = (job.resolved or {}).get("rerun_of")
    if isinstance(rerun_of, str):
        original = repository.get_job(session, project, rerun_of)
        earlier = manifest_events(session, project, rerun_of) if original is not None else []
        if earlier:
            for difference in differences(earlier[0][2], data):
                warnings.append(f"differs from job {rerun_of}, which it reruns: {difference}")
    time = data.get("time")
    recorded_at = datetime.fromisoformat(time.replace("Z", "+00:00")) if isinstance(time, str) else stored_at
    # stored masked already (the engine and the worker mask credentials); masked again, as every answer is
    return {
        **redact(_fields(data)),
        "job_id": job.id,
        "kind": job.kind,
        "attempt": attempt,
        "recorded_at": recorded_at,
        "rerun_of": rerun_of if isinstance(rerun_of, str) else None,
        "warnings": warnings,
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two manifests that would change what a run computes: an input's content or commit, a
    library's version, the image, the accelerators or the world size."""
    found: list[str] = []
    old_inputs = {r.get("param"): r for r in before.get("inputs") or [] if isinstance(r, dict)}
    for record in after.get("inputs") or []:
        if not isinstance(record, dict):
            continue
        old = old_inputs.get(record.get("param"))
        if old is None:
            continue
        for key in ("sha256", "revision"):
            if old.get(key) != record.get(key):
                where = f"{record.get('param')} ({record.get('value')})"
                found.append(f"{where}: {key} {old.get(key)} -> {record.get(key)}")
                break
    old_versions, new_versions = before.get("versions") or {}, after.get("versions") or {}
    for name in sorted(set(old_versions) | set(new_versions)):
        if old_versions.get(name) != new_versions.get(name):
            found.append(f"{name} {old_versions.get(name)} -> {new_versions.get(name)}")
    old_machine, new_machine = before.get("machine") or {}, after.get("machine") or {}
    for key in ("image_digest", "image", "cuda", "hip", "world_size"):
        if old_machine.get(key) != new_machine.get(key):
            found.append(f"machine.{key} {old_machine.get(key)} -> {new_machine.get(key)}")
    old_gpus = [g.get("name") for g in old_machine.get("gpus") or [] if isinstance(g, dict)]
    new_gpus = [g.get("name") for g in new_machine.get("gpus") or [] if isinstance(g, dict)]
    if old_gpus != new_gpus:
        found.append(f"machine.gpus {old_gpus} -> {new_gpus}")
    return found


# -- a rerun ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerunSource:
    """What a rerun takes from the job it reruns beside its config: where it ran and how it was named."""

    job_id: str
    queue: str
    name: str | None
    labels: dict[str, str]
    nodes: int | None
    processes_per_node: int | None


@dataclass
class Rerun:
    """A rerun's body (what a submission's body would have been) and what the job records about it."""

    job_id: str
    data: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def rerun_source(session: Session, project: str, kind: JobKind, job_id: str) -> RerunSource:
    """The job a rerun names (404 ``not_found`` unless it is the caller project's), of the same kind (else 422
    ``manifest_kind_mismatch``)."""
    job = _job(session, project, job_id)
    if job.kind != kind:
        raise ApiError(
            422,
            "manifest_kind_mismatch",
            f"job {job.id} is a {job.kind} job, not {kind.value}: rerun it with POST /v1/jobs/{job.kind}?"
            f"from_manifest={job.id}",
            "from_manifest",
        )
    resolved = job.resolved or {}
    nodes = resolved.get("nodes")
    processes = resolved.get("processes_per_node") or resolved.get("num_processes")
    return RerunSource(
        job_id=job.id,
        queue=job.queue,
        name=job.name,
        labels=dict(job.labels or {}),
        nodes=nodes if isinstance(nodes, int) else None,
        processes_per_node=processes if isinstance(processes, int) else None,
    )


def refuse_body(body: bytes, job_id: str) -> None:
    """A rerun takes its config from the manifest: a body (other than an empty one or ``{}``) is refused."""
    if body.strip() in (b"", b"{}"):
        return
    raise ApiError(
        422,
        "body_not_allowed",
        f"from_manifest reruns job {job_id} with its config as it ran: send no body. To change something, take "
        f"`config` from GET /v1/jobs/{job_id}/manifest, edit it and submit it as a new job",
        "from_manifest",
    )


def rerun(session: Session, project: str, kind: JobKind, job_id: str, *, allow_changed_inputs: bool) -> Rerun:
    """The body that reruns ``job_id``: its stored config (paths as it ran them, secrets as references), with the
    newest manifest's concrete values (``pins``) applied, without its output folder (the new job gets its own) and
    with the checkpoint it resumed from as submitted (a rerun starts from the beginning, as its job did).

    The local files the manifest hashed are compared with what is there now: a changed size or (up to
    :data:`VERIFY_HASH_MAX_BYTES`) a changed hash is a 409 ``inputs_changed`` unless ``allow_changed_inputs``."""
    job = _job(session, project, job_id)
    rerun_source(session, project, kind, job_id)  # the kind check
    manifests = manifest_events(session, project, job.id)
    if not manifests:
        error = _no_manifest(job)
        status = 404 if error.code == "no_manifest" else 409
        raise ApiError(status, error.code, error.message, "from_manifest")
    manifest = manifests[-1][2]
    resolved = job.resolved or {}
    data = copy.deepcopy(resolved.get("config") or job.config or {})
    for loc, value in (manifest.get("pins") or {}).items():
        set_field(data, loc, value)
    if kind in TRAINING_KINDS:
        set_field(data, "training_args.output_dir", None)  # the job's own folder, chosen at submission
        run_conf = data.setdefault("run_conf", {})
        submitted = (job.config or {}).get("run_conf", {}).get("resume_from_checkpoint")
        if submitted is None:
            run_conf.pop("resume_from_checkpoint", None)
        else:
            run_conf["resume_from_checkpoint"] = submitted
    env_secrets = resolved.get("env_secrets")
    if isinstance(env_secrets, dict) and env_secrets:
        data["env_secrets"] = {
            variable: match.group(1)
            for variable, reference in env_secrets.items()
            if isinstance(reference, str) and (match := SECRET_REFERENCE.fullmatch(reference))
        }
    changed, unverified = verify_inputs(manifest)
    if changed and not allow_changed_inputs:
        raise ApiError(
            409,
            "inputs_changed",
            f"{len(changed)} input(s) of job {job.id} changed since it ran, first {changed[0].param}: "
            f"{changed[0].message}. Rerun with allow_changed_inputs=true to train on them as they are now",
            "from_manifest",
            details=changed,
        )
    warnings = [f"{issue.param}: changed since job {job.id} ran ({issue.message})" for issue in changed]
    if unverified:
        warnings.append(
            "not compared before queueing (a bucket object, or a file over "
            f"{VERIFY_HASH_MAX_BYTES // (1024 * 1024)} MiB of the same size): {', '.join(unverified)}; the rerun's "
            "manifest warns if they differ"
        )
    return Rerun(job.id, data, warnings)


def verify_inputs(manifest: dict[str, Any]) -> tuple[list[ErrorIssue], list[str]]:
    """(changed, not compared): each local file or folder the manifest hashed, compared with what is there now by
    size, and by hash up to :data:`VERIFY_HASH_MAX_BYTES` per file. A missing one is left to the submission's own
    check (a 422 naming the field)."""
    changed: list[ErrorIssue] = []
    unverified: list[str] = []
    for record in manifest.get("inputs") or []:
        if not isinstance(record, dict) or not isinstance(record.get("param"), str):
            continue
        param, path = record["param"], record.get("path")
        if record.get("uri") or record.get("kind") == "hub" or not isinstance(path, str):
            if record.get("uri"):
                unverified.append(param)
            continue  # a hub model is pinned to its commit
        root = Path(path)
        if record.get("kind") == "file":
            files = {"": {"sha256": record.get("sha256"), "bytes": record.get("bytes")}}
        else:
            files = record.get("files") or {}
        problem, skipped = _compare(root, files)
        if problem:
            changed.append(ErrorIssue(param=param, message=problem))
        elif skipped:
            unverified.append(param)
    return changed, unverified


def _compare(root: Path, files: dict[str, Any]) -> tuple[str | None, bool]:
    """(what differs or None, whether a file was compared by size only)."""
    if not root.exists():
        return None, False
    skipped = False
    if root.is_dir():
        from finetuning.hashing import folder_files

        now = {p.relative_to(root).as_posix() for p in folder_files(root)}
        if now != set(files):
            added, gone = sorted(now - set(files)), sorted(set(files) - now)
            return f"its files differ (new: {', '.join(added) or 'none'}; gone: {', '.join(gone) or 'none'})", False
    for name, entry in sorted(files.items()):
        path = root / name if name else root
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{name or 'the file'}: {entry.get('bytes')} bytes then, {size} now", False
        if size > VERIFY_HASH_MAX_BYTES:
            skipped = True
            continue
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != entry.get("sha256"):
            return f"{name or 'the file'}: sha256 {entry.get('sha256')} then, {digest} now", False
    return None, skipped
