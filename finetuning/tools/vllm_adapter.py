"""``create_vllm_compatible_adapter``: strip a LoRA adapter down to the tensors vLLM accepts.

PEFT saves more than the LoRA matrices into ``adapter_model.safetensors``: the base embeddings when they are LoRA
targets (``embed_tokens.base_layer.weight``, ``lm_head.base_layer.weight``), whole trained copies of
``modules_to_save`` layers, and, after the vocabulary grew, three copies of each embedding matrix (``.weight``,
``.original_module.weight`` and ``.modules_to_save.weight``). This tool keeps only the ``.lora_`` ones
(``lora_A``/``lora_B``, ``lora_embedding_A``/``lora_embedding_B``, DoRA's ``lora_magnitude_vector``) and sets
``modules_to_save``/``trainable_token_indices`` in ``adapter_config.json`` to null.

Which vLLM versions need that, from their ``vllm/lora`` code (``LoRAModel.from_local_checkpoint`` and
``from_lora_tensors``, ``PEFTHelper.validate_legal``, ``utils.parse_fine_tuned_lora_name``; read in 0.8.5, 0.10.0,
0.11.0-0.11.2, 0.12.0, 0.14.0-0.18.0, 0.24.0, 0.32.0 and 0.33.0):

* up to 0.11.2 every tensor name must parse as a LoRA weight, so an adapter with embedding targets fails to load
  on its ``...embed_tokens.base_layer.weight`` ("... is unsupported LoRA weight"): the conversion is required.
* from 0.12.0 on, ``is_base_embedding_weights`` drops tensors whose names end in
  ``.embed_tokens.base_layer.weight`` or ``.lm_head.base_layer.weight`` before that check. Such an adapter loads
  unconverted and gives the same tokens as the converted one (vLLM 0.32, CPU build: ``make check-vllm``), so
  the conversion is harmless there. Only those two names are skipped; base-layer copies under other names
  (``wte``, ``embed_in``, ``embed_out``, ...) still fail the load.
* every version read, 0.33 included, refuses the other extras: ``modules_to_save`` other than a classification
  head (``classifier``/``score``, accepted since some release after 0.24) in ``adapter_config.json``, and whole
  embedding matrices (``embed_tokens.weight``, ``.original_module.weight``, ...) that do not parse as LoRA weights.
  Since 0.12.0 an embedding LoRA wider than the base vocabulary is refused too ("The embedding LoRA size(...)
  must be consistent with the base model's vocabulary size(...)"): a grown vocabulary cannot be served as a
  LoRA adapter even after conversion.

Some adapters must not be stripped, because the removed tensors carry what was trained: with a training config the
tool keeps them unchanged (byte for byte) when the run was full finetuning (NO_PEFT), when the vocabulary grew, or
when ``modules_to_save``/``trainable_token_indices`` were trained. Such models are served after ``merge_adapter``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config.base import ConfigError
from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.models import config_vocab_size
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging

if TYPE_CHECKING:
    from finetuning.config import DPOConfig, SFTConfig
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

TOOL_NAME = "create_vllm_compatible_adapter"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
BACKUP_FILE = "old_with_extra_layers_adapter_model.safetensors"
CONFIG_BACKUP_FILE = "old_with_extra_layers_adapter_config.json"
# Every LoRA tensor of peft 0.21 has one of these module names after a dot: lora_A, lora_B, lora_embedding_A,
# lora_embedding_B, lora_magnitude_vector (DoRA; saved without a ".weight" suffix).
LORA_KEY_MARKER = ".lora_"
# Module names of input/output embeddings in common architectures (peft itself only knows the first two).
EMBEDDING_MODULE_NAMES = ("embed_tokens", "lm_head", "wte", "word_embeddings", "embed_in", "embed_out")
# The values vLLM's --max-lora-rank accepts (recent releases; older ones stop at 64 or 256).
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL_NAME,
        description="Take in a HuggingFace adapter's binary folder path and remove the embeddings layer weights "
        "required for vLLM compatibility",
    )
    parser.add_argument(
        "model_path",
        type=Path,
        help="Path to the model folder (e.g. path to the folder containing the adapter) to be made compatible",
    )
    parser.add_argument(
        "--training-config",
        type=Path,
        default=None,
        help="Path to training config to check and determine whether the layers should be removed or not.",
    )
    add_common_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.logging_level)

    def body(events: EventWriter) -> dict[str, Any]:
        events.run_started(
            TOOL_NAME,
            config={
                "model_path": str(args.model_path),
                "training_config": None if args.training_config is None else str(args.training_config),
            },
        )
        events.phase("converting")
        outcome = make_vllm_compatible(args.model_path, args.training_config)
        for warning in outcome.warnings:
            events.log("warning", warning)
        _log_summary(outcome)
        events.phase("done")
        return {"artifacts": outcome.artifacts(), "metrics": outcome.metrics()}

    return run_with_events(args, body)


@dataclass(frozen=True)
class VocabCheck:
    """Whether the adapter needs more tokens than its base model has, and the evidence for the answer."""

    base_vocab_size: int | None
    tokenizer_size: int | None
    saved_embedding_rows: dict[str, int]
    reasons: tuple[str, ...]

    @property
    def grows(self) -> bool:
        return bool(self.reasons)

    @property
    def extra_tokens(self) -> int | None:
        """How many tokens the adapter needs beyond the base's vocabulary; None when growth is known but not by
        how much (the base's size is unknown, or only the chat template's tokens said so)."""
        if not self.grows:
            return 0
        if self.base_vocab_size is None:
            return None
        needed = max([*self.saved_embedding_rows.values(), self.tokenizer_size or 0])
        return (needed - self.base_vocab_size) if needed > self.base_vocab_size else None


@dataclass
class VllmOutcome:
    """What the tool did (``action``) and what a vLLM server needs to know about the adapter."""

    adapter_dir: Path
    action: str  # stripped | already_stripped | nothing_to_strip | kept
    reasons: list[str]
    vllm_compatible: bool
    removed_tensors: list[str] = field(default_factory=list)
    kept_tensors: int = 0
    backup: Path | None = None
    config_backup: Path | None = None
    lora: dict[str, Any] = field(default_factory=dict)
    vocab: VocabCheck | None = None
    warnings: list[str] = field(default_factory=list)

    def artifacts(self) -> dict[str, str]:
        artifacts = {"adapter_path": str(self.adapter_dir)}
        if self.backup is not None:
            artifacts["backup_path"] = str(self.backup)
        if self.config_backup is not None:
            artifacts["config_backup_path"] = str(self.config_backup)
        return artifacts

    def metrics(self) -> dict[str, Any]:
        vocab = self.vocab
        return {
            "action": self.action,
            "vllm_compatible": self.vllm_compatible,
            "reasons": list(self.reasons),
            "removed_tensors": len(self.removed_tensors),
            "kept_tensors": self.kept_tensors,
            "extra_vocab_needed": bool(vocab and vocab.grows),
            "extra_vocab_tokens": None if vocab is None else vocab.extra_tokens,
            "base_vocab_size": None if vocab is None else vocab.base_vocab_size,
            **self.lora,
        }


def make_vllm_compatible(model_path: str | Path, training_config: str | Path | None = None) -> VllmOutcome:
    """Strip ``model_path/adapter_model.safetensors`` to its LoRA tensors, unless the training run says not to.

    Without ``training_config`` the adapter is always stripped (with a warning when that drops trained weights).
    With one, the adapter is kept byte-identical for NO_PEFT runs, grown vocabularies and trained
    ``modules_to_save``/``trainable_token_indices``. A second run is a no-op: the original is kept as
    ``old_with_extra_layers_adapter_model.safetensors`` (and ``adapter_config.json`` likewise, if it changed).
    """
    folder = Path(model_path).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"no adapter folder at '{folder}'", "model_path")
    config = load_training_config(Path(training_config)) if training_config is not None else None
    if config is not None and config.peft_conf.peft_type == "NO_PEFT":
        return _kept(folder, "the training config has peft_type NO_PEFT: the folder is a full model, not an adapter")

    adapter_file = folder / ADAPTER_FILE
    config_file = folder / ADAPTER_CONFIG_FILE
    if not adapter_file.is_file():
        if not config_file.exists() and (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
            return _kept(folder, "the folder holds a full model, not an adapter: serve it with vLLM directly")
        if (folder / "adapter_model.bin").is_file():
            raise FinetuningError(
                f"'{folder}' has a pickled adapter_model.bin; only safetensors adapters are supported",
                "invalid_request",
                "model_path",
            )
        raise ModelNotFoundError(f"no {ADAPTER_FILE} in '{folder}'", "model_path")
    if not config_file.is_file():
        raise ModelNotFoundError(f"no {ADAPTER_CONFIG_FILE} beside the adapter weights in '{folder}'", "model_path")
    adapter_config = _read_json(config_file, "model_path")
    lora = lora_summary(adapter_config)
    peft_type = str(adapter_config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        return _kept(
            folder,
            f"vLLM serves LoRA adapters only and this is a {peft_type or 'unknown'} adapter; "
            "serve it after merge_adapter instead",
            lora=lora,
        )

    header = read_safetensors_header(adapter_file)
    extra = sorted(key for key in header if not is_lora_key(key))
    lora_keys = [key for key in header if is_lora_key(key)]
    base_reference = _base_reference(config, adapter_config)
    vocab = check_vocabulary(folder, header, base_reference, config)
    outcome = VllmOutcome(folder, "", [], False, kept_tensors=len(lora_keys), lora=lora, vocab=vocab)

    if (folder / BACKUP_FILE).is_file() and not extra:
        outcome.action, outcome.backup = "already_stripped", folder / BACKUP_FILE
        outcome.reasons = [f"{BACKUP_FILE} exists and the adapter holds only LoRA tensors: nothing to do"]
        if (folder / CONFIG_BACKUP_FILE).is_file():
            outcome.config_backup = folder / CONFIG_BACKUP_FILE
        return _finish(outcome)

    trained_extras = _trained_extras(adapter_config, config)
    if config is not None:
        keep_reasons = [*vocab.reasons, *trained_extras]
        if keep_reasons:
            outcome.action, outcome.reasons = "kept", keep_reasons
            outcome.kept_tensors = len(header)
            outcome.reasons.append("the adapter is left unchanged; serve it after merge_adapter")
            return _finish(outcome)

    if not extra:
        outcome.action = "nothing_to_strip"
        outcome.reasons = ["the adapter holds only LoRA tensors already"]
        return _finish(outcome)
    if not lora_keys:
        raise FinetuningError(
            f"{adapter_file} holds no LoRA tensors (no key contains '{LORA_KEY_MARKER}'): stripping would leave "
            "nothing; is this a LoRA adapter?",
            "invalid_request",
            "model_path",
        )
    dropped_training = [*vocab.reasons, *trained_extras]
    if dropped_training:
        # Without a training config the original tool always stripped; keep that, but say what is lost.
        outcome.warnings.append(
            "stripping drops trained weights that vLLM cannot load ("
            + "; ".join(dropped_training)
            + f"); the originals stay in {BACKUP_FILE}. Pass --training-config to keep such adapters, "
            "and serve them after merge_adapter"
        )

    outcome.removed_tensors = extra
    outcome.backup = strip_adapter_file(adapter_file, folder / BACKUP_FILE, lora_keys)
    outcome.config_backup = clean_adapter_config(config_file, folder / CONFIG_BACKUP_FILE)
    outcome.action = "stripped"
    outcome.reasons = [f"removed {len(extra)} non-LoRA tensors: {', '.join(extra)}"]
    return _finish(outcome)


def load_training_config(path: Path) -> SFTConfig | DPOConfig:
    """The training config as SFT, else as DPO; when neither fits, the error names the problems of both."""
    from finetuning.config import DPOConfig, SFTConfig

    if not path.is_file():
        raise FinetuningError(f"no training config file at '{path}'", "invalid_request", "--training-config")
    errors: dict[str, ConfigError] = {}
    for name, config_class in (("an SFT", SFTConfig), ("a DPO", DPOConfig)):
        try:
            return config_class.from_yaml_file(path)
        except ConfigError as exc:
            errors[name] = exc
    # One line each, so that the CLI's single error line carries both.
    problems = "; ".join(f"as {name} config: " + ", ".join(map(str, exc.issues)) for name, exc in errors.items())
    raise FinetuningError(
        f"'{path}' is neither a valid SFT nor a valid DPO training config ({problems})",
        "invalid_config",
        "--training-config",
    )


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


def base_vocab_size(reference: str | None) -> int | None:
    """The vocabulary size in a base model's config, or None when the config cannot be read."""
    if not reference:
        return None
    size = config_vocab_size(reference)
    if size is None:  # a hub id offline, a model type this transformers lacks: growth is then unknown
        logger.warning("could not read the vocabulary size of base model '%s'", reference)
    return size


