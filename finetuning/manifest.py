"""The reproducibility manifest of a run (docs/manifest.md): what it would take to run it again and get the same.

Emitted once per run as a ``manifest`` event (docs/events.md), after the data and the model are resolved:

- ``config``: the config as run, in its YAML form (only what was set, bucket inputs by their ``s3://`` URI), with
  every value the engine chose on its own made concrete (:func:`training_pins`): the seeds, a hub model's commit,
  ``auto`` values, and the training arguments the engine picks for the machine (CPU, liger kernels, activation
  checkpointing, data-loader processes). ``pins`` lists those, by config location;
- ``resolved``: what the engine computed (batch sizes for the world size, learning rate, output folder, the
  checkpoint resumed) and ``training_arguments``, the trainer's arguments as it ran with them;
- ``inputs``: each model, adapter, tokenizer, data and settings file read, with its SHA-256 (a folder: SHA-256 over
  its files' names and hashes) and a hub model's resolved commit;
- ``versions`` of Python and the libraries, ``machine`` (accelerators, world size, host, image) and ``determinism``.

Files are hashed in full, once: a digest is kept in the engine's cache folder (``FINETUNING_CACHE_DIR/hashes``)
under the file's path, size, modification time and inode, so a later run on the same files reads nothing again.
Hashing runs in a thread while the model loads (:class:`InputHashing`), on the process that writes events only.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config.base import StrictModel
from finetuning.config.paths import path_fields, set_field
from finetuning.hashing import HashCache, folder_digest
from finetuning.storage.uri import is_remote

if TYPE_CHECKING:
    from finetuning.events import EventWriter
    from finetuning.settings import EngineSettings

logger = logging.getLogger(__name__)

PROJECT_PACKAGE = "silogen-finetuning"
# the distributions whose versions decide what a run computes (null in the manifest when not installed)
PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "bitsandbytes",
    "datasets",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "liger-kernel",
    "deepspeed",
    "flash-attn",
    "numpy",
    PROJECT_PACKAGE,
)
# training arguments the engine sets itself where the config leaves them unset, from what the machine has
# (finetuning.methods.common.training_arguments, load_trainable_model, sft._gpu_defaults, dpo.preference_arguments)
ENGINE_CHOSEN_ARGS = (
    "use_cpu",
    "bf16",
    "fp16",
    "use_liger_kernel",
    "dataloader_num_workers",
    "dataloader_persistent_workers",
)
# activation checkpointing, under its two names (gradient_checkpointing is transformers' deprecated alias)
CHECKPOINTING_ARGS = ("activation_checkpointing", "gradient_checkpointing")
_Scalar = (bool, int, float, str)


# -- hashing -------------------------------------------------------------------------------------------------------


def _is_resume_checkpoint(loc: str) -> bool:
    # the checkpoint a run resumes is its own output (resolved.resume_from_checkpoint names it), not an input
    return loc.endswith("resume_from_checkpoint")


def _hub_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local hub cache's snapshot folder of ``repo_id`` at ``revision`` (a branch resolves through the cache's
    refs to its commit), or None when the cache does not hold it. Never downloads."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as exc:  # not cached, not a repository, no huggingface_hub: the manifest says so
        logger.info("no local hub snapshot of %s@%s: %s", repo_id, revision or "main", exc)
        return None


def describe_input(
    loc: str, value: str, local_value: str, *, uri: str | None, cache: HashCache, revision: str | None = None
) -> dict[str, Any]:
    """One input: its config location (``param``), the value the config names (``value``: a path, a hub id or the
    ``s3://`` URI), where it was read (``path``), its ``kind`` (``file``, ``folder`` or ``hub``), ``sha256`` and
    ``bytes``; a folder's ``files``; a hub model's ``revision`` (the commit). ``error`` when it could not be hashed."""
    record: dict[str, Any] = {
        "param": loc,
        "value": uri or value,
        "uri": uri,
        "path": None,
        "kind": None,
        "sha256": None,
        "bytes": None,
        "revision": None,
    }
    path = Path(local_value).expanduser()
    try:
        if not path.exists() and not is_remote(local_value):
            snapshot = _hub_snapshot(local_value, revision)
            record["kind"] = "hub"
            if snapshot is None:
                record["error"] = "not in this machine's hub cache: no commit or content hash"
                return record
            record["revision"] = snapshot.name  # snapshots/<commit>
            path = snapshot
        path = path.resolve()
        record["path"] = str(path)
        if path.is_dir():
            record["kind"] = record["kind"] or "folder"
            record.update(folder_digest(path, cache))
        else:
            record["kind"] = "file"
            record.update(sha256=cache.sha256(path), bytes=path.stat().st_size)
    except OSError as exc:
        record["error"] = f"could not be hashed: {exc}"
    return record


def describe_inputs(
    config: StrictModel,
    input_uris: Mapping[str, str],
    cache: HashCache,
    revisions: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Every input of ``config`` (a model, adapter, tokenizer, data or settings file; not the checkpoint a run
    resumes): ``config`` names local copies, ``input_uris`` the ``s3://`` URI each bucket input was fetched from."""
    records = []
    for spec in path_fields(config):
        if spec.marker.use != "input" or spec.unset or spec.value is None or not spec.marker.is_path(spec.value):
            continue
        if _is_resume_checkpoint(spec.loc):
            continue
        records.append(
            describe_input(
                spec.loc,
                spec.value,
                spec.value,
                uri=input_uris.get(spec.loc),
                cache=cache,
                revision=(revisions or {}).get(spec.loc),
            )
        )
    return records


class InputHashing:
    """Hashes a run's inputs in a background thread (started while the model loads, read once it has); a no-op
    where ``enabled`` is false (the processes that write no events)."""

    def __init__(
        self,
        config: StrictModel,
        input_uris: Mapping[str, str],
        settings: EngineSettings,
        *,
        enabled: bool,
        revisions: Mapping[str, str | None] | None = None,
    ) -> None:
        self._records: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if not enabled:
            return
        cache = HashCache(settings.cache_dir / "hashes")

        def work() -> None:
            try:
                self._records = describe_inputs(config, input_uris, cache, revisions)
            except BaseException as exc:  # reported by result(), in the run's own thread
                self._error = exc

        self._thread = threading.Thread(target=work, name="manifest-hashing", daemon=True)
        self._thread.start()

    def result(self) -> list[dict[str, Any]]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._records


# -- versions and machine ------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str | None]:
    """Python and the installed version of each of :data:`PACKAGES` (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def accelerator_info() -> dict[str, Any]:
    """The toolkit torch was built with (``cuda`` or ``hip``, ``cudnn``) and the accelerators this process sees."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info: dict[str, Any] = {
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cudnn": cudnn,
        "gpu_count": 0,
        "gpus": [],
    }
    if torch.cuda.is_available():
        info["gpu_count"] = torch.cuda.device_count()
        gpus = []
        for index in range(info["gpu_count"]):
            props = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
        info["gpus"] = gpus
    return info


