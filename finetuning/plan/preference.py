"""The plan of a preference run (DPO, KTO, ORPO...): the rows validated, TRL's own tokenization, truncation named."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.batchsize import BatchPlan
from finetuning.config.data import AutoSplitInput, DataConf, DataType, WeightedMixInput
from finetuning.config.jobs import DPOConfig
from finetuning.plan.estimates import (
    count_steps,
    length_statistics,
    mean_tokens_per_step,
    memory_section,
    meta_model,
    model_section,
    time_section,
)
from finetuning.plan.options import PlanOptions
from finetuning.plan.problems import Problems
from finetuning.plan.report import overall_verdicts
from finetuning.plan.sample import READ_ALL, Sample, data_paths, data_section

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def plan_dpo(
    config: DPOConfig, sample: Sample, batch: BatchPlan, options: PlanOptions, cache_dir: Path
) -> dict[str, Any]:
    from finetuning.data.preference import prepare_preference_datasets
    from finetuning.methods.common import load_training_tokenizer

    args_conf = config.training_args
    tokenizer, _ = load_training_tokenizer(config.data_conf, config.run_conf, "dpo")
    problems = Problems()
    data_type = sample.data_conf.training_data.data_type
    lines: list[tuple[str, int]] = []  # training records' (file, line), in record order (concatenated data)
    for role, path in data_paths(sample.data_conf):
        section = getattr(sample.data_conf, role)
        found = _lint_preference_file(path, sample.original(path), section.data_type, problems)
        if role == "training_data":
            lines.extend(found)
    unpaired = config.trainer_name == "kto"
    train, validation = prepare_preference_datasets(sample.data_conf, unpaired=unpaired, cache_dir=cache_dir)
    mapping = _preference_lines(sample.data_conf, lines, unpaired=unpaired and data_type == DataType.DIRECT_PREFERENCE)
    tokenized = _trl_tokenized(train, tokenizer, args_conf, options.num_proc)
    max_prompt = args_conf.max_prompt_length if config.trainer_name == "dpo" else None
    max_completion = args_conf.max_completion_length if config.trainer_name == "dpo" else None
    max_length = getattr(args_conf, "max_length", None)
    prompt_lengths, chosen_lengths, rejected_lengths = [], [], []
    truncated = dropped = 0
    drops_long_prompts = getattr(args_conf, "truncation_mode", "keep_start") == "keep_start"
    for index, example in enumerate(tokenized):
        prompt = len(example["prompt_ids"])
        where = mapping[index] if mapping is not None and index < len(mapping) else ("(mixed training data)", None)
        if max_length is not None and drops_long_prompts and prompt >= max_length:
            dropped += 1  # TRL drops it: no answer token would be left
            problems.add(
                "too_long_filtered", where[0], where[1], f"prompt {prompt} tokens >= max_length={max_length}: dropped"
            )
            continue
        answers = [len(example[key]) for key in ("chosen_ids", "rejected_ids") if key in example]
        if "completion_ids" in example:
            answers = [len(example["completion_ids"])]
        prompt_lengths.append(prompt)
        chosen_lengths.append(answers[0])
        rejected_lengths.append(answers[-1])
        reasons = []
        kept_prompt = prompt
        if max_prompt is not None and prompt > max_prompt:
            reasons.append(f"prompt {prompt} tokens, cut to its last max_prompt_length={max_prompt}")
            kept_prompt = max_prompt
            problems.add("prompt_truncated", where[0], where[1], reasons[-1])
        kept_answers = answers
        if max_completion is not None and max(answers) > max_completion:
            problems.add(
                "completion_truncated",
                where[0],
                where[1],
                f"answer {max(answers)} tokens, cut to max_completion_length={max_completion}",
            )
            kept_answers = [min(a, max_completion) for a in answers]
            reasons.append("completion")
        if max_length is not None and kept_prompt + max(kept_answers) > max_length:
            problems.add(
                "truncated",
                where[0],
                where[1],
                f"prompt + answer {kept_prompt + max(kept_answers)} tokens, cut to max_length={max_length}",
            )
            reasons.append("max_length")
        truncated += bool(reasons)
    factor = sample.factor
    prompts = np.asarray(prompt_lengths, dtype=np.int64)
    chosen = np.asarray(chosen_lengths, dtype=np.int64)
    rejected = np.asarray(rejected_lengths, dtype=np.int64)
    pairs = prompts + np.maximum(chosen, rejected)
    cap = max_length or (int(pairs.max()) if len(pairs) else 1)
    sequences = np.minimum(pairs, cap)
    # the loss is on the answers: the share of each sequence's tokens after the prompt
    answer_tokens = np.minimum(chosen + rejected, 2 * np.maximum(0, cap - np.minimum(prompts, cap)))
    total = int((np.minimum(prompts + chosen, cap) + np.minimum(prompts + rejected, cap)).sum())
    stats: dict[str, Any] = {
        **length_statistics(sequences, factor),
        "prompt": length_statistics(prompts, factor),
        "chosen": length_statistics(chosen, factor),
        "rejected": length_statistics(rejected, factor),
        "truncated": round(truncated * factor),
        "filtered": round(dropped * factor),
    }
    stats["tokens"] = round(total * factor)  # chosen and rejected sequences both
    stats["loss_token_share"] = round(float(answer_tokens.sum()) / total, 4) if total else 0.0
    stats["loss_tokens"] = round(stats["loss_token_share"] * stats["tokens"])
    statistics: dict[str, Any] = {"train": stats, "packing": None}
    if validation is not None:
        statistics["validation"] = {"rows": round(len(validation) * factor)}
    steps = count_steps(args_conf, stats["rows"], batch)
    model = meta_model(config, tokenizer)
    per_micro_batch = 2 * batch.per_device_train_batch_size * int(max_length or 1024)
    reference = config.trainer_name in ("dpo", "kto")
    report: dict[str, Any] = {
        "kind": "dpo",
        "trainer": config.trainer_name,
        "data": data_section(sample),
        "problems": problems.report(),
        "statistics": statistics,
        "steps": steps,
        "model": model_section(model, config),
        "memory": memory_section(model, config, per_micro_batch, options.gpu, reference=reference),
        "time": time_section(
            model,
            config,
            steps,
            mean_tokens_per_step(stats["tokens"], steps),
            float(sequences.mean()) if len(sequences) else 0.0,
            batch,
            options.gpu,
            passes=1,
            reference_forward=reference,
        ),
        "resolved_extra": {"trainer": config.trainer_name},
    }
    report["verdicts"] = overall_verdicts(config, problems, report)
    return report


def _lint_preference_file(path: str, original: str, data_type: DataType, problems: Problems) -> list[tuple[str, int]]:
    """Every record validated as the loader validates it: bad ones become problems; returns the good ones' lines."""
    from finetuning.data.loading import RECORD_TYPES, BadRows, iter_records

    bad_rows = BadRows(READ_ALL)  # every bad row listed, as the plan reads them all
    good: list[tuple[str, int]] = []
    for line, record in iter_records(path, RECORD_TYPES[data_type], bad_rows):
        good.append((original, line))
        for key in ("chosen_messages", "rejected_messages", "completion_messages"):
            answer = record.get(key) or []
            if answer and not any(str(m.get("content") or "").strip() for m in answer):
                problems.add("empty_assistant_turn", original, line, f"{key} has no text")
    problems.add_bad_rows(bad_rows.kept, bad_rows.count, lambda _: original)
    return good


