"""The decision and the conversion behind ``create_vllm_compatible_adapter``: strip the adapter to its LoRA tensors,
leave it as it is, or refuse, and say whether vLLM can serve the result (see :mod:`finetuning.tools.vllm_adapter`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config.base import ConfigError
from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.tools.adapter_files import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    BACKUP_FILE,
    CONFIG_BACKUP_FILE,
    LORA_KEY_MARKER,
    clean_adapter_config,
    is_lora_key,
    read_json,
    read_safetensors_header,
    strip_adapter_file,
)
from finetuning.tools.adapter_vocabulary import VocabCheck, check_vocabulary

if TYPE_CHECKING:
    from finetuning.config import DPOConfig, GRPOConfig, SFTConfig

# The values vLLM's --max-lora-rank accepts (recent releases; older ones stop at 64 or 256).
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


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
    adapter_config = read_json(config_file, "model_path")
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


def load_training_config(path: Path) -> SFTConfig | DPOConfig | GRPOConfig:
    """The training config as SFT, else as DPO, else as GRPO; when none fits, the error names the problems of each."""
    from finetuning.config import DPOConfig, GRPOConfig, SFTConfig

    if not path.is_file():
        raise FinetuningError(f"no training config file at '{path}'", "invalid_request", "--training-config")
    errors: dict[str, ConfigError] = {}
    config_classes: tuple[tuple[str, type[SFTConfig | DPOConfig | GRPOConfig]], ...] = (
        ("an SFT", SFTConfig),
        ("a DPO", DPOConfig),
        ("a GRPO", GRPOConfig),
    )
    for name, config_class in config_classes:
        try:
            return config_class.from_yaml_file(path)
        except ConfigError as exc:
            errors[name] = exc
    # One line each, so that the CLI's single error line carries both.
    problems = "; ".join(f"as {name} config: " + ", ".join(map(str, exc.issues)) for name, exc in errors.items())
    raise FinetuningError(
        f"'{path}' is not a valid SFT, DPO or GRPO training config ({problems})",
        "invalid_config",
        "--training-config",
    )


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


def _trained_extras(adapter_config: Mapping[str, Any], config: SFTConfig | DPOConfig | GRPOConfig | None) -> list[str]:
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


def _base_reference(config: SFTConfig | DPOConfig | GRPOConfig | None, adapter_config: Mapping[str, Any]) -> str | None:
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