def determinism_info() -> dict[str, Any]:
    import torch

    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def machine_info(settings: EngineSettings, *, world_size: int, processes_per_node: int | None) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "image": settings.image,
        "image_revision": settings.image_revision,
        "image_digest": settings.image_digest,
        "world_size": world_size,
        "processes_per_node": processes_per_node,
        **accelerator_info(),
    }


# -- the config made concrete --------------------------------------------------------------------------------------


def training_pins(
    config: Any, training_args: Any, model: Any, inputs: list[dict[str, Any]], *, resume: bool | str | None = None
) -> dict[str, Any]:
    """Config location -> the concrete value the run used, for each value the engine or a library chose: the seeds,
    ``auto`` training arguments, the machine-dependent training arguments the config left to the engine, an
    ``auto`` model dtype, a hub model's commit (``model_args.revision``) and the checkpoint resumed (``resume``:
    false, or its path, for ``auto``/``true``)."""
    pins: dict[str, Any] = {}
    if resume is not None:
        pins["run_conf.resume_from_checkpoint"] = resume
    args_conf = config.training_args
    pins["training_args.seed"] = args_conf.seed
    if getattr(args_conf, "data_seed", None) is not None:
        pins["training_args.data_seed"] = args_conf.data_seed
    for section in ("training_data", "validation_data"):
        seed = getattr(getattr(config.data_conf, section), "seed", None)
        if seed is not None:
            pins[f"data_conf.{section}.seed"] = seed
    fields = type(args_conf).model_fields
    for name in fields:
        if getattr(args_conf, name, None) == "auto":
            value = getattr(training_args, name, "auto")
            if value != "auto" and (value is None or isinstance(value, _Scalar)):
                pins[f"training_args.{name}"] = value
    for name in ENGINE_CHOSEN_ARGS:
        if name in fields and name not in args_conf.model_fields_set and hasattr(training_args, name):
            value = getattr(training_args, name)
            if isinstance(value, _Scalar):
                pins[f"training_args.{name}"] = value
    if not set(CHECKPOINTING_ARGS) & args_conf.model_fields_set:
        name = next(name for name in CHECKPOINTING_ARGS if name in fields)
        value = getattr(training_args, "activation_checkpointing", None)
        if not isinstance(value, bool):
            value = getattr(training_args, "gradient_checkpointing", None)
        if isinstance(value, bool):
            pins[f"training_args.{name}"] = value
    run_conf = config.run_conf
    if run_conf.model_args.dtype == "auto":
        dtype = _loaded_dtype(model)
        if dtype is not None:
            pins["run_conf.model_args.dtype"] = dtype
    pins.update(_revision_pins(inputs, {"run_conf.model": "run_conf.model_args.revision"}))
    return pins


