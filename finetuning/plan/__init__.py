"""The pre-flight plan: what a training run would do with its data, its batch sizes and its devices, before it runs.

``finetuning plan sft|dpo cfg.yaml`` (and ``POST /v1/jobs/{kind}?dry_run=true``) run the real run's own steps on the
real data: the same start-up checks (:mod:`finetuning.preflight`), the same tokenizer and chat template
(:func:`finetuning.methods.common.load_training_tokenizer`), the same preprocessing (SFT:
:func:`finetuning.data.preprocess.prepare_sft_datasets`; preference data:
:func:`finetuning.data.preference.prepare_preference_datasets` and TRL's own tokenization), the same labels
(the SFT collator's ``row_labels``: completions-only masking), the same packing rule
(:func:`finetuning.data.bfd.bfd_bins`), the same batch plan and learning rate (:mod:`finetuning.batchsize`) and
the same memory estimator (:mod:`finetuning.memory`, on the model built on the ``meta`` device: no weights are
read). Nothing is trained and no model weights are loaded.

The report lists every problem row (file, line, reason), the token statistics, the resolved values, the steps, a
memory estimate per device with a verdict for a declared GPU, and a time estimate from
:mod:`finetuning.throughput_table` (measured on the CPU; assumed for GPUs, and labelled so). See docs/plan.md.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from finetuning.batchsize import plan_batches, scaled_learning_rate
from finetuning.config.jobs import GRPOConfig, SFTConfig
from finetuning.plan.grpo import plan_grpo
from finetuning.plan.inputs import local_inputs
from finetuning.plan.options import PlanOptions, TrainingConfig
from finetuning.plan.preference import plan_dpo
from finetuning.plan.report import summary, to_json
from finetuning.plan.sample import sampled
from finetuning.plan.sft import plan_sft
from finetuning.preflight import preflight_training
from finetuning.settings import get_engine_settings
from finetuning.throughput_table import accelerator

PLAN_VERSION = 1

__all__ = ["PlanOptions", "plan_training", "summary", "to_json"]


def plan_training(config: TrainingConfig, options: PlanOptions | None = None) -> dict[str, Any]:
    """The plan of ``config``'s run (SFT, preference optimization or GRPO) as a JSON-ready report."""
    options = options or PlanOptions()
    started = time.monotonic()
    config, originals = local_inputs(config, get_engine_settings())
    preflight_training(config)  # a missing model or data file: the run's own error (PreflightError)
    if options.gpu is not None:
        accelerator(options.gpu)  # an unknown card fails before any work
    batch = plan_batches(config.batchsize_conf, options.num_processes)
    learning_rate = scaled_learning_rate(
        config.training_args.learning_rate, config.overrides, batch.total_train_batch_size
    )
    owned = None
    cache_dir = options.cache_dir
    if cache_dir is None:
        owned = Path(tempfile.mkdtemp(prefix="finetuning-plan-"))
        cache_dir = owned
    try:
        with sampled(config.data_conf, options.max_rows, cache_dir, originals) as sample:
            if isinstance(config, SFTConfig):
                report = plan_sft(config, sample, batch, options, cache_dir)
            elif isinstance(config, GRPOConfig):
                report = plan_grpo(config, sample, batch, options, cache_dir)
            else:
                report = plan_dpo(config, sample, batch, options, cache_dir)
    finally:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
    report["resolved"] = {
        "num_processes": batch.num_processes,
        "per_device_train_batch_size": batch.per_device_train_batch_size,
        "gradient_accumulation_steps": batch.gradient_accumulation_steps,
        "per_device_eval_batch_size": batch.per_device_eval_batch_size,
        "total_train_batch_size": batch.total_train_batch_size,
        "learning_rate": learning_rate,
        **report.pop("resolved_extra", {}),
    }
    report["plan_version"] = PLAN_VERSION
    report["elapsed_s"] = round(time.monotonic() - started, 3)
    return report
