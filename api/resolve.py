"""From a submitted body to what a worker runs: parse (JSON or YAML), validate with the engine's schema, and resolve
every file the config names (an allowed local path, a hub id, or an earlier job's output), so that a missing or
forbidden input is refused at submission instead of being discovered after queueing.

Which fields name files comes from the schema: each is typed with a path type of :mod:`finetuning.config.paths`,
whose marker says how it is used, and :func:`~finetuning.config.paths.path_fields` finds every one in a config.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from api import repository
from api.errors import ApiError, ErrorIssue
from api.jobkinds import DEFAULT_ARTIFACT, REQUEST_MODELS, parse_job_reference, training_output_dir
from finetuning.checkpoints import list_checkpoints
from finetuning.config import ConfigError, DPOConfig, GenerateConfig, SFTConfig, StrictModel, safe_yaml
from finetuning.config.paths import PathField, path_fields, set_field
from finetuning.storage import InvalidUri, S3Uri, StorageError, bucket_inputs, is_remote
from jobcore.models import TRAINING_KINDS, Job, JobKind, JobStatus
from jobcore.settings import ServiceSettings

YAML_MEDIA_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
# A YAML body is at most max_body_bytes, but anchors and aliases can still expand it enormously.
MAX_YAML_NODES = safe_yaml.MAX_YAML_VALUES
# What a hub id looks like (org/name or name); anything else that is not on disk is an error, never a download.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
# the worker writes their config as the engine's YAML
ENGINE_YAML_KINDS = (JobKind.SFT, JobKind.DPO, JobKind.GRPO, JobKind.GENERATE)
# What a tracking URI that names a local store (a folder or a SQLite file) starts with
LOCAL_STORE_PREFIXES = ("file:", "sqlite:", "/", ".", "~")
_CHOSEN_BY_THE_SERVICE = "names a file or folder, which this service chooses itself: leave it out"


def parse_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request body as a mapping: JSON by default, YAML when the Content-Type says so."""
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    is_yaml = media_type in YAML_MEDIA_TYPES
    if not is_yaml and media_type != "application/json" and not media_type.endswith("+json"):
        # refusing form and text bodies also keeps browsers from posting jobs cross-site
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {media_type} is not accepted: send application/json or application/yaml",
            "Content-Type",
        )
    if not body.strip():
        raise ApiError(422, "invalid_body", "the body is empty: send the job's config")
    try:
        data = _load_yaml(body) if is_yaml else json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, "invalid_body", f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except yaml.YAMLError as exc:
        raise ApiError(422, "invalid_body", f"the body is not valid YAML: {exc}") from None
    except Exception as exc:
        # PyYAML's safe loader raises more than YAMLError on bad input: ValueError (2024-13-45), IndexError
        # ('!!int '), KeyError ('!!bool '), AttributeError ('!!timestamp x'); and nesting too deep: RecursionError
        raise ApiError(422, "invalid_body", f"the body could not be read: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise ApiError(422, "invalid_body", f"the body must be a mapping of config sections, not {got}")
    _refuse_unstorable_text(data)
    return data


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired surrogate (e.g. \\ud800 in JSON)"
    return None


def _refuse_unstorable_text(data: dict[str, Any]) -> None:
    """A key or string with a NUL character or an unpaired surrogate is refused (422 naming its path): no path or
    name holds one, and Postgres cannot store it (the config is kept as JSONB), so it would otherwise be a 500."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        loc, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            child = f"{loc}[{key}]" if isinstance(key, int) else f"{loc}.{key}" if loc else str(key)
            problem = (_unstorable(key) if isinstance(key, str) else None) or (
                _unstorable(value) if isinstance(value, str) else None
            )
            if problem:
                param = child.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
                raise ApiError(422, "invalid_body", f"{param}: {problem} is not accepted", param)
            stack.append((child, value))


def _load_yaml(body: bytes) -> Any:
    # the engine's loader, shared with the CLI: an alias bomb raises a yaml.YAMLError (-> 422 invalid_body)
    return safe_yaml.safe_load(body, max_values=MAX_YAML_NODES)


def validate_config(kind: JobKind, data: dict[str, Any]) -> StrictModel:
    """The engine's own validation: a 422 listing every issue, each with its field path."""
    try:
        return REQUEST_MODELS[kind].validate_config(data)
    except ConfigError as exc:
        issues = [ErrorIssue(param=issue.loc or None, message=issue.message) for issue in exc.issues]
    except (RecursionError, TypeError, ValueError) as exc:
        issues = [ErrorIssue(param=None, message=f"the config could not be validated: {exc}")]
    first = issues[0]
    message = f"{first.param}: {first.message}" if first.param else first.message
    if len(issues) > 1:
        message = f"invalid config ({len(issues)} problems); first: {message}"
    raise ApiError(422, "invalid_config", message, first.param, details=issues)


@dataclass
class Plan:
    """What a validated submission resolved to."""

    submitted: dict[str, Any]  # the config as submitted (validated, only what the user set)
    config: dict[str, Any]  # what the worker runs: paths resolved, outputs forced (see plan_submission)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    training_config: dict[str, Any] | None = None
    overridden: dict[str, Any] = field(default_factory=dict)  # user values the service replaced


@dataclass
class _Problem:
    status: int
    code: str
    param: str
    message: str


class _Resolver:
    def __init__(
        self, session: Session, settings: ServiceSettings, project: str, kind: JobKind, output_dir: Path | S3Uri
    ) -> None:
        self.session = session
        self.settings = settings
        self.project = project
        self.kind = kind
        self.output_dir = output_dir  # the job's own output folder
        self.problems: list[_Problem] = []

    def fail(self, status: int, code: str, param: str, message: str) -> None:
        self.problems.append(_Problem(status, code, param, message))

    def raise_problems(self) -> None:
        if not self.problems:
            return
        # a 409 (an input job not finished yet) only when nothing is plainly invalid
        status = 422 if any(p.status == 422 for p in self.problems) else 409
        first = next(p for p in self.problems if p.status == status)
        details = [ErrorIssue(param=p.param, message=p.message) for p in self.problems]
        raise ApiError(status, first.code, f"{first.param}: {first.message}", first.param, details=details)

    def local(self, loc: str, value: str, *, want_dir: bool) -> str | None:
        """The real path of ``value`` if it lies under an allowed root and exists as needed."""
        if "\x00" in value or not value.strip():
            self.fail(422, "invalid_path", loc, "not a valid path: empty or with a NUL character")
            return None
        path = Path(os.path.realpath(os.path.expanduser(value)))  # follows symlinks and '..' before the check
        roots = self.settings.roots
        if not any(path.is_relative_to(root) for root in roots):
            allowed = ", ".join(str(r) for r in roots)
            self.fail(422, "path_not_allowed", loc, f"'{value}' is outside the allowed roots ({allowed})")
            return None
        try:
            if want_dir and not path.is_dir():
                what = "is a file; a folder is needed" if path.exists() else "does not exist (no such folder)"
                self.fail(422, "path_not_found", loc, f"'{value}' {what}")
                return None
            if not want_dir and not path.is_file():
                what = "is a folder; a file is needed" if path.exists() else "does not exist (no such file)"
                self.fail(422, "path_not_found", loc, f"'{value}' {what}")
                return None
        except OSError as exc:  # e.g. a name longer than the file system allows (ENAMETOOLONG)
            self.fail(422, "invalid_path", loc, f"not a usable path: {exc.strerror or type(exc).__name__}")
            return None
        return str(path)

    def remote(self, loc: str, value: str, *, want_dir: bool, model: bool = False) -> str | None:
        """``value`` (``s3://bucket/key``, normalised) if it lies under an allowed bucket root and the object (a file)
        or the prefix (a folder; a model's holds its config) is there. Checked now, not after queueing."""
        try:
            uri = S3Uri.parse(value)
        except InvalidUri as exc:
            self.fail(422, "invalid_path", loc, str(exc))
            return None
        roots = self.settings.bucket_roots
        if not any(uri.is_within(root) for root in roots):
            allowed = ", ".join(str(r) for r in roots) or "none: this service allows no bucket locations"
            self.fail(422, "path_not_allowed", loc, f"'{uri}' is outside the allowed roots ({allowed})")
            return None
        try:
            bucket_inputs.check(uri, folder=want_dir, model=model)
        except StorageError as exc:
            self.fail(422, exc.code, loc, exc.message)
            return None
        return str(uri)

    def stored(self, spec: PathField, location: str) -> str | None:
        """Where an earlier job's output is (a folder or a bucket location), checked as any input is."""
        want_dir = spec.marker.target == "dir"
        if is_remote(location):
            return self.remote(spec.loc, location, want_dir=want_dir)
        return self.local(spec.loc, location, want_dir=want_dir)

    def model(self, loc: str, value: str) -> str | None:
        """A model, adapter or tokenizer: a local folder, or a hub id where the service allows them."""
        if HUB_ID.match(value) and not os.path.lexists(os.path.expanduser(value)):
            if self.settings.allow_hub_models:
                return value
            self.fail(
                422,
                "hub_models_disabled",
                loc,
                f"'{value}' is not a local folder, and this service does not load hub models (allow_hub_models is "
                "off): give a folder under the allowed roots or job:<id> of an earlier job",
            )
            return None
        return self.local(loc, value, want_dir=True)

    def reference(self, spec: PathField, value: str, plan: Plan) -> str | None:
        ref = parse_job_reference(value)
        if ref is None:
            self.fail(422, "invalid_job_reference", spec.loc, f"'{value}' is not job:<id>[/<artifact>]")
            return None
        job = repository.get_job(self.session, self.project, ref.job_id)
        if job is None:
            self.fail(422, "job_not_found", spec.loc, f"job {ref.job_id} not found")
            return None
        if ref.artifact is not None and ref.artifact.startswith("checkpoint-"):
            return self.checkpoint(spec, job, ref.artifact, plan)
        if job.status != JobStatus.SUCCEEDED:
            self.fail(
                409,
                "job_not_succeeded",
                spec.loc,
                f"job {job.id} is {job.status}; only a succeeded job's output can be used",
            )
            return None
        artifact = ref.artifact or DEFAULT_ARTIFACT[JobKind(job.kind)]
        source = (job.artifacts or {}).get(artifact)
        if not isinstance(source, str):
            has = ", ".join(sorted(job.artifacts or {})) or "none"
            self.fail(422, "artifact_not_found", spec.loc, f"job {job.id} has no artifact '{artifact}' (it has: {has})")
            return None
        path = self.stored(spec, source)
        if path is not None:
            plan.inputs[spec.loc] = {"job_id": job.id, "artifact": artifact, "path": path}
            # the training config of the job whose adapter is converted (not of a job a nested field names)
            if self.kind == JobKind.ADAPTER_CONVERSION and spec.loc == "adapter" and job.kind in TRAINING_KINDS:
                plan.training_config = (job.resolved or {}).get("config") or job.config
        return path

    def checkpoint(self, spec: PathField, job: Job, name: str, plan: Plan) -> str | None:
        """``job:<id>/checkpoint-<step>``: a complete checkpoint of a training job, whatever the job's status (a
        running or cancelled job's saved checkpoints are as usable as a finished one's)."""
        output_dir = training_output_dir(job)
        found = None
        if job.kind in TRAINING_KINDS and output_dir is not None:
            try:
                found = next((c for c in list_checkpoints(output_dir) if c.name == name), None)
            except StorageError as exc:
                self.fail(422, exc.code, spec.loc, exc.message)
                return None
        if found is None or not found.complete:
            what = "was not saved completely" if found is not None else "does not exist"
            self.fail(
                422,
                "checkpoint_not_found",
                spec.loc,
                f"{name} of job {job.id} {what}: GET /v1/jobs/{job.id}/checkpoints lists the complete ones",
            )
            return None
        location = self.stored(spec, found.location)
        if location is not None:
            plan.inputs[spec.loc] = {"job_id": job.id, "artifact": name, "path": location}
        return location

    def path_field(self, spec: PathField, plan: Plan) -> None:
        """One marked field, as its marker's ``use`` says (see :class:`finetuning.config.paths.PathMarker`)."""
        marker, value = spec.marker, spec.value
        if marker.use == "output":
            # outputs always go to the job's own folder, whatever the body said, so jobs cannot overwrite each other
            output_dir = str(self.output_dir)
            if spec.explicit and value is not None and value != output_dir:
                plan.overridden[spec.loc] = value
            set_field(plan.config, spec.loc, output_dir)
            return
        if value is None or spec.unset or not marker.is_path(value):
            return
        if marker.use == "service":
            self.service_place(spec.loc, value, uri=marker.target == "uri")
        elif marker.use == "inside":
            self.inside(spec.loc, value, marker.within)
        else:
            if marker.job_output and value.startswith("job:"):
                resolved = self.reference(spec, value, plan)
            elif is_remote(value):
                resolved = self.remote(spec.loc, value, want_dir=marker.target == "dir", model=marker.hub_id)
            elif marker.hub_id:
                resolved = self.model(spec.loc, value)
            else:
                resolved = self.local(spec.loc, value, want_dir=marker.target == "dir")
            if resolved is not None:
                set_field(plan.config, spec.loc, resolved)

    def service_place(self, loc: str, value: str, *, uri: bool) -> None:
        """A place the service chooses itself (a cache, an offload folder, a tracking store): not one a request
        names. A URI is refused only when it names a local store; a server's address is fine."""
        if not uri:
            name = loc.rsplit(".", 1)[-1]
            self.fail(422, "path_not_allowed", loc, f"{name} {_CHOSEN_BY_THE_SERVICE}")
        elif value.lower().startswith(LOCAL_STORE_PREFIXES):
            self.fail(
                422,
                "path_not_allowed",
                loc,
                "a local store (a folder or a SQLite file) is not accepted here: give a tracking server's address",
            )

    def inside(self, loc: str, value: str, within: str) -> None:
        """A name joined to another folder (the model's, the output folder) stays inside it."""
        path = Path(value)
        if path.is_absolute() or ".." in path.parts or value.startswith("~") or "\\" in value:
            message = f"'{value}' must be a relative folder inside {within}, without '..'"
            self.fail(422, "path_not_allowed", loc, message)


def _model_args_loc(config: StrictModel) -> tuple[str, bool] | None:
    if isinstance(config, SFTConfig | DPOConfig):
        return "run_conf.model_args.trust_remote_code", config.run_conf.model_args.trust_remote_code
    if isinstance(config, GenerateConfig):
        return "model_conf.model_args.trust_remote_code", config.model_conf.model_args.trust_remote_code
    return None


# the endings of from_pretrained keywords that name files or folders: an extra key (not in the schema, so not marked)
# with one is not accepted from a request at all
_PATH_LIKE = ("_dir", "_folder", "_file", "_path")


def _check_model_args(resolver: _Resolver, config: StrictModel) -> None:
    """``model_args`` become ``from_pretrained`` keyword arguments: none of them may name a place outside the model.

    Its declared fields that name places are marked in the schema and checked with every other path field
    (``subfolder`` stays inside the model; ``cache_dir`` and ``offload_folder`` are the service's to choose); extra
    keys pass through to the loader, so a path-like one is refused here.
    """
    if isinstance(config, SFTConfig | DPOConfig):
        section, model_args = "run_conf.model_args", config.run_conf.model_args
    elif isinstance(config, GenerateConfig):
        section, model_args = "model_conf.model_args", config.model_conf.model_args
    else:
        return
    for key, value in (model_args.model_extra or {}).items():
        if value is not None and key.endswith(_PATH_LIKE):
            resolver.fail(
                422,
                "path_not_allowed",
                f"{section}.{key}",
                f"{key} {_CHOSEN_BY_THE_SERVICE}",
            )


# training_args sections that may be given inline as a dict, read by DeepSpeed, FSDP or accelerate: a path-like key
# in them names a place the library writes or reads (an NVMe offload folder, a monitor's output file)
_LIBRARY_SETTINGS = ("deepspeed", "fsdp_config", "accelerator_config")


def _check_library_settings(resolver: _Resolver, config: StrictModel) -> None:
    """Inline DeepSpeed / FSDP / accelerate settings are free-form (not in the schema, so not marked): a path-like key
    anywhere in them is refused (a DeepSpeed ``nvme_path`` would make the job write swap files wherever it says)."""
    args = getattr(config, "training_args", None)
    for name in _LIBRARY_SETTINGS:
        value = getattr(args, name, None)
        if isinstance(value, dict):
            for loc in _path_like_keys(value, f"training_args.{name}"):
                resolver.fail(422, "path_not_allowed", loc, f"{loc.rsplit('.', 1)[-1]} {_CHOSEN_BY_THE_SERVICE}")


def _path_like_keys(value: Any, loc: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith(_PATH_LIKE) and isinstance(item, str) and item:
                yield f"{loc}.{key}"
            else:
                yield from _path_like_keys(item, f"{loc}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _path_like_keys(item, f"{loc}[{index}]")


def plan_submission(
    session: Session, settings: ServiceSettings, project: str, kind: JobKind, config: StrictModel, job_id: str
) -> Plan:
    """Resolve a validated config for job ``job_id``; raises one error listing every problem found."""
    # A config the engine reads as YAML keeps only what the user set: the engine applies its defaults again, and
    # some sections mean "what was set" (model_args become from_pretrained keyword arguments, where an explicit None
    # is not the library's default). Merge and conversion requests become command-line arguments: every field.
    plan = Plan(
        submitted=config.model_dump(mode="json", by_alias=True, exclude_unset=True),
        config=config.model_dump(mode="json", by_alias=True, exclude_unset=kind in ENGINE_YAML_KINDS),
    )
    resolver = _Resolver(session, settings, project, kind, settings.job_outputs(job_id) / "output")
    remote_code = _model_args_loc(config)
    if remote_code is not None and remote_code[1] and not settings.allow_trust_remote_code:
        resolver.fail(
            422,
            "trust_remote_code_disabled",
            remote_code[0],
            "this service does not run model repositories' own code (allow_trust_remote_code is off)",
        )
    _check_model_args(resolver, config)
    _check_library_settings(resolver, config)
    for spec in path_fields(config):
        resolver.path_field(spec, plan)
    resolver.raise_problems()
    return plan
