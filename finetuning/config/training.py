"""``training_args``, ``batchsize_conf``, ``overrides`` and ``sft_args``."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from finetuning.config import legacy
from finetuning.config.base import StrictModel
from finetuning.config.hf_dpo_args import HFDPOArguments
from finetuning.config.hf_training_args import HFTrainingArguments
from finetuning.config.paths import OutputName

# Fields of transformers' TrainingArguments the engine owns, and what to set instead.
ENGINE_OWNED_KEYS: dict[str, str] = {
    "per_device_train_batch_size": legacy.COMPUTED_BY_ENGINE,
    "per_device_eval_batch_size": legacy.COMPUTED_BY_ENGINE,
    "gradient_accumulation_steps": legacy.COMPUTED_BY_ENGINE,
    "resume_from_checkpoint": "set run_conf.resume_from_checkpoint (true, a path, or auto)",
    "local_rank": "set by the launcher (accelerate launch or torchrun), not in the config",
}

# Every key a config may hold that this schema does not take, with the reason; retired fields of older libraries
# whose value can be translated never get here (finetuning.config.legacy rewrites them first).
RETIRED_TRAINING_KEYS: dict[str, str] = {
    **ENGINE_OWNED_KEYS,
    **legacy.refusals(legacy.TRAINING_ARGS),
    "max_seq_length": "set sft_args.max_seq_length",
}

RETIRED_DPO_KEYS: dict[str, str] = {
    **RETIRED_TRAINING_KEYS,
    **legacy.refusals(legacy.DPO_ARGS),
    "max_seq_length": "use max_length",
    "trust_remote_code": "set run_conf.model_args.trust_remote_code",
}


class SFTTrainingArgs(HFTrainingArguments):
    """``transformers.TrainingArguments`` for SFT; ``output_dir`` defaults to $CHECKPOINTS_PATH or ./checkpoints."""

    replaced_keys: ClassVar[dict[str, str]] = RETIRED_TRAINING_KEYS


class DPOTrainingArgs(HFDPOArguments):
    """``trl.DPOConfig`` fields; the loss variant (sigmoid, ipo, hinge, ...) comes from ``loss_type``."""

    replaced_keys: ClassVar[dict[str, str]] = RETIRED_DPO_KEYS

    max_prompt_length: int | None = Field(
        default=None,
        ge=1,
        description="[DPO; applied by the engine] Prompts longer than this keep their last max_prompt_length tokens "
        "(the end, where the question is), as TRL 0.x did. Null: prompts are not cut on their own; max_length "
        "still bounds prompt and answer together.",
    )
    max_completion_length: int | None = Field(
        default=None,
        ge=1,
        description="[DPO and CPO] Chosen and rejected answers longer than this keep their first "
        "max_completion_length tokens (for DPO applied by the engine, as TRL 0.x did). Null: no separate limit.",
    )


class BatchsizeConf(StrictModel):
    total_train_batch_size: int = Field(ge=1, description="processes x per-device batch size x accumulation")
    max_per_device_train_batch_size: int = Field(ge=1, description="The most one device can hold.")
    per_device_eval_batch_size: int | None = Field(
        default=None, ge=1, description="null: the resolved per-device training batch size."
    )


class LrBatchSizeScaling(StrEnum):
    NONE = "none"
    SQRT = "sqrt"
    LINEAR = "linear"


class Overrides(StrictModel):
    lr_multiplier: float = Field(default=1.0, gt=0.0)
    lr_batch_size_scaling: LrBatchSizeScaling = LrBatchSizeScaling.NONE


class SFTArgs(StrictModel):
    max_seq_length: int = Field(default=2048, ge=1)
    length_handling: Literal["filter", "truncate"] = Field(
        default="filter", description="filter drops examples over max_seq_length; truncate cuts them."
    )
    save_name_if_new_basemodel: OutputName = "checkpoint-new-basemodel"
    train_on_completions_only: bool = False
    packing: bool = Field(
        default=True,
        description="Pack examples into rows of max_seq_length tokens (best-fit decreasing) with position ids that "
        "restart per example, so attention never crosses examples and almost no compute goes to padding. Batch "
        "sizes then count packed rows, not examples. Used where the model's attention implementation isolates "
        "packed examples (sdpa, eager, flash and flex attention in transformers); false pads each batch instead.",
    )
    chunked_loss: bool = Field(
        default=True,
        description="Compute the output projection and cross-entropy in chunks of tokens (each chunk's gradients "
        "computed with its logits), so the logits of the whole batch over a large vocabulary never exist at once. "
        "Skipped for models "
        "whose logits are post-processed (soft-capping, scaling), under FSDP/DeepSpeed, and when Liger kernels fuse "
        "the loss instead.",
    )
