"""The start-up checks of the trainers we build on, run when a config is validated.

transformers' ``TrainingArguments`` and ``Trainer`` and TRL's ``DPOTrainer`` refuse some combinations of settings
only when a run starts: after the queue, after the model has loaded. Those that need neither the model nor the data
are repeated here (the API validates without importing transformers), in our error format and naming the field to
change. ``tests/unit/test_startup_checks.py`` holds each one against the library's own verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetuning.config.base import ConfigIssue

if TYPE_CHECKING:
    from finetuning.config.hf_training_args import HFTrainingArguments
    from finetuning.config.jobs import DPOConfig, GRPOConfig, SFTConfig

# DPOTrainer: losses that have an f-divergence generalization (the others keep reverse KL)
F_DIVERGENCE_LOSSES = frozenset({"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"})


def _effective_eval_steps(args: HFTrainingArguments) -> float | None:
    if args.eval_steps in (None, 0):
        return args.logging_steps if args.logging_steps > 0 else None
    return args.eval_steps


def training_arguments_problems(args: HFTrainingArguments) -> list[ConfigIssue]:
    """``TrainingArguments.__post_init__``'s own refusals (transformers 5)."""
    found: list[ConfigIssue] = []

    def problem(field: str, message: str) -> None:
        found.append(ConfigIssue(f"training_args.{field}", message))

    if args.torch_empty_cache_steps is not None and not (
        isinstance(args.torch_empty_cache_steps, int) and args.torch_empty_cache_steps > 0
    ):
        problem("torch_empty_cache_steps", "must be a whole number above 0, or null")
    if args.logging_strategy == "steps" and args.logging_steps == 0:
        problem(
            "logging_steps",
            "logging_strategy: steps needs logging_steps above 0 (a number of steps, or a "
            "fraction of the training steps below 1)",
        )
    for field, strategy in (
        ("logging_steps", "logging_strategy"),
        ("eval_steps", "eval_strategy"),
        ("save_steps", "save_strategy"),
    ):
        value = getattr(args, field)
        if getattr(args, strategy) == "steps" and value is not None and value > 1 and value != int(value):
            problem(field, f"{value} is neither a whole number of steps nor a fraction below 1")
    eval_steps = _effective_eval_steps(args)
    if args.eval_strategy == "steps" and eval_steps is None:
        problem("eval_steps", "eval_strategy: steps needs eval_steps (or logging_steps) above 0")
    if args.load_best_model_at_end and args.save_strategy != "best":
        if args.eval_strategy != args.save_strategy:
            problem(
                "load_best_model_at_end",
                f"needs save_strategy and eval_strategy to match (or save_strategy: best), but they are "
                f"{args.save_strategy} and {args.eval_strategy}",
            )
        elif args.eval_strategy == "steps" and eval_steps is not None and not _multiple(args.save_steps, eval_steps):
            problem(
                "save_steps",
                f"load_best_model_at_end needs save_steps ({args.save_steps}) to be a multiple of eval_steps "
                f"({eval_steps}), both whole numbers or both fractions",
            )
    if args.fp16 and args.bf16:
        problem("fp16", "give at most one of fp16 and bf16")
    if args.fp16_full_eval and args.bf16_full_eval:
        problem("fp16_full_eval", "give at most one of fp16_full_eval and bf16_full_eval")
    if args.lr_scheduler_type in ("reduce_lr_on_plateau", "greedy") and args.eval_strategy == "no":
        problem(
            "lr_scheduler_type",
            f"{args.lr_scheduler_type} adapts to evaluations: set eval_strategy (and "
            "validation data) or choose another scheduler",
        )
    if args.warmup_steps < 0:
        problem("warmup_steps", "must be 0 or more")
    if args.dataloader_num_workers == 0 and args.dataloader_prefetch_factor is not None:
        problem("dataloader_prefetch_factor", "only applies with dataloader_num_workers above 0")
    return found


def _multiple(save_steps: float, eval_steps: float) -> bool:
    if (save_steps < 1) != (eval_steps < 1):
        return False
    scale = 1_000_000  # transformers compares ratios as integers too
    step = round(eval_steps * scale)
    return step != 0 and round(save_steps * scale) % step == 0


def trainer_problems(config: SFTConfig | DPOConfig | GRPOConfig) -> list[ConfigIssue]:
    """``Trainer.__init__``'s refusals that depend on the config alone."""
    args = config.training_args
    found: list[ConfigIssue] = []
    no_validation = getattr(config.data_conf.validation_data, "type", None) == "NONE"
    if args.eval_strategy != "no" and no_validation:
        found.append(
            ConfigIssue(
                "training_args.eval_strategy",
                f"eval_strategy: {args.eval_strategy} evaluates, but data_conf.validation_data is NONE: give "
                "validation data (AUTO_SPLIT holds out part of the training data) or set eval_strategy: no",
            )
        )
    if args.save_strategy == "best" and args.metric_for_best_model is None and not _defaults_best_metric(args):
        found.append(
            ConfigIssue(
                "training_args.metric_for_best_model",
                "save_strategy: best needs the metric that decides what is best (e.g. metric_for_best_model: loss)",
            )
        )
    sharded = bool(args.fsdp) or args.deepspeed is not None
    if sharded and args.save_only_model and args.load_best_model_at_end:
        found.append(
            ConfigIssue(
                "training_args.save_only_model",
                "FSDP and DeepSpeed cannot load the best model at the end from checkpoints saved with "
                "save_only_model; drop one of them",
            )
        )
    fsdp_config = args.fsdp_config
    checkpointing = args.activation_checkpointing or args.gradient_checkpointing
    if args.fsdp and isinstance(fsdp_config, dict) and fsdp_config.get("activation_checkpointing") and checkpointing:
        found.append(
            ConfigIssue(
                "training_args.gradient_checkpointing",
                "fsdp_config.activation_checkpointing already checkpoints activations under FSDP: turn "
                "gradient_checkpointing (activation_checkpointing) off",
            )
        )
    return found


