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


# GRPO's own knobs belong in grpo_args, not in training_args
RETIRED_GRPO_KEYS: dict[str, str] = {
    **RETIRED_TRAINING_KEYS,
    "max_seq_length": "GRPO generates its answers: set grpo_args.max_completion_length",
    **{
        name: f"set grpo_args.{name}"
        for name in (
            "num_generations",
            "max_completion_length",
            "temperature",
            "top_p",
            "top_k",
            "beta",
            "loss_type",
            "epsilon",
            "epsilon_high",
            "num_iterations",
            "scale_rewards",
            "use_vllm",
        )
    },
    "vllm_mode": "vLLM runs inside the training processes (TRL's colocate mode): set grpo_args.use_vllm",
    "reward_weights": "give each grader a weight (graders[].weight)",
}


class GRPOTrainingArgs(HFTrainingArguments):
    """``transformers.TrainingArguments`` for GRPO, with TRL's GRPO defaults (learning rate 1e-6, a log every 10
    steps, bf16 where the device has it). Batch sizes count completions: ``batchsize_conf.total_train_batch_size``
    completions per optimizer step, i.e. total / ``grpo_args.num_generations`` prompts."""

    replaced_keys: ClassVar[dict[str, str]] = RETIRED_GRPO_KEYS

    learning_rate: float = Field(default=1e-6, description="The initial learning rate for AdamW.")
    logging_steps: float = Field(
        default=10,
        description="Log every X update steps (a whole number, or a fraction of the training steps below 1). Each "
        "log is a metrics event with the rewards, and a samples event with a few graded completions.",
    )
    bf16: bool | None = Field(  # type: ignore[assignment]
        default=None,
        description="bf16 mixed precision; null: on where the device supports it (a recent GPU), off elsewhere.",
    )
    remove_unused_columns: bool = Field(
        default=False,
        description="Must stay false: the graders read the data rows' reference fields.",
    )


class GRPOArgs(StrictModel):
    """How GRPO samples and scores: ``num_generations`` completions per prompt, each graded by ``graders``; a
    completion's advantage is its reward against the others of its prompt. Fields of ``trl.GRPOConfig``."""

    num_generations: int = Field(
        default=8,
        ge=2,
        description="Completions sampled per prompt (the group its rewards are compared within); "
        "batchsize_conf.total_train_batch_size must be a multiple of it.",
    )
    max_completion_length: int = Field(default=512, ge=1, description="Tokens a completion may have at most.")
    temperature: float = Field(default=1.0, gt=0.0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0, description="0: no top-k filtering.")
    beta: float = Field(
        default=0.0,
        ge=0.0,
        description="KL coefficient: how strongly the policy is held to the model it started from. 0 (TRL's "
        "default) loads no reference and reports no KL; DeepSeek-R1 used 0.001, older GRPO recipes 0.04.",
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = Field(
        default="dapo",
        description="TRL's GRPO loss variant: dapo (tokens normalised over the global batch, no length bias), grpo "
        "(per-sequence normalisation, the original), dr_grpo, bnpo, cispo, sapo, luspo (needs "
        "importance_sampling_level: sequence), vespo.",
    )
    epsilon: float = Field(default=0.2, gt=0.0, description="Clipping range of the policy ratio.")
    epsilon_high: float | None = Field(default=None, gt=0.0, description="Upper clipping bound; null: epsilon.")
    num_iterations: int = Field(default=1, ge=1, description="Optimisation passes over each batch of generations.")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        default="group", description="Divide advantages by the reward spread of the group, of the batch, or not."
    )
    importance_sampling_level: Literal["token", "sequence"] = "token"
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = Field(
        default="sum_then_normalize",
        description="With several graders: normalise their weighted sum, or normalise each grader's reward first.",
    )
    mask_truncated_completions: bool = Field(
        default=False, description="Leave completions cut at max_completion_length out of the loss."
    )
    use_vllm: bool | Literal["auto"] = Field(
        default="auto",
        description="Generate with vLLM (TRL's vLLM path): auto uses it where vLLM is installed and the run trains "
        "on a CUDA GPU, and transformers' generate elsewhere.",
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="The GPU memory share of vLLM, which runs inside the training processes (TRL's colocate mode).",
    )
    samples_per_log: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Completions, with their prompt and rewards, reported in a samples event at each log.",
    )
    save_name_if_new_basemodel: OutputName = "checkpoint-new-basemodel"