def tokenizer_size(folder: Path) -> int | None:
    """``len(tokenizer)`` of the tokenizer saved in ``folder``, or None when there is none."""
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return None
    try:
        from transformers import AutoTokenizer

        return len(AutoTokenizer.from_pretrained(folder, trust_remote_code=False))
    except Exception as exc:  # an unreadable tokenizer only loses one piece of evidence
        logger.warning("could not load the tokenizer in '%s': %s", folder, exc)
        return None


def check_vocabulary(
    folder: Path,
    header: Mapping[str, Mapping[str, Any]],
    base_reference: str | None,
    config: SFTConfig | DPOConfig | None = None,
) -> VocabCheck:
    """Does the adapter need a grown vocabulary? Evidence: the embeddings it saved, its tokenizer and, for an SFT
    config, whether the chat template adds tokens the base tokenizer lacks."""
    base_size = base_vocab_size(base_reference)
    rows = saved_embedding_rows(header)
    tok_size = tokenizer_size(folder)
    reasons = []
    if base_size is not None:
        grown = {key: n for key, n in rows.items() if n != base_size}
        if grown:
            sizes = sorted(set(grown.values()))
            reasons.append(
                f"the adapter saved embeddings with {', '.join(map(str, sizes))} rows but the base model has "
                f"{base_size} tokens (vocabulary grew)"
            )
        if tok_size is not None and tok_size > base_size:
            reasons.append(f"the adapter's tokenizer has {tok_size} tokens, the base model {base_size}")
    new_tokens = _template_tokens_missing(config)
    if new_tokens:
        reasons.append(f"the chat template adds tokens the base tokenizer lacks: {', '.join(new_tokens)}")
    return VocabCheck(base_size, tok_size, rows, tuple(reasons))