def _preference_lines(
    data_conf: DataConf, lines: list[tuple[str, int]], *, unpaired: bool
) -> list[tuple[str, int | None]] | None:
    """The (file, line) of each training row, where the data is concatenated (a weighted mix: None)."""
    if isinstance(data_conf.training_data, WeightedMixInput):
        return None
    records: list[tuple[str, int | None]] = list(lines)
    validation = data_conf.validation_data
    if isinstance(validation, AutoSplitInput) and len(records) >= 2:
        from finetuning.data.preprocess import split_positions

        train_positions, _ = split_positions(len(records), validation)
        records = [records[i] for i in train_positions.tolist()]
    if unpaired:
        records = [record for record in records for _ in (0, 1)]
    return records


def _trl_tokenized(train: Dataset, tokenizer: PreTrainedTokenizerBase, args_conf: Any, num_proc: int) -> Any:
    """TRL's own tokenization of the rows (``DPOTrainer._prepare_dataset``: the chat template, the prompt/answer
    split, the drop of rows whose prompt fills ``max_length``), called without building a trainer."""
    from types import SimpleNamespace

    from trl import DPOTrainer

    args = SimpleNamespace(
        dataset_num_proc=num_proc if num_proc > 1 else None,
        max_length=None,  # TRL's drop of over-long prompts is applied by the caller, which names the rows
        truncation_mode=getattr(args_conf, "truncation_mode", "keep_start"),
    )
    columns = set(train.column_names)
    rows = train
    if "completion" in columns:  # KTO rows: tokenized as a pair of one answer
        rows = train.map(lambda r: {"chosen": r["completion"], "rejected": r["completion"]})
    owner = SimpleNamespace(_tokenizer=tokenizer)
    return DPOTrainer._prepare_dataset(owner, rows, tokenizer, args, "train")  # type: ignore[arg-type]
