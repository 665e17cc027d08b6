"""Preference optimization with TRL: DPO and its loss variants, KTO, ORPO and SimPO/CPO, chosen by ``loss_type``.

With an adapter on the policy the reference is never a second full model: a new adapter is attached by the trainer,
which then uses the adapter-disabled weights as the reference; a continued adapter gets a frozen adapter copy.
ORPO and SimPO/CPO need no reference at all.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.config.jobs import DPOConfig, PreferenceTrainerName
from finetuning.errors import FinetuningError
from finetuning.events import EventsCallback, EventWriter
from finetuning.methods.common import (
    TrainOutcome,
    load_trainable_model,
    load_training_tokenizer,
    prepare_run,
    preprocessing_cache,
    record_manifest,
    start_input_hashing,
    train_and_save,
    training_arguments,
    trim_preprocessing_cache,
)
from finetuning.preflight import preflight_training
from finetuning.runtime import RunOptions

if TYPE_CHECKING:
    from transformers import TrainerCallback, TrainingArguments

    from finetuning.methods.common import RunSetup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPOResult:
    outcome: TrainOutcome
    trainer: PreferenceTrainerName
    reference_model: str
    train_examples: int
    eval_examples: int


def describe_reference(trainer: Any, trainer_name: PreferenceTrainerName) -> str:
    """How the trainer gets its reference log-probabilities, for the log and the final event."""
    if trainer_name in ("cpo", "orpo"):
        return "none (reference-free)"
    if getattr(trainer, "ref_model", None) is not None:
        return "separate model copy"
    peft_config = getattr(trainer.model, "peft_config", None) or {}
    if "ref" in peft_config:
        return "frozen copy of the adapter"
    if peft_config:
        return "policy with the adapter disabled"
    return "precomputed"


# DPO fields TRL 1 dropped and the engine applies itself (finetuning.data.preference.TruncatingPreferenceCollator)
ENGINE_TRUNCATION = frozenset({"max_prompt_length", "max_completion_length"})


def _trainer_classes(name: PreferenceTrainerName) -> tuple[type, type]:
    """(trainer, its config class) for a preference method."""
    if name == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig
    if name == "cpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        return CPOTrainer, CPOConfig
    if name == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, ORPOConfig
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    return DPOTrainer, TRLDPOConfig


def preference_arguments(
    config: DPOConfig, setup: RunSetup, arguments_class: type[TrainingArguments], num_preprocess_workers: int
) -> TrainingArguments:
    """The chosen trainer's config: the fields the user set (each must belong to that trainer), the computed batch
    sizes, and the engine's defaults (``max_length`` 2048, bf16 only where the device has it)."""
    import torch

    args_conf = config.training_args
    accepted = {f.name for f in dataclasses.fields(arguments_class)}
    engine_applied = ENGINE_TRUNCATION if config.trainer_name == "dpo" else frozenset()
    user_set = args_conf.model_fields_set
    foreign = sorted(name for name in user_set - accepted - engine_applied if name != "loss_type")
    if foreign:
        raise FinetuningError(
            f"{', '.join(foreign)} do not apply to loss_type {args_conf.loss_type!r} "
            f"({config.trainer_name.upper()} trainer); remove them",
            "invalid_config",
            f"training_args.{foreign[0]}",
        )
    extra: dict[str, Any] = {"dataset_num_proc": num_preprocess_workers if num_preprocess_workers > 1 else None}
    if "max_length" in accepted:
        extra["max_length"] = args_conf.max_length
    if args_conf.bf16 is None:
        extra["bf16"] = bool(
            not args_conf.use_cpu
            and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()
            and not args_conf.fp16
        )
    loss_type = args_conf.loss_type
    drop: tuple[str, ...] = tuple(engine_applied)
    if config.trainer_name == "cpo":
        extra["loss_type"] = "simpo" if loss_type == "simpo" else "sigmoid"
    elif config.trainer_name == "orpo":
        drop = ("loss_type",)
    if config.trainer_name in ("cpo", "orpo") and "remove_unused_columns" not in user_set:
        extra["remove_unused_columns"] = False  # their collators read the raw prompt/chosen/rejected columns
    return training_arguments(
        setup, args_conf, config.run_conf.determinism, arguments_class=arguments_class, extra=extra, drop=drop
    )


def run_dpo(
    config: DPOConfig,
    options: RunOptions,
    events: EventWriter,
    callbacks: Sequence[TrainerCallback] = (),
) -> DPOResult:
    """Run one preference-optimization experiment."""
    from finetuning.data.preference import TruncatingPreferenceCollator, prepare_preference_datasets

    preflight_training(config)
    args_conf, run_conf = config.training_args, config.run_conf
    trainer_class, arguments_class = _trainer_classes(config.trainer_name)
    setup = prepare_run(args_conf, config.batchsize_conf, config.overrides, run_conf, config.tracking, options, events)
    training_args = preference_arguments(config, setup, arguments_class, options.num_preprocess_workers)
    resolved = {**setup.describe(), "trainer": config.trainer_name}
    events.run_started("dpo", config={**config.model_dump(mode="json"), "resolved": resolved})

    events.phase("loading_tokenizer")
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, run_conf, "dpo")

    events.phase("preprocessing")
    # the main process of each node writes the rows; the others (and later jobs on the same volume) reuse them
    with setup.state.local_main_process_first():
        train_dataset, eval_dataset = prepare_preference_datasets(
            config.data_conf, unpaired=config.trainer_name == "kto", cache_dir=preprocessing_cache(options)
        )
    trim_preprocessing_cache(setup, options, events)

    hashing = start_input_hashing(config, options, events)
    events.phase("loading_model")
    loaded = load_trainable_model(
        run_conf,
        config.peft_conf,
        config.quant_conf,
        args_conf,
        training_args,
        setup,
        tokenizer,
        tokenizer_setup.assistant_end,
        new_basemodel_name=None,
        defer_new_adapter=True,
        # chosen and rejected go through the model together
        tokens_per_micro_batch=2
        * setup.plan.per_device_train_batch_size
        * int(getattr(training_args, "max_length", 0) or 1024),
    )
    record_manifest(events, "dpo", config, setup, training_args, loaded.model, hashing, options, resolved)
    trainer_kwargs: dict[str, Any] = {"peft_config": loaded.peft_config}
    if config.trainer_name in ("dpo", "kto"):
        trainer_kwargs["ref_model"] = None  # derived from the policy: adapter disabled, or a frozen copy
    trainer = trainer_class(
        model=loaded.model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=[EventsCallback(events), *callbacks],
        **trainer_kwargs,
    )
    if config.trainer_name == "dpo" and (args_conf.max_prompt_length or args_conf.max_completion_length):
        trainer.data_collator = TruncatingPreferenceCollator(
            trainer.data_collator,
            args_conf.max_prompt_length,
            args_conf.max_completion_length,
            bos_token_id=tokenizer.bos_token_id,
        )
    reference = describe_reference(trainer, config.trainer_name)
    logger.info("%s trainer; reference model: %s", config.trainer_name.upper(), reference)
    outcome = train_and_save(
        trainer,
        setup,
        events,
        evaluate_at_end=eval_dataset is not None and training_args.eval_strategy == "no",
        final_checkpoint_name=run_conf.final_checkpoint_name,
    )
    return DPOResult(outcome, config.trainer_name, reference, len(train_dataset), len(eval_dataset or []))
