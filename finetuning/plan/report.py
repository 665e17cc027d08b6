"""The report's verdicts in words, and its two renderings: JSON, and a summary for people."""

from __future__ import annotations

import json
from typing import Any

from finetuning.plan.options import TrainingConfig
from finetuning.plan.problems import BLOCKING_KINDS, MAX_PROBLEMS_LISTED, Problems


def overall_verdicts(config: TrainingConfig, problems: Problems, report: dict[str, Any]) -> list[str]:
    """What would stop or spoil the run, in words."""
    out = []
    bad = sum(count for kind, count in problems.by_kind.items() if kind in BLOCKING_KINDS)
    limit = config.data_conf.max_bad_rows
    if bad > limit:
        out.append(
            f"the run would fail: {bad} bad rows and data_conf.max_bad_rows={limit}; fix the rows listed or raise "
            "max_bad_rows to skip them"
        )
    elif bad:
        out.append(f"{bad} bad rows will be skipped (data_conf.max_bad_rows={limit})")
    train = report["statistics"]["train"]
    if train["rows"] == 0:
        out.append("no training rows left: the run would fail")
    if train.get("rows_without_loss"):
        out.append(f"about {train['rows_without_loss']} training rows carry no loss (no assistant tokens)")
    for gpu in report["memory"]["gpus"] if report["memory"]["declared_gpu"] else []:
        if gpu["verdict"].startswith("does not fit"):
            out.append(f"{gpu['gpu']}: {gpu['verdict']}")
    return out


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary(report: dict[str, Any]) -> str:
    """The report for people: a few lines per section (``--json`` gives all of it)."""
    lines = [f"pre-flight plan ({report['kind']}, {report['elapsed_s']:.1f} s)"]
    data = report["data"]
    for f in data["files"]:
        lines.append(f"  {f['role']}: {f['path']} ({f['rows_read']} of {f['rows_total']} rows read)")
    if data["sampled"]:
        lines.append(f"  {data['note']} (x{data['extrapolation_factor']})")
    if data.get("preprocessing_cache"):
        lines.append(f"  preprocessing cache: {data['preprocessing_cache']}")
    problems = report["problems"]
    lines.append(f"problems: {problems['total']}" + (f" {problems['by_kind']}" if problems["total"] else ""))
    for row in problems["rows"][:20]:
        lines.append(f"  {row['file']} line {row['line']}: [{row['kind']}] {row['reason']}")
    if problems["total"] > 20:
        lines.append(f"  ... {problems['total'] - 20} more (--json lists up to {MAX_PROBLEMS_LISTED})")
    train = report["statistics"]["train"]
    if report["kind"] == "grpo":
        generation = report["generation"]
        lines.append(
            f"training prompts: {train['rows']} rows, {train['tokens']} prompt tokens; length mean {train['mean']}, "
            f"p50 {train['p50']}, p95 {train['p95']}, max {train['max']}"
        )
        lines.append(
            f"sampling: {generation['completions_per_step']} completions a step ({generation['num_generations']} per "
            f"prompt), at most {generation['generated_tokens_at_most']} tokens generated in all"
        )
    else:
        lines.append(
            f"training data: {train['rows']} rows, {train['tokens']} tokens; length mean {train['mean']}, p50 "
            f"{train['p50']}, p95 {train['p95']}, max {train['max']}; {train['truncated']} truncated, "
            f"{train['filtered']} filtered; {100 * train['loss_token_share']:.1f}% of tokens carry loss"
        )
    packing = report["statistics"].get("packing")
    if packing:
        lines.append(
            f"packing: {packing['rows']} rows of {packing['seq_length']}, {100 * packing['efficiency']:.1f}% full"
        )
    r, steps = report["resolved"], report["steps"]
    lines.append(
        f"batches: {r['total_train_batch_size']} = {r['num_processes']} processes x {r['per_device_train_batch_size']} "
        f"x {r['gradient_accumulation_steps']} accumulation; learning rate {r['learning_rate']:g}"
    )
    lines.append(
        f"steps: {steps['total']} ({steps['steps_per_epoch']} per epoch, {steps['epochs']} epochs, by "
        f"{steps['limited_by']})"
    )
    model, memory = report["model"], report["memory"]
    per = memory["per_device_bytes"]
    lines.append(f"model: {model['parameters'] / 1e6:.1f}M parameters ({model['dtype']}, {model['training']} training)")
    lines.append(
        f"memory per device: weights {_gib(per['weights'])}"
        + (f", reference model {_gib(per['reference_model'])}" if per.get("reference_model") else "")
        + f", gradients {_gib(per['gradients'])}, optimizer "
        f"{_gib(per['optimizer'])}, activations {_gib(per['activations'])} ({_gib(per['activations_checkpointed'])} "
        f"checkpointed): {_gib(per['total'])} ({_gib(per['total_checkpointed'])} checkpointed)"
    )
    for gpu in memory["gpus"]:
        lines.append(f"  {gpu['gpu']}: {gpu['verdict']}")
    t = report["time"]
    lines.append(f"time: {t['tokens']} tokens, {t['flops']:.3g} FLOPs")
    lines.append(f"  cpu (measured basis): {_duration(t['cpu']['seconds'])}")
    for gpu in t["gpus"]:
        lines.append(
            f"  {gpu['gpu']} (ASSUMED MFU {gpu['mfu']}): {_duration(gpu['seconds'])}, {gpu['gpu_hours']} GPU-hours"
        )
    lines.append(f"  {t['note']}")
    for verdict in report["verdicts"]:
        lines.append(f"! {verdict}")
    return "\n".join(lines)
