"""Supervised finetuning: tokenizer -> data -> model -> PEFT -> Trainer -> final checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.config.jobs import SFTConfig
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
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase, TrainerCallback

    from finetuning.methods.common import RunSetup
    from finetuning.tokenizer import TokenizerSetup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTResult:
    outcome: TrainOutcome
    new_basemodel: str | None  # a path, or its bucket URI when the output is published
    train_examples: int
    eval_examples: int


def run_sft(
    config: SFTConfig,
    options: RunOptions,
    events: EventWriter,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTResult:
    """Run one SFT experiment; ``callbacks`` are extra Trainer callbacks (the service uses them to cancel)."""
    from finetuning.collators import PackedCollator
    from finetuning.data.preprocess import prepare_sft_datasets
    from finetuning.trainer import EngineTrainer

    preflight_training(config)
    args_conf, run_conf = config.training_args, config.run_conf
    setup = prepare_run(args_conf, config.batchsize_conf, config.overrides, run_conf, config.tracking, options, events)
    training_args = training_arguments(setup, args_conf, run_conf.determinism)
    _gpu_defaults(args_conf.model_fields_set, training_args, setup.plan.num_processes)
    resolved = setup.describe()
    events.run_started("sft", config={**config.model_dump(mode="json"), "resolved": resolved})

    events.phase("loading_tokenizer")
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, run_conf, "sft")

    events.phase("preprocessing")
    # once per node: the node's main process fills the cache (its preprocessing events say whether it was a hit),
    # then the others read its result from there
    with setup.state.local_main_process_first():
        train_dataset, eval_dataset = prepare_sft_datasets(
            config.data_conf,
            config.sft_args,
            tokenizer,
            num_proc=options.num_preprocess_workers,
            cache_dir=preprocessing_cache(options),
            events=events,
        )
    logger.info("training on %d examples, validating on %d", len(train_dataset), len(eval_dataset or []))

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
        new_basemodel_name=config.sft_args.save_name_if_new_basemodel,
        tokens_per_micro_batch=setup.plan.per_device_train_batch_size * config.sft_args.max_seq_length,
    )
    record_manifest(events, "sft", config, setup, training_args, loaded.model, hashing, options, resolved)
    n_train, n_eval = len(train_dataset), len(eval_dataset or [])
    collator, train_dataset, eval_dataset = _batching(
        config, loaded.model, tokenizer, tokenizer_setup, train_dataset, eval_dataset, setup, options, events
    )
    trim_preprocessing_cache(setup, options, events)  # the run's data is ready: tokenized, and packed if it is
    if isinstance(collator, PackedCollator):
        training_args.remove_unused_columns = False  # the collator needs seq_lengths, which forward does not take
    trainer = EngineTrainer(
        model=loaded.model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[EventsCallback(events), *callbacks],
        chunked_loss=config.sft_args.chunked_loss,
    )
    outcome = train_and_save(
        trainer,
        setup,
        events,
        # validation data but no schedule: evaluate once at the end rather than never
        evaluate_at_end=eval_dataset is not None and training_args.eval_strategy == "no",
        final_checkpoint_name=run_conf.final_checkpoint_name,
    )
    new_basemodel = None if loaded.new_basemodel is None else setup.output.public(loaded.new_basemodel)
    return SFTResult(outcome, new_basemodel, n_train, n_eval)


def _batching(
    config: SFTConfig,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    tokenizer_setup: TokenizerSetup,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
    setup: RunSetup,
    options: RunOptions,
    events: EventWriter,
) -> tuple[Any, Dataset, Dataset | None]:
    """The collator and datasets: packed rows where packing is on and safe for ``model``, else padded batches."""
    from finetuning.collators import PackedCollator, build_sft_collator
    from finetuning.data.packing import flattens_batches, pack_sft, packing_problem

    sft_args = config.sft_args
    padded = build_sft_collator(tokenizer, tokenizer_setup, completions_only=sft_args.train_on_completions_only)
    if not sft_args.packing:
        return padded, train_dataset, eval_dataset
    problem = packing_problem(model)
    if problem:
        logger.warning("packing off (padded batches instead): %s", problem)
        return padded, train_dataset, eval_dataset
    # what the labels depend on besides the tokens: the collator's kind and its markers
    labeler_key = f"{type(padded).__name__}:{getattr(padded, 'start_ids', '')}:{getattr(padded, 'end_ids', '')}"
    seq_length = sft_args.max_seq_length
    cache_dir = preprocessing_cache(options)
    with setup.state.local_main_process_first():
        packed_train, stats = pack_sft(
            train_dataset, padded.row_labels, labeler_key, seq_length, cache_dir=cache_dir, events=events
        )
        packed_eval = None
        if eval_dataset is not None:
            packed_eval, _ = pack_sft(eval_dataset, padded.row_labels, labeler_key, seq_length, cache_dir=cache_dir)
    events.log(
        "info",
        f"packed {stats.examples} training examples into {stats.rows} rows of up to {seq_length} tokens "
        f"({100 * stats.fill:.1f}% full); batch sizes count rows",
    )
    collator = PackedCollator(padded.input_pad_id, seq_length, flatten=flattens_batches(model))
    return collator, packed_train, packed_eval


def _gpu_defaults(chosen: set[str], training_args: Any, num_processes: int) -> None:
    """On a CUDA device, for what the config leaves unset: Liger's fused kernels (and its fused linear +
    cross-entropy) when installed (the CUDA worker image has them), and batches built by two loader processes per
    training process while the GPU computes (pinned memory is the Trainer's default)."""
    import importlib.util
    import os

    if training_args.device.type != "cuda":
        return
    if "use_liger_kernel" not in chosen and importlib.util.find_spec("liger_kernel") is not None:
        training_args.use_liger_kernel = True
    if "dataloader_num_workers" not in chosen:
        training_args.dataloader_num_workers = min(2, max(0, (os.cpu_count() or 1) // max(1, num_processes) - 1))
        if training_args.dataloader_num_workers and "dataloader_persistent_workers" not in chosen:
            training_args.dataloader_persistent_workers = True
