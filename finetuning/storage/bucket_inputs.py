"""Whether a bucket input is there, asked before a job is queued: one HEAD for a file, a short listing for a folder,
and for a model, adapter or tokenizer folder the config file that loading it reads first."""

from __future__ import annotations

from finetuning.storage.client import StorageError, exists, list_objects
from finetuning.storage.uri import S3Uri

# what a folder that from_pretrained loads holds: a model's, an adapter's or a tokenizer's config
MODEL_FOLDER_FILES = ("config.json", "adapter_config.json", "tokenizer_config.json")


def check(uri: S3Uri, *, folder: bool, model: bool = False) -> None:
    """Raise a :class:`StorageError` saying what is missing (or why the bucket could not be asked)."""
    if not folder:
        if not exists(uri):
            raise StorageError(f"{uri}: no such object", "storage_object_not_found")
        return
    if not any(True for _ in list_objects(uri, limit=1)):
        raise StorageError(f"{uri}: no objects below this prefix (no such folder)", "storage_object_not_found")
    if model and not any(exists(uri / name) for name in MODEL_FOLDER_FILES):
        names = ", ".join(MODEL_FOLDER_FILES)
        raise StorageError(
            f"{uri}: holds none of {names}: not a model, adapter or tokenizer folder", "storage_object_not_found"
        )
