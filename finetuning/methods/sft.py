"""Supervised finetuning: tokenizer -> data -> model -> PEFT -> Trainer -> final checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.batchsize import plan_batches, scaled_learning_rate
from finetuning.config.jobs import SFTConfig
from finetuning.config.model import Determinism, NoPeftConf
from finetuning.events import EventsCallback, EventWriter
from finetuning.preflight import preflight_sft
from finetuning.runtime import (
    RunOptions,
    build_training_arguments,
    output_dir_for,
    resolve_resume,
    seed_everything,
)
from finetuning.tracking import apply_report_to, configure_tracking, mlflow_run

if TYPE_CHECKING:
    from transformers import TrainerCallback

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTResult:
    final_checkpoint: Path
    new_basemodel: Path | None
    global_step: int
    train_loss: float | None
    eval_metrics: dict[str, float]
    mlflow_run_id: str | None
    train_examples: int
    eval_examples: int


def run_sft(
    config: SFTConfig,
    options: RunOptions,
    events: EventWriter,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTResult:
    """Run one SFT experiment; ``callbacks`` are extra Trainer callbacks (the service uses them to cancel)."""
    from accelerate import PartialState
    from transformers import Trainer

    from finetuning import models
    from finetuning.collators import build_sft_collator
    from finetuning.data.preprocess import prepare_sft_datasets
    from finetuning.tokenizer import load_tokenizer

    preflight_sft(config)
    args_conf, run_conf = config.training_args, config.run_conf
    # the same process group TrainingArguments would set up; created first because the batch plan needs its size
    state = PartialState(cpu=args_conf.use_cpu)

    tracking = configure_tracking(options.tracking, config.tracking, options.settings)
    plan = plan_batches(config.batchsize_conf, state.num_processes)
    learning_rate = scaled_learning_rate(args_conf.learning_rate, config.overrides, plan.total_train_batch_size)
    if learning_rate != args_conf.learning_rate:
        logger.info("learning rate %g -> %g (overrides)", args_conf.learning_rate, learning_rate)
    output_dir = output_dir_for(args_conf, options.settings)
    seed_everything(args_conf.seed, run_conf.determinism)
    training_args = build_training_arguments(
        args_conf,
        plan,
        output_dir=output_dir,
        learning_rate=learning_rate,
        report_to=apply_report_to(args_conf.report_to, tracking.enabled),
        full_determinism=run_conf.determinism == Determinism.FULL,
    )
    resume = resolve_resume(run_conf.resume_from_checkpoint, output_dir)
    resolved = _resolved(plan, learning_rate, output_dir, resume, tracking.run_name)
    events.run_started("sft", config={**config.model_dump(mode="json"), "resolved": resolved})

    events.phase("loading_tokenizer")
    tokenizer, setup = load_tokenizer(
        run_conf.tokenizer or run_conf.model,
        template=config.data_conf.chat_template_name,
        padding_side=config.data_conf.padding_side,
        pad_strategy=config.data_conf.missing_pad_token_strategy,
        use_fast=run_conf.use_fast_tokenizer,
        trust_remote_code=run_conf.model_args.trust_remote_code,
        for_training_method="sft",
    )

    events.phase("preprocessing")
    with state.main_process_first():  # the main process fills the cache; the others read it
        train_dataset, eval_dataset = prepare_sft_datasets(
            config.data_conf,
            config.sft_args,
            tokenizer,
            num_proc=options.num_preprocess_workers,
            cache_dir=options.settings.cache_dir / "preprocessed",
        )
    logger.info("training on %d examples, validating on %d", len(train_dataset), len(eval_dataset or []))

    events.phase("loading_model")
    quantization = models.quantization_config(
        config.quant_conf, fsdp=bool(args_conf.fsdp), bf16=args_conf.bf16, fp16=args_conf.fp16
    )
    model = models.load_model(
        run_conf.model,
        run_conf.model_args,
        quantization,
        device_map=models.default_device_map(
            state.num_processes,
            state.local_process_index,
            deepspeed=args_conf.deepspeed is not None,
            on_cpu=training_args.device.type == "cpu",
        ),
    )
    vocab_grew = models.grow_embeddings(model, tokenizer)
    models.sync_special_token_ids(model, tokenizer, setup.assistant_end)
    new_basemodel = None
    if vocab_grew and not isinstance(config.peft_conf, NoPeftConf):
        # the adapter is only usable on top of the grown base: save that base beside it
        new_basemodel = output_dir / config.sft_args.save_name_if_new_basemodel
        if state.is_main_process:
            model.save_pretrained(new_basemodel)
            tokenizer.save_pretrained(new_basemodel)
    model, _ = models.attach_peft(
        model,
        config.peft_conf,
        vocab_grew=vocab_grew,
        gradient_checkpointing=bool(training_args.gradient_checkpointing),
        gradient_checkpointing_kwargs=_as_dict(training_args.gradient_checkpointing_kwargs),
        sharded=bool(args_conf.fsdp),
    )

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=build_sft_collator(tokenizer, setup, completions_only=config.sft_args.train_on_completions_only),
        processing_class=tokenizer,
        callbacks=[EventsCallback(events), *callbacks],
    )
    with mlflow_run(tracking, main_process=state.is_main_process) as mlflow_run_id:
        output = trainer.train(resume_from_checkpoint=resume)
        eval_metrics: dict[str, float] = {}
        if eval_dataset is not None and training_args.eval_strategy == "no":
            # validation data was given but no schedule: evaluate once at the end rather than never
            events.phase("evaluating")
            eval_metrics = trainer.evaluate()

    events.phase("saving")
    final_checkpoint = output_dir / run_conf.final_checkpoint_name
    trainer.save_model(str(final_checkpoint))
    state.wait_for_everyone()
    return SFTResult(
        final_checkpoint=final_checkpoint,
        new_basemodel=new_basemodel,
        global_step=trainer.state.global_step,
        train_loss=output.training_loss,
        eval_metrics=eval_metrics,
        mlflow_run_id=mlflow_run_id,
        train_examples=len(train_dataset),
        eval_examples=len(eval_dataset or []),
    )


def _resolved(plan: Any, learning_rate: float, output_dir: Path, resume: bool | str, run_name: str | None) -> dict:
    return {
        "num_processes": plan.num_processes,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "per_device_eval_batch_size": plan.per_device_eval_batch_size,
        "total_train_batch_size": plan.total_train_batch_size,
        "learning_rate": learning_rate,
        "output_dir": str(output_dir),
        "resume_from_checkpoint": resume,
        "mlflow_run_name": run_name,
    }


def _as_dict(value: Any) -> dict[str, Any] | None:
    """TrainingArguments accepts some dict fields as JSON strings; by now they are parsed."""
    return value if isinstance(value, dict) else None
