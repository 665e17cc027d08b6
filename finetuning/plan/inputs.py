"""A plan's bucket inputs made local, without the weights: every data or settings file named ``s3://...`` is fetched
through the machine's download cache (the run that follows finds it there), and every folder (model, tokenizer,
adapter, checkpoint) becomes a local view of its small files only (configs, tokenizer files, templates), each fetched
through the same cache. A plan builds the model on the ``meta`` device and never reads a weight, so planning a 70B
model from a bucket costs kilobytes, not its 140 GB.

Reports name the bucket URIs, never the local copies: :func:`local_inputs` returns the local path -> URI map."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TypeVar

from finetuning.config.base import StrictModel
from finetuning.config.paths import set_field
from finetuning.settings import EngineSettings
from finetuning.storage.client import StorageError, list_objects
from finetuning.storage.inputs import remote_inputs
from finetuning.storage.places import readable
from finetuning.storage.uri import S3Uri

ConfigT = TypeVar("ConfigT", bound=StrictModel)

# files a plan never reads: weights and optimizer state in the formats a model, adapter or checkpoint folder holds
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz")


def local_inputs(config: ConfigT, settings: EngineSettings) -> tuple[ConfigT, dict[str, str]]:
    """``config`` with each bucket input replaced by a local copy (a folder: without its weights), and the map from
    each local file path back to the URI it came from."""
    remote = remote_inputs(config)
    if not remote:
        return config, {}
    data = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    originals: dict[str, str] = {}
    for loc, (value, folder) in remote.items():
        local = _light_folder(value, settings) if folder else readable(value, folder=False, settings=settings)
        originals[local] = value
        set_field(data, loc, local)
    return type(config).model_validate(data), originals


def _light_folder(value: str, settings: EngineSettings) -> str:
    """A local folder of links to the cached copies of the objects below ``value``, weights left out."""
    uri = S3Uri.parse(value)
    view = settings.staging / "plan-inputs" / hashlib.sha256(value.encode()).hexdigest()[:24]
    found = False
    for info in list_objects(uri):
        found = True
        relative = info.key[len(uri.prefix) :]
        if not relative or relative.endswith(WEIGHT_SUFFIXES):
            continue
        local = Path(readable(f"s3://{uri.bucket}/{info.key}", folder=False, settings=settings))
        link = view / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() != local.resolve():
            link.unlink()  # the object changed since the last plan: its new copy
        if not link.is_symlink():
            link.symlink_to(local)
    if not found:
        raise StorageError(f"{uri}: no objects below this prefix (no such folder)", "storage_object_not_found")
    view.mkdir(parents=True, exist_ok=True)
    return str(view)