def generate_pins(config: Any, model: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`training_pins` for a generate config: its seed, an ``auto`` dtype, the model's commit."""
    pins: dict[str, Any] = {}
    if config.seed is not None:
        pins["seed"] = config.seed
    if config.model_conf.model_args.dtype == "auto":
        dtype = _loaded_dtype(model)
        if dtype is not None:
            pins["model_conf.model_args.dtype"] = dtype
    pins.update(_revision_pins(inputs, {"model_conf.model": "model_conf.model_args.revision"}))
    return pins


def _loaded_dtype(model: Any) -> str | None:
    config = getattr(model, "config", None)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return None if dtype is None else str(dtype).removeprefix("torch.")


def _revision_pins(inputs: list[dict[str, Any]], revision_of: Mapping[str, str]) -> dict[str, Any]:
    return {
        revision_of[record["param"]]: record["revision"]
        for record in inputs
        if record["param"] in revision_of and record.get("kind") == "hub" and record.get("revision")
    }


def config_as_run(config: StrictModel, input_uris: Mapping[str, str], pins: Mapping[str, Any]) -> dict[str, Any]:
    """The config in its YAML form (only what was set), bucket inputs named by URI again, and ``pins`` applied."""
    data = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for loc, uri in input_uris.items():
        set_field(data, loc, uri)
    for loc, value in pins.items():
        set_field(data, loc, value)
    return data


# -- the event -----------------------------------------------------------------------------------------------------


def emit_manifest(
    events: EventWriter,
    *,
    method: str,
    config: StrictModel,
    input_uris: Mapping[str, str],
    inputs: list[dict[str, Any]],
    pins: Mapping[str, Any],
    resolved: Mapping[str, Any],
    settings: EngineSettings,
    world_size: int = 1,
    processes_per_node: int | None = None,
    training_arguments: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Write the run's ``manifest`` event (a no-op when events are off)."""
    if not events.enabled:
        return None
    seeds = {loc: value for loc, value in pins.items() if loc.endswith("seed")}
    return events.manifest(
        method=method,
        job_id=settings.job_id,
        config=config_as_run(config, input_uris, pins),
        pins=dict(pins),
        seeds=seeds,
        resolved=dict(resolved),
        training_arguments=None if training_arguments is None else dict(training_arguments),
        inputs=inputs,
        versions=package_versions(),
        machine=machine_info(settings, world_size=world_size, processes_per_node=processes_per_node),
        determinism=determinism_info(),
    )


def trainer_arguments(training_args: Any) -> dict[str, Any]:
    """The trainer's arguments as it ran with them (transformers' own ``to_dict``: credentials masked), JSON-safe."""
    try:
        values = training_args.to_dict()
    except Exception as exc:  # a library's to_dict that cannot serialise a value: the manifest says so
        return {"error": f"could not be listed: {exc}"}
    return {
        key: value if value is None or isinstance(value, _Scalar) else _plain(value) for key, value in values.items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, _Scalar):
        return value
    return str(value)