def _defaults_best_metric(args: HFTrainingArguments) -> bool:
    # TrainingArguments fills in metric_for_best_model: loss for these
    return bool(args.load_best_model_at_end) or args.lr_scheduler_type in ("reduce_lr_on_plateau", "greedy")


def dpo_trainer_problems(config: DPOConfig) -> list[ConfigIssue]:
    """``DPOConfig.__post_init__``'s and ``DPOTrainer.__init__``'s refusals (TRL 1) that need no model or data."""
    if config.trainer_name != "dpo":
        return []
    args = config.training_args
    losses = [args.loss_type] if isinstance(args.loss_type, str) else list(args.loss_type)
    found: list[ConfigIssue] = []

    def problem(field: str, message: str) -> None:
        found.append(ConfigIssue(field, message))

    if args.loss_weights is not None and len(args.loss_weights) != len(losses):
        problem(
            "training_args.loss_weights",
            f"{len(args.loss_weights)} weights for {len(losses)} loss types: give one weight per loss_type",
        )
    if args.f_divergence_type != "reverse_kl" and not set(losses) <= F_DIVERGENCE_LOSSES:
        problem(
            "training_args.f_divergence_type",
            f"{args.f_divergence_type} applies only to the losses {', '.join(sorted(F_DIVERGENCE_LOSSES))}; "
            "use reverse_kl with the others",
        )
    if args.use_weighting and {"aot", "aot_unpaired"} & set(losses):
        problem("training_args.use_weighting", "WPO weighting is not available for the aot losses")
    if "exo_pair" in losses and args.label_smoothing == 0.0:
        problem("training_args.label_smoothing", "the exo_pair loss needs label_smoothing above 0 (the paper: 1e-3)")
    adapter = config.peft_conf.peft_type not in ("NO_PEFT",)
    if adapter and _targets_lm_head(getattr(config.peft_conf, "peft_kwargs", {})):
        problem(
            "peft_conf.peft_kwargs.target_modules",
            "DPO computes log-probabilities from lm_head's weight directly, so an adapter on lm_head would never "
            "train: remove lm_head from target_modules",
        )
    if args.sync_ref_model and adapter:
        problem(
            "training_args.sync_ref_model",
            "with an adapter the reference is the model with the adapter disabled; there is no reference copy to "
            "synchronize: set sync_ref_model: false or train all parameters (NO_PEFT)",
        )
    if args.sync_ref_model and args.precompute_ref_log_probs:
        problem(
            "training_args.precompute_ref_log_probs",
            "precomputed reference log-probabilities go stale when sync_ref_model updates the reference: drop one",
        )
    return found


def _targets_lm_head(peft_kwargs: dict[str, Any]) -> bool:
    targets = peft_kwargs.get("target_modules")
    if isinstance(targets, str):
        return targets == "lm_head"
    return isinstance(targets, list) and "lm_head" in targets


def grpo_trainer_problems(config: GRPOConfig) -> list[ConfigIssue]:
    """``GRPOConfig.__post_init__``'s and ``GRPOTrainer.__init__``'s refusals (TRL 1) that need no model or data."""
    grpo, args = config.grpo_args, config.training_args
    found: list[ConfigIssue] = []
    total = config.batchsize_conf.total_train_batch_size
    if total % grpo.num_generations:
        found.append(
            ConfigIssue(
                "batchsize_conf.total_train_batch_size",
                f"GRPO batches count completions, whole groups of grpo_args.num_generations ({grpo.num_generations}) "
                f"per prompt: {total} is not a multiple of {grpo.num_generations}",
            )
        )
    if grpo.loss_type == "luspo" and grpo.importance_sampling_level != "sequence":
        found.append(
            ConfigIssue(
                "grpo_args.importance_sampling_level",
                "loss_type: luspo is a sequence-level loss: set importance_sampling_level: sequence",
            )
        )
    if grpo.use_vllm is True and args.use_cpu:
        found.append(ConfigIssue("grpo_args.use_vllm", "vLLM generates on a GPU: use_vllm: true needs use_cpu: false"))
    if args.remove_unused_columns:
        found.append(
            ConfigIssue(
                "training_args.remove_unused_columns",
                "GRPO's graders read the data rows' reference fields, which remove_unused_columns: true would drop: "
                "remove it",
            )
        )
    if args.auto_find_batch_size:
        found.append(
            ConfigIssue(
                "training_args.auto_find_batch_size",
                "GRPO batches must hold whole groups of completions, which halving the batch breaks: set "
                "batchsize_conf.max_per_device_train_batch_size instead",
            )
        )
    return found