def lora_summary(adapter_config: Mapping[str, Any]) -> dict[str, Any]:
    """What a vLLM server needs to know about a LoRA adapter: rank, alpha, targets and a ``--max-lora-rank``."""
    rank = adapter_config.get("r")
    ranks = [r for r in [rank, *(adapter_config.get("rank_pattern") or {}).values()] if isinstance(r, int)]
    max_rank = max(ranks) if ranks else None
    suggestion = next((n for n in VLLM_MAX_LORA_RANKS if max_rank is not None and n >= max_rank), None)
    targets = adapter_config.get("target_modules")
    return {
        "peft_type": adapter_config.get("peft_type"),
        "r": rank,
        "max_rank": max_rank,
        "lora_alpha": adapter_config.get("lora_alpha"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "use_rslora": bool(adapter_config.get("use_rslora")),
        "use_dora": bool(adapter_config.get("use_dora")),
        "base_model": adapter_config.get("base_model_name_or_path"),
        "max_lora_rank": suggestion,
    }


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
    config = _read_json(config_file, "model_path")
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


def _trained_extras(adapter_config: Mapping[str, Any], config: SFTConfig | DPOConfig | None) -> list[str]:
    reasons = []
    modules = list(adapter_config.get("modules_to_save") or [])
    if config is not None:
        kwargs = getattr(config.peft_conf, "peft_kwargs", {}) or {}
        modules += [m for m in kwargs.get("modules_to_save") or [] if m not in modules]
    if modules:
        reasons.append(f"modules_to_save {modules} were trained in full")
    if adapter_config.get("trainable_token_indices") is not None:
        reasons.append("trainable_token_indices were trained")
    return reasons


def _template_tokens_missing(config: SFTConfig | DPOConfig | None) -> list[str]:
    """The SFT chat template's tokens that the base tokenizer lacks (the original engine's growth test)."""
    from finetuning.config import SFTConfig

    if not isinstance(config, SFTConfig):
        return []  # DPO refuses to add tokens, so it never grows the vocabulary
    from finetuning.templates import get_template

    template = get_template(config.data_conf.chat_template_name)
    if not template.new_special_tokens:
        return []
    reference = config.run_conf.tokenizer or config.run_conf.model
    try:
        from transformers import AutoTokenizer

        vocab = AutoTokenizer.from_pretrained(reference, trust_remote_code=False).get_vocab()
    except Exception as exc:  # the base may not be reachable from here; the adapter's own evidence still counts
        logger.warning("could not load the base tokenizer '%s' to check the template's tokens: %s", reference, exc)
        return []
    return [token for token in template.new_special_tokens if token not in vocab]


def _base_reference(config: SFTConfig | DPOConfig | None, adapter_config: Mapping[str, Any]) -> str | None:
    if config is not None:
        return config.run_conf.model
    reference = adapter_config.get("base_model_name_or_path")
    return str(reference) if reference else None


def _kept(folder: Path, reason: str, lora: dict[str, Any] | None = None) -> VllmOutcome:
    return _finish(VllmOutcome(folder, "kept", [reason], False, lora=lora or {}))


def _finish(outcome: VllmOutcome) -> VllmOutcome:
    """Decide ``vllm_compatible`` and collect the warnings a server operator should see."""
    lora = outcome.lora
    if outcome.action in ("stripped", "already_stripped", "nothing_to_strip"):
        outcome.vllm_compatible = True
        if lora.get("use_dora"):
            outcome.vllm_compatible = False
            outcome.warnings.append("the adapter uses DoRA, which vLLM does not serve; merge it instead")
        if lora.get("max_rank") is not None and lora.get("max_lora_rank") is None:
            outcome.vllm_compatible = False
            outcome.warnings.append(f"rank {lora['max_rank']} is above vLLM's largest --max-lora-rank")
        if outcome.vocab is not None and outcome.vocab.grows:
            outcome.vllm_compatible = False
            outcome.warnings.append(
                "the adapter was trained with a grown vocabulary, which vLLM's LoRA support lacks; "
                "serve the model after merge_adapter"
            )
    return outcome


def _log_summary(outcome: VllmOutcome) -> None:
    logger.info("%s: %s (%s)", outcome.adapter_dir, outcome.action, "; ".join(outcome.reasons))
    for warning in outcome.warnings:
        logger.warning("%s", warning)
    lora = outcome.lora
    if lora.get("peft_type") == "LORA":
        vocab = outcome.vocab
        logger.info(
            "for vLLM: r=%s lora_alpha=%s target_modules=%s extra vocab needed=%s; suggested: "
            "vllm serve %s --enable-lora --max-lora-rank %s --lora-modules adapter=%s",
            lora.get("r"),
            lora.get("lora_alpha"),
            lora.get("target_modules"),
            bool(vocab and vocab.grows),
            lora.get("base_model") or "<base model>",
            lora.get("max_lora_rank") or "<none fits>",
            outcome.adapter_dir,
        )


def _read_json(path: Path, param: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinetuningError(f"cannot read '{path}': {exc}", "invalid_request", param) from exc
    if not isinstance(data, dict):
        raise FinetuningError(f"'{path}' is not a JSON object", "invalid_request", param)
    return data


if __name__ == "__main__":
    sys.exit(main())
