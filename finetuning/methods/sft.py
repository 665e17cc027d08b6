"""Supervised finetuning: tokenizer -> data -> model -> PEFT -> Trainer -> final checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from finetuning.config.jobs import SFTConfig
from finetuning.events import EventsCallback, EventWriter
from finetuning.methods.common import (
    TrainOutcome,
    load_trainable_model,
    load_training_tokenizer,
    prepare_run,
    train_and_save,
    training_arguments,
)
from finetuning.preflight import preflight_training
from finetuning.runtime import RunOptions

if TYPE_CHECKING:
    from transformers import TrainerCallback

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTResult:
    outcome: TrainOutcome
    new_basemodel: Path | None
    train_examples: int
    eval_examples: int


def run_sft(
    config: SFTConfig,
    options: RunOptions,
    events: EventWriter,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTResult:
    """Run one SFT experiment; ``callbacks`` are extra Trainer callbacks (the service uses them to cancel)."""
    from transformers import Trainer

    from finetuning.collators import build_sft_collator
    from finetuning.data.preprocess import prepare_sft_datasets

    preflight_training(config)
    args_conf, run_conf = config.training_args, config.run_conf
    setup = prepare_run(args_conf, config.batchsize_conf, config.overrides, run_conf, config.tracking, options)
    training_args = training_arguments(setup, args_conf, run_conf.determinism)
    events.run_started("sft", config={**config.model_dump(mode="json"), "resolved": setup.describe()})

    events.phase("loading_tokenizer")
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, run_conf, "sft")

    events.phase("preprocessing")
    with setup.state.main_process_first():  # the main process fills the cache; the others read it
        train_dataset, eval_dataset = prepare_sft_datasets(
            config.data_conf,
            config.sft_args,
            tokenizer,
            num_proc=options.num_preprocess_workers,
            cache_dir=options.settings.cache_dir / "preprocessed",
        )
    logger.info("training on %d examples, validating on %d", len(train_dataset), len(eval_dataset or []))

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
    )
    trainer = Trainer(
        model=loaded.model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=build_sft_collator(
            tokenizer, tokenizer_setup, completions_only=config.sft_args.train_on_completions_only
        ),
        processing_class=tokenizer,
        callbacks=[EventsCallback(events), *callbacks],
    )
    outcome = train_and_save(
        trainer,
        setup,
        events,
        # validation data but no schedule: evaluate once at the end rather than never
        evaluate_at_end=eval_dataset is not None and training_args.eval_strategy == "no",
        final_checkpoint_name=run_conf.final_checkpoint_name,
    )
    return SFTResult(outcome, loaded.new_basemodel, len(train_dataset), len(eval_dataset or []))
