"""``training_args``, ``batchsize_conf``, ``overrides`` and ``sft_args``."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from finetuning.config.base import StrictModel
from finetuning.config.hf_dpo_args import HFDPOArguments
from finetuning.config.hf_training_args import HFTrainingArguments

_COMPUTED = (
    "computed by the engine from batchsize_conf; set batchsize_conf.total_train_batch_size and "
    "batchsize_conf.max_per_device_train_batch_size (and batchsize_conf.per_device_eval_batch_size) instead"
)
_APEX = "removed in transformers 5 (apex is gone); use fp16: true or bf16: true"

# Keys a user of the original engine (transformers 4.57) may still write, with what replaced them.
RETIRED_TRAINING_KEYS: dict[str, str] = {
    "per_device_train_batch_size": _COMPUTED,
    "per_device_eval_batch_size": _COMPUTED,
    "gradient_accumulation_steps": _COMPUTED,
    "per_gpu_train_batch_size": _COMPUTED,
    "per_gpu_eval_batch_size": _COMPUTED,
    "resume_from_checkpoint": "set run_conf.resume_from_checkpoint (true, a path, or auto)",
    "local_rank": "set by the launcher (accelerate launch or torchrun), not in the config",
    "evaluation_strategy": "renamed to eval_strategy",
    "warmup_ratio": "removed in transformers 5; give warmup_steps a float in [0, 1) (e.g. warmup_steps: 0.1)",
    "logging_dir": "removed in transformers 5; TensorBoard logs go to <output_dir>/runs, or to the "
    "TENSORBOARD_LOGGING_DIR environment variable",
    "overwrite_output_dir": "removed in transformers 5; the trainer writes into output_dir as is, "
    "and run_conf.resume_from_checkpoint: auto continues a run found there",
    "save_safetensors": "removed in transformers 5: checkpoints are always safetensors",
    "no_cuda": "renamed to use_cpu",
    "use_mps_device": "removed in transformers 5: MPS is used when available; use_cpu: true turns it off",
    "jit_mode_eval": "removed in transformers 5; use torch_compile: true",
    "fp16_opt_level": _APEX,
    "half_precision_backend": _APEX,
    "fp16_backend": _APEX,
    "tpu_num_cores": "removed in transformers 5 (TPU flags are gone)",
    "tpu_metrics_debug": "removed in transformers 5; use debug: tpu_metrics_debug",
    "past_index": "removed in transformers 5",
    "fsdp_min_num_params": "removed in transformers 5; set fsdp_config.min_num_params",
    "fsdp_transformer_layer_cls_to_wrap": "removed in transformers 5; set fsdp_config.transformer_layer_cls_to_wrap",
    "adafactor": "removed in transformers 5; use optim: adafactor",
    "group_by_length": "removed in transformers 5; use train_sampling_strategy: group_by_length",
    "use_legacy_prediction_loop": "removed in transformers 5",
    "include_inputs_for_metrics": "removed in transformers 5; use include_for_metrics: [inputs]",
    "push_to_hub_model_id": "removed in transformers 5; use hub_model_id",
    "push_to_hub_organization": "removed in transformers 5; use hub_model_id: <organization>/<name>",
    "push_to_hub_token": "removed in transformers 5; use hub_token",
    "mp_parameters": "removed in transformers 5 (SageMaker model parallelism is gone)",
    "torchdynamo": "removed in transformers 5; use torch_compile_backend",
    "ray_scope": "removed in transformers 5",
    "include_tokens_per_second": "removed in transformers 5; the engine's events report tokens per second "
    "at every logging step",
    "max_seq_length": "set sft_args.max_seq_length",
}

RETIRED_DPO_KEYS: dict[str, str] = {
    **RETIRED_TRAINING_KEYS,
    "max_seq_length": "use max_length",
    "max_prompt_length": "removed in TRL 1.x; long prompts are cut by max_length and truncation_mode",
    "model_init_kwargs": "set run_conf.model_args",
    "trust_remote_code": "set run_conf.model_args.trust_remote_code",
    "dataset_num_proc": "use the --num-preprocess-workers command-line flag",
}


class SFTTrainingArgs(HFTrainingArguments):
    """``transformers.TrainingArguments`` for SFT; ``output_dir`` defaults to $CHECKPOINTS_PATH or ./checkpoints."""

    replaced_keys: ClassVar[dict[str, str]] = RETIRED_TRAINING_KEYS


class DPOTrainingArgs(HFDPOArguments):
    """``trl.DPOConfig`` fields; the loss variant (sigmoid, ipo, hinge, ...) comes from ``loss_type``."""

    replaced_keys: ClassVar[dict[str, str]] = RETIRED_DPO_KEYS


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
    save_name_if_new_basemodel: str = "checkpoint-new-basemodel"
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
