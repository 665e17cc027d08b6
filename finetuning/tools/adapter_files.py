"""The files of a PEFT adapter folder: the safetensors header read without loading tensors, LoRA tensors told from
the rest, and the weights and ``adapter_config.json`` rewritten in place with the originals kept as backups."""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from finetuning.errors import FinetuningError

logger = logging.getLogger(__name__)

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
BACKUP_FILE = "old_with_extra_layers_adapter_model.safetensors"
CONFIG_BACKUP_FILE = "old_with_extra_layers_adapter_config.json"
# Every LoRA tensor of peft 0.21 has one of these module names after a dot: lora_A, lora_B, lora_embedding_A,
# lora_embedding_B, lora_magnitude_vector (DoRA; saved without a ".weight" suffix).
LORA_KEY_MARKER = ".lora_"
# Module names of input/output embeddings in common architectures (peft itself only knows the first two).
EMBEDDING_MODULE_NAMES = ("embed_tokens", "lm_head", "wte", "word_embeddings", "embed_in", "embed_out")


def is_lora_key(key: str) -> bool:
    return LORA_KEY_MARKER in key


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> ``{"dtype", "shape", "data_offsets"}`` from a safetensors file, reading only its header."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError) as exc:
        raise FinetuningError(f"'{path}' is not a readable safetensors file: {exc}", "invalid_request") from exc
    header.pop("__metadata__", None)
    return dict(header)


def saved_embedding_rows(header: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Rows of every full (non-LoRA) embedding or output-head matrix saved in an adapter, by tensor name."""
    rows = {}
    for key, info in header.items():
        if is_lora_key(key) or len(info.get("shape", ())) != 2:
            continue
        if any(f".{name}." in f".{key}" for name in EMBEDDING_MODULE_NAMES):
            rows[key] = int(info["shape"][0])
    return rows


def strip_adapter_file(adapter_file: Path, backup: Path, keep: Sequence[str]) -> Path:
    """Rewrite ``adapter_file`` with only the ``keep`` tensors (metadata kept); the original goes to ``backup``.

    The adapter file exists at every moment: the filtered copy is written beside it, the original is hard-linked
    (or copied) to the backup, and only then is the filtered copy moved over the original.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(adapter_file), framework="pt") as f:
        metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in keep}
    filtered = adapter_file.with_name(f".{adapter_file.name}.stripping")
    save_file(tensors, str(filtered), metadata=metadata)
    _backup(adapter_file, backup)
    os.replace(filtered, adapter_file)
    logger.info("wrote %s with %d LoRA tensors; the original is %s", adapter_file, len(keep), backup)
    return backup


def clean_adapter_config(config_file: Path, backup: Path) -> Path | None:
    """Make ``adapter_config.json`` agree with an adapter stripped to its LoRA tensors: ``modules_to_save`` and
    ``trainable_token_indices``, whose weights are gone, become null. Returns the backup, if the file changed."""
    config = read_json(config_file, "model_path")
    cleaned = dict(config)
    # peft would otherwise wrap these modules and look for weights that are no longer in the file
    for name in ("modules_to_save", "trainable_token_indices"):
        if config.get(name):
            cleaned[name] = None
    if cleaned == config:
        return None
    _backup(config_file, backup)
    tmp = config_file.with_name(f".{config_file.name}.cleaning")
    tmp.write_text(json.dumps(cleaned, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, config_file)
    logger.info("adapter_config.json: set %s to null", ", ".join(k for k in cleaned if cleaned[k] != config.get(k)))
    return backup


def _backup(path: Path, backup: Path) -> None:
    """Put the current ``path`` at ``backup`` (replacing a stale one from an earlier adapter) without moving it."""
    staging = backup.with_name(f".{backup.name}.staging")
    staging.unlink(missing_ok=True)
    try:
        os.link(path, staging)  # cheap for multi-GB adapters; the filesystem may not support it
    except OSError:
        import shutil

        shutil.copy2(path, staging)
    os.replace(staging, backup)


def read_json(path: Path, param: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinetuningError(f"cannot read '{path}': {exc}", "invalid_request", param) from exc
    if not isinstance(data, dict):
        raise FinetuningError(f"'{path}' is not a JSON object", "invalid_request", param)
    return data
