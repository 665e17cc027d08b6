"""The plan of a GRPO run: its prompts checked as the run checks them (bad rows, rows a grader cannot read, prompts
that end with the answer), their token statistics as TRL renders them (the chat template and its generation prompt),
the steps TRL's repeat sampler gives, and what sampling costs: completions, generated tokens, FLOPs and time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.batchsize import BatchPlan
from finetuning.config.jobs import GRPOConfig
from finetuning.plan.estimates import (
    flops_per_token,
    length_statistics,
    memory_section,
    meta_model,
    model_section,
    step_totals,
)
from finetuning.plan.options import PlanOptions
from finetuning.plan.problems import Problems
from finetuning.plan.report import overall_verdicts
from finetuning.plan.sample import READ_ALL, Sample, data_section
from finetuning.throughput_table import (
    ACCELERATORS,
    ASSUMED_BANDWIDTH_USE,
    ASSUMED_MFU,
    CPU_MEASURED,
    accelerator,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

_RENDER_BATCH = 1000


def plan_grpo(
    config: GRPOConfig, sample: Sample, batch: BatchPlan, options: PlanOptions, cache_dir: Path
) -> dict[str, Any]:
    from finetuning.data.loading import BadRows
    from finetuning.data.prompts import prepare_prompt_datasets
    from finetuning.methods.common import load_training_tokenizer

    tokenizer, _ = load_training_tokenizer(config.data_conf, config.run_conf, "sft")  # as the run loads it
    bad_rows = BadRows(READ_ALL)
    train, validation = prepare_prompt_datasets(
        sample.data_conf, config.graders, bad_rows=bad_rows, require_rows=False, cache_dir=cache_dir
    )
    problems = Problems()
    problems.add_bad_rows(bad_rows.kept, bad_rows.count, sample.original)
    factor = sample.factor
    prompts = prompt_lengths(tokenizer, train)
    train_stats = {**length_statistics(prompts, factor), "truncated": 0, "filtered": 0}
    statistics: dict[str, Any] = {"train": train_stats, "packing": None}
    if validation is not None:
        statistics["validation"] = {"rows": round(len(validation) * factor)}
    grpo = config.grpo_args
    steps = grpo_steps(config, train_stats["rows"], batch)
    model = meta_model(config, tokenizer)
    longest_prompt = int(prompts.max()) if len(prompts) else 0
    per_micro_batch = batch.per_device_train_batch_size * (longest_prompt + grpo.max_completion_length)
    mean_prompt = float(prompts.mean()) if len(prompts) else 0.0
    generation = generation_section(model, config, steps, batch, mean_prompt, options.gpu)
    report: dict[str, Any] = {
        "kind": "grpo",
        "data": data_section(sample),
        "problems": problems.report(),
        "statistics": statistics,
        "steps": steps,
        "model": model_section(model, config),
        "memory": memory_section(model, config, per_micro_batch, options.gpu, reference=grpo.beta > 0),
        "generation": generation,
        "time": generation.pop("time"),
        "resolved_extra": {
            "num_generations": grpo.num_generations,
            "prompts_per_step": steps["prompts_per_step"],
            "max_completion_length": grpo.max_completion_length,
        },
    }
    report["memory"]["notes"].append(
        f"tokens per micro-batch: {batch.per_device_train_batch_size} completions x (the longest prompt, "
        f"{longest_prompt} tokens, + max_completion_length {grpo.max_completion_length}); vLLM, where it generates, "
        f"takes grpo_args.vllm_gpu_memory_utilization={grpo.vllm_gpu_memory_utilization} of the GPU on top"
    )
    verdicts = overall_verdicts(config, problems, report)
    if train_stats["rows"] and steps["steps_per_epoch"] == 0:
        verdicts.append(
            f"{train_stats['rows']} training prompts are fewer than one step takes ({steps['prompts_per_step']} = "
            "total_train_batch_size / num_generations): the run would train nothing; lower total_train_batch_size"
        )
    report["verdicts"] = verdicts
    return report


def prompt_lengths(tokenizer: PreTrainedTokenizerBase, dataset: Dataset) -> np.ndarray:
    """Each prompt's tokens as TRL's GRPO trainer makes them: the chat template with the generation prompt,
    tokenized (through the engine's framing, so the BOS the run adds is counted)."""
    lengths: list[int] = []
    for start in range(0, len(dataset), _RENDER_BATCH):
        prompts = dataset[start : start + _RENDER_BATCH]["prompt"]
        encoded: Any = tokenizer.apply_chat_template(
            conversation=prompts, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return np.asarray(lengths, dtype=np.int64)


def grpo_steps(config: GRPOConfig, prompts: int, batch: BatchPlan) -> dict[str, Any]:
    """Optimizer steps as TRL's GRPO trainer counts them: a step takes ``total_train_batch_size`` completions,
    ``num_generations`` per prompt; its repeat sampler drops the prompts of an incomplete step each epoch and
    repeats each step's batch ``num_iterations`` times."""
    grpo = config.grpo_args
    per_step = batch.total_train_batch_size // grpo.num_generations
    per_epoch = (prompts // per_step) * grpo.num_iterations if per_step else 0
    return {
        **step_totals(config.training_args, prompts, per_epoch),
        "prompts_per_step": per_step,
        "completions_per_step": per_step * grpo.num_generations,
        "prompts_left_out_per_epoch": prompts % per_step if per_step else prompts,
    }


def generation_section(
    model: Any, config: GRPOConfig, steps: dict[str, Any], batch: BatchPlan, mean_prompt: float, gpu: str | None
) -> dict[str, Any]:
    """What sampling and learning from the samples cost, at most (every completion runs to max_completion_length).

    FLOPs per step: generation (2 x parameters per prompt token prefilled and per token generated), the policy's
    training pass over prompt + completion (:func:`flops_per_token`) once per ``num_iterations``, and one forward
    pass each for the old policy (``num_iterations`` > 1) and the reference model (``beta`` > 0). GPU time adds the
    decoding bound: each generated token's step reads every weight once (bandwidth-bound unless the batch is large)."""
    grpo = config.grpo_args
    section = model_section(model, config)
    parameters = section["parameters"]
    completions = steps["completions_per_step"]
    generated = completions * grpo.max_completion_length
    prefilled = completions * mean_prompt
    sequence = mean_prompt + grpo.max_completion_length
    train_tokens = completions * sequence
    per_token = flops_per_token(
        parameters, section["layers"], section["hidden_size"], sequence, full=section["training"] == "full"
    )
    forwards = int(grpo.num_iterations > 1) + int(grpo.beta > 0)
    generation_flops = 2 * parameters * (prefilled + generated)
    training_flops = per_token * train_tokens * grpo.num_iterations + forwards * 2 * parameters * train_tokens
    total_steps = steps["total"]
    flops = (generation_flops + training_flops) * total_steps
    measured = CPU_MEASURED
    cpu_rate = measured.real_tokens_per_s * flops_per_token(
        measured.parameters, measured.layers, measured.hidden, measured.mean_tokens, full=True
    )
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    per_device = completions / batch.num_processes  # sequences each process decodes at once
    cards = [accelerator(gpu)] if gpu else list(ACCELERATORS.values())
    estimates = []
    for card in cards:
        per_decode_step = max(
            weight_bytes / (ASSUMED_BANDWIDTH_USE * card.memory_bandwidth),
            2 * parameters * per_device / (ASSUMED_MFU * card.peak_bf16_flops),
        )
        prefill_s = 2 * parameters * prefilled / (ASSUMED_MFU * card.peak_bf16_flops * batch.num_processes)
        generate_s = grpo.max_completion_length * per_decode_step + prefill_s
        train_s = training_flops / (ASSUMED_MFU * card.peak_bf16_flops * batch.num_processes)
        seconds = (generate_s + train_s) * total_steps
        estimates.append(
            {
                "gpu": card.name,
                "basis": "assumed",
                "mfu": ASSUMED_MFU,
                "bandwidth_use": ASSUMED_BANDWIDTH_USE,
                "generation_seconds_per_step": float(f"{generate_s:.4g}"),
                "training_seconds_per_step": float(f"{train_s:.4g}"),
                "seconds": float(f"{seconds:.4g}"),
                "gpu_hours": round(seconds * batch.num_processes / 3600, 3),
                "source": card.source,
            }
        )
    return {
        "num_generations": grpo.num_generations,
        "completions_per_step": completions,
        "max_completion_length": grpo.max_completion_length,
        "generated_tokens_per_step_at_most": generated,
        "generated_tokens_at_most": generated * total_steps,
        "prompt_tokens_per_step": round(prefilled),
        "flops_per_step": {"generation": generation_flops, "training": training_flops},
        "reference_model": grpo.beta > 0,
        "time": {
            "tokens": round(train_tokens * total_steps),
            "flops": flops,
            "flops_per_token": per_token,
            "cpu": {
                "basis": "measured",
                "seconds": round(flops / cpu_rate, 3),
                "source": measured.source,
                "achieved_flops_per_s": round(cpu_rate),
                "note": "the measured training rate applied to every FLOP: sampling on a CPU is slower than this",
            },
            "gpus": estimates,
            "note": (
                "An upper bound, NOT measured: every completion is assumed to run to max_completion_length. Decoding "
                "is bounded by reading the weights once per generated token (ASSUMED share of the card's bandwidth) "
                "or by its FLOPs at the ASSUMED MFU, whichever is slower; vLLM comes close to this bound, "
                "transformers' generate (no vLLM) is several times slower."
            ),
        },
    }
