"""The stages every training method shares: resolve the run, load the model with its adapter, train and save."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from finetuning.batchsize import BatchPlan, plan_batches, scaled_learning_rate
from finetuning.checkpoints import resolve_resume
from finetuning.config.data import DataConf
from finetuning.config.hf_training_args import HFTrainingArguments
from finetuning.config.model import Determinism, NoPeftConf, PeftConf, QuantConf, RunConf
from finetuning.config.tracking import TrackingConf
from finetuning.config.training import BatchsizeConf, Overrides
from finetuning.events import EventWriter
from finetuning.manifest import InputHashing, emit_manifest, trainer_arguments, training_pins
from finetuning.runtime import RunOptions, accelerator_available, output_place_for, seed_everything
from finetuning.stopping import stop_callback, stopped_checkpoint
from finetuning.storage.places import OutputPlace, fetch_last_checkpoint
from finetuning.storage.publish import Publisher
from finetuning.tracking import TrackingDecision, apply_report_to, configure_tracking, mlflow_run

if TYPE_CHECKING:
    from accelerate import PartialState
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from finetuning.tokenizer import TokenizerSetup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSetup:
    """What the engine resolved before loading anything: processes, batch plan, learning rate, where to write."""

    state: PartialState
    tracking: TrackingDecision
    plan: BatchPlan
    learning_rate: float
    output: OutputPlace
    resume: bool | str
    # the service's job and run of it, and the checkpoint resumed: a resumed job's runs tell one story in MLflow
    mlflow_tags: dict[str, str] = field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        """Where the run writes (the local staging folder of a bucket output)."""
        return self.output.local

    def describe(self) -> dict[str, Any]:
        """The computed values the job echoes beside its config."""
        return {
            "num_processes": self.plan.num_processes,
            "per_device_train_batch_size": self.plan.per_device_train_batch_size,
            "gradient_accumulation_steps": self.plan.gradient_accumulation_steps,
            "per_device_eval_batch_size": self.plan.per_device_eval_batch_size,
            "total_train_batch_size": self.plan.total_train_batch_size,
            "learning_rate": self.learning_rate,
            "output_dir": self.output.public(self.output.local),
            "resume_from_checkpoint": self.output.public(self.resume) if isinstance(self.resume, str) else self.resume,
            "mlflow_run_name": self.tracking.run_name,
        }


def preprocessing_cache(options: RunOptions) -> Path:
    """Where tokenized data files, preference and prompt rows and packed rows are kept for later runs (the engine's
    cache folder)."""
    return options.settings.cache_dir / "preprocessed"


def trim_preprocessing_cache(setup: RunSetup, options: RunOptions, events: EventWriter | None = None) -> None:
    """Once the run's data is prepared (every entry it uses held by the processes using it): the node's main process
    evicts the least recently used entries of the preprocessing cache beyond ``FINETUNING_PREPROCESS_CACHE_MAX_GB``,
    never one in use, and the leftovers of killed runs. A failure to delete is logged, never fatal."""
    if not setup.state.is_local_main_process:
        return
    from finetuning.data.preprocessing_cache import evict_preprocessing_cache

    limit_gb = options.settings.preprocess_cache_max_gb
    try:
        eviction = evict_preprocessing_cache(preprocessing_cache(options), int(limit_gb * 2**30))
    except OSError as exc:
        logger.warning("could not trim the preprocessing cache: %s", exc)
        return
    if eviction.evicted and events is not None:
        events.log(
            "info",
            f"preprocessing cache: evicted {len(eviction.evicted)} least recently used entries "
            f"({eviction.freed / 2**20:.1f} MiB) beyond FINETUNING_PREPROCESS_CACHE_MAX_GB={limit_gb:g}",
        )


def prepare_run(
    args_conf: HFTrainingArguments,
    batchsize_conf: BatchsizeConf,
    overrides: Overrides,
    run_conf: RunConf,
    tracking_conf: TrackingConf | None,
    options: RunOptions,
    events: EventWriter | None = None,
) -> RunSetup:
    from accelerate import PartialState

    # the same process group TrainingArguments would set up; created first because the batch plan needs its size
    state = PartialState(cpu=args_conf.use_cpu)
    tracking = configure_tracking(options.tracking, tracking_conf, options.settings)
    plan = plan_batches(batchsize_conf, state.num_processes)
    learning_rate = scaled_learning_rate(args_conf.learning_rate, overrides, plan.total_train_batch_size)
    if learning_rate != args_conf.learning_rate:
        logger.info("learning rate %g -> %g (overrides)", args_conf.learning_rate, learning_rate)
    output = output_place_for(args_conf, options.settings)
    seed_everything(args_conf.seed, run_conf.determinism)
    if output.remote is not None and run_conf.resume_from_checkpoint in ("auto", True):
        # the newest checkpoint whose upload completed, from the bucket (any machine may resume any run)
        with state.main_process_first():
            if state.is_local_main_process:
                fetch_last_checkpoint(output, events)
    resume = resolve_resume(run_conf.resume_from_checkpoint, output.local)
    tags = {"finetuning.job_id": options.settings.job_id, "finetuning.attempt": options.settings.attempt}
    if isinstance(resume, str):
        tags["finetuning.resumed_from"] = output.public(resume)
    mlflow_tags = {name: str(value) for name, value in tags.items() if value is not None}
    return RunSetup(state, tracking, plan, learning_rate, output, resume, mlflow_tags)


def training_arguments(
    setup: RunSetup,
    args_conf: HFTrainingArguments,
    determinism: Determinism,
    *,
    arguments_class: type[TrainingArguments] | None = None,
    extra: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> TrainingArguments:
    """The library's arguments: what the user set, the computed batch sizes and learning rate, and the engine's
    choices (``extra``; ``drop`` removes fields the arguments class does not have)."""
    from transformers import TrainingArguments

    plan = setup.plan
    kwargs = args_conf.model_dump(exclude_unset=True, exclude=set(drop))
    kwargs.update(
        output_dir=str(setup.output_dir),
        per_device_train_batch_size=plan.per_device_train_batch_size,
        per_device_eval_batch_size=plan.per_device_eval_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        learning_rate=setup.learning_rate,
        report_to=apply_report_to(args_conf.report_to, setup.tracking.enabled),
    )
    if determinism == Determinism.FULL:
        kwargs["full_determinism"] = True
    if "use_cpu" not in kwargs and not accelerator_available():
        # a recipe written for GPUs (bf16: true, no use_cpu) runs on a machine without one: on the CPU, where bf16
        # is valid, rather than failing transformers' "no bf16 GPU" check
        logger.info("no accelerator here: training on the CPU (use_cpu: true)")
        kwargs["use_cpu"] = True
    # tokens per second in the events counts real (non-padding) tokens
    kwargs.setdefault("include_num_input_tokens_seen", "non_padding")
    # the filter reads every step's loss back from the device (a synchronisation per step) only to hide a NaN
    # from the logs; without it a NaN shows up in the logged loss, where it belongs
    kwargs.setdefault("logging_nan_inf_filter", False)
    if isinstance(kwargs.get("deepspeed"), dict):
        deepspeed = dict(kwargs["deepspeed"])
        deepspeed["train_micro_batch_size_per_gpu"] = plan.per_device_train_batch_size
        deepspeed["gradient_accumulation_steps"] = plan.gradient_accumulation_steps
        deepspeed["train_batch_size"] = plan.total_train_batch_size
        kwargs["deepspeed"] = deepspeed
    kwargs.update(extra or {})
    return (arguments_class or TrainingArguments)(**kwargs)


def load_training_tokenizer(
    data_conf: DataConf, run_conf: RunConf, method: Literal["sft", "dpo"]
) -> tuple[PreTrainedTokenizerBase, TokenizerSetup]:
    """The tokenizer with the configured template, pad strategy and inference-ready saving."""
    from finetuning.tokenizer import load_tokenizer

    return load_tokenizer(
        run_conf.tokenizer or run_conf.model,
        template=data_conf.chat_template_name,
        padding_side=data_conf.padding_side,
        pad_strategy=data_conf.missing_pad_token_strategy,
        use_fast=run_conf.use_fast_tokenizer,
        trust_remote_code=run_conf.model_args.trust_remote_code,
        for_training_method=method,
    )


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # the model to train: a PeftModel unless NO_PEFT or the adapter is deferred
    peft_config: Any  # a new adapter for the trainer to attach (``defer_new_adapter``), else None
    vocab_grew: bool
    new_basemodel: Path | None


def load_trainable_model(
    run_conf: RunConf,
    peft_conf: PeftConf,
    quant_conf: QuantConf,
    args_conf: HFTrainingArguments,
    training_args: TrainingArguments,
    setup: RunSetup,
    tokenizer: PreTrainedTokenizerBase,
    stop_token: str,
    *,
    new_basemodel_name: str | None,
    defer_new_adapter: bool = False,
    tokens_per_micro_batch: int | None = None,
) -> LoadedModel:
    """Load the base, grow its vocabulary for the template's tokens, save the grown base beside an adapter (when
    ``new_basemodel_name`` is given), and attach the adapter (a new one is left to the trainer with
    ``defer_new_adapter``). On a CUDA device, activation checkpointing that the config leaves unset is turned on only
    when a micro-batch of ``tokens_per_micro_batch`` tokens would not fit without it (:mod:`finetuning.memory`)."""
    from finetuning import models

    quantization = models.quantization_config(
        quant_conf, fsdp=bool(args_conf.fsdp), bf16=bool(training_args.bf16), fp16=bool(training_args.fp16)
    )
    model: PreTrainedModel = models.load_model(
        run_conf.model,
        run_conf.model_args,
        quantization,
        device_map=models.default_device_map(
            setup.state.num_processes,
            setup.state.local_process_index,
            deepspeed=args_conf.deepspeed is not None,
            on_cpu=training_args.device.type == "cpu",
        ),
    )
    vocab_grew = models.grow_embeddings(model, tokenizer)
    models.sync_special_token_ids(model, tokenizer, stop_token)
    new_basemodel = None
    if vocab_grew and new_basemodel_name and not isinstance(peft_conf, NoPeftConf):
        # the adapter is only usable on top of the grown base: save that base beside it
        new_basemodel = setup.output_dir / new_basemodel_name
        if setup.state.is_main_process:
            model.save_pretrained(new_basemodel)
            tokenizer.save_pretrained(new_basemodel)
    if tokens_per_micro_batch and _checkpointing_left_to_us(args_conf, training_args):
        from finetuning.memory import choose_checkpointing

        decision = choose_checkpointing(
            model,
            tokens_per_micro_batch,
            training_args.device.index or 0,
            trains_base=isinstance(peft_conf, NoPeftConf),
        )
        training_args.activation_checkpointing = training_args.gradient_checkpointing = decision
    checkpointing_kwargs = training_args.gradient_checkpointing_kwargs
    trainable, peft_config = models.attach_peft(
        model,
        peft_conf,
        vocab_grew=vocab_grew,
        gradient_checkpointing=bool(training_args.gradient_checkpointing),
        gradient_checkpointing_kwargs=checkpointing_kwargs if isinstance(checkpointing_kwargs, dict) else None,
        sharded=bool(args_conf.fsdp),
        defer_new_adapter=defer_new_adapter,
    )
    on_cpu = training_args.device.type == "cpu"
    if training_args.fp16 and on_cpu:
        logger.warning(
            "fp16: true has no effect on the CPU (accelerate runs fp16 autocast on GPUs only): the model trains in "
            "its own dtype; bf16: true is mixed precision on the CPU"
        )
    # accelerate autocasts bf16 on every device, fp16 off the CPU only
    autocast = bool(training_args.bf16 or (training_args.fp16 and not on_cpu))
    models.keep_trainable_weights_in_float32(trainable, mixed_precision=autocast)
    return LoadedModel(trainable, peft_config, vocab_grew, new_basemodel)


@dataclass(frozen=True)
class TrainOutcome:
    final_checkpoint: str  # a path, or its bucket URI when the output is published
    global_step: int
    train_loss: float | None
    eval_metrics: dict[str, float]
    mlflow_run_id: str | None


def train_and_save(
    trainer: Trainer,
    setup: RunSetup,
    events: EventWriter,
    *,
    evaluate_at_end: bool,
    final_checkpoint_name: str,
) -> TrainOutcome:
    """Train (resuming if asked), evaluate once at the end if asked, save the final model or adapter. With a bucket
    output, each checkpoint is uploaded in the background as soon as it is saved, and the rest at the end."""
    # a stop request (worker shutdown, cancel with checkpoint) saves a checkpoint at the next step and ends training
    trainer.add_callback(stop_callback())
    publisher = Publisher.start(setup.output, trainer, events, main_process=setup.state.is_main_process)
    try:
        with mlflow_run(
            setup.tracking, main_process=setup.state.is_main_process, tags=setup.mlflow_tags
        ) as mlflow_run_id:
            output = trainer.train(resume_from_checkpoint=setup.resume)
            stopped = stopped_checkpoint(setup.output_dir)
            eval_metrics: dict[str, float] = {}
            if evaluate_at_end and stopped is None:
                events.phase("evaluating")
                eval_metrics = trainer.evaluate()
        if stopped is not None:
            setup.state.wait_for_everyone()
            publisher.finish(final=None)  # the stop's checkpoint is uploaded before the run says it stopped
            if stopped.checkpoint is not None:
                stopped.checkpoint = setup.output.public(stopped.checkpoint)
            raise stopped
        events.phase("saving")
        final_checkpoint = setup.output_dir / final_checkpoint_name
        trainer.save_model(str(final_checkpoint))
        setup.state.wait_for_everyone()
        publisher.finish(final=setup.output_dir)
    finally:
        publisher.close()
    return TrainOutcome(
        setup.output.public(final_checkpoint),
        trainer.state.global_step,
        output.training_loss,
        eval_metrics,
        mlflow_run_id,
    )


def start_input_hashing(config: Any, options: RunOptions, events: EventWriter) -> InputHashing:
    """Hash the run's inputs (data, model, tokenizer, adapter, settings files) in the background while the model
    loads, for the manifest; only the process that writes events does."""
    return InputHashing(
        config,
        options.input_uris,
        options.settings,
        enabled=events.enabled,
        revisions={"run_conf.model": config.run_conf.model_args.revision},
    )


def record_manifest(
    events: EventWriter,
    method: str,
    config: Any,
    setup: RunSetup,
    training_args: TrainingArguments,
    model: Any,
    hashing: InputHashing,
    options: RunOptions,
    resolved: dict[str, Any],
) -> None:
    """The run's ``manifest`` event, once the model is loaded and the engine's choices are made (docs/manifest.md)."""
    if not events.enabled:
        return
    from accelerate.utils import get_cpu_distributed_information

    inputs = hashing.result()
    emit_manifest(
        events,
        method=method,
        config=config,
        input_uris=options.input_uris,
        inputs=inputs,
        pins=training_pins(config, training_args, model, inputs, resume=resolved.get("resume_from_checkpoint")),
        resolved=resolved,
        settings=options.settings,
        world_size=setup.state.num_processes,
        processes_per_node=get_cpu_distributed_information().local_world_size,
        training_arguments=trainer_arguments(training_args),
    )


def _checkpointing_left_to_us(args_conf: HFTrainingArguments, training_args: TrainingArguments) -> bool:
    """CUDA, no FSDP/DeepSpeed (they bring their own), and the config sets neither checkpointing field."""
    chosen = {"gradient_checkpointing", "activation_checkpointing"} & args_conf.model_fields_set
    sharded = bool(args_conf.fsdp) or args_conf.deepspeed is not None
    return training_args.device.type == "cuda" and not chosen and not sharded
