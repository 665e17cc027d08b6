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

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.batchsize import BatchPlan, plan_batches, scaled_learning_rate
from finetuning.config.data import AutoSplitInput, ConcatenationInput, DataConf, DataType, WeightedMixInput
from finetuning.config.jobs import DPOConfig, SFTConfig
from finetuning.config.model import NoPeftConf
from finetuning.data.encoding import example_lengths
from finetuning.memory import HEADROOM, estimate_training_memory
from finetuning.preflight import preflight_training
from finetuning.throughput_table import ACCELERATORS, ASSUMED_MFU, CPU_MEASURED, Accelerator, accelerator

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from finetuning.data.errors import DataError

logger = logging.getLogger(__name__)

PLAN_VERSION = 1
# problem rows listed in the report (the counts go on)
MAX_PROBLEMS_LISTED = 1000
# rows whose labels are computed one by one for the loss-token share; beyond, an even sample of this many
LABEL_SAMPLE_ROWS = 20_000
# the bad-row limit the plan reads with: it reports every bad row instead of stopping at the first
_READ_ALL = 1 << 62


@dataclass(frozen=True)
class PlanOptions:
    """``num_processes``: training processes (GPUs) in all; ``gpu``: the card to give a verdict for (a name of
    :data:`finetuning.throughput_table.ACCELERATORS`), else every known card and the CPU; ``max_rows``: read at most
    this many rows of each JSONL file and extrapolate (None: all); ``cache_dir``: where tokenized shards go (the
    run's preprocessing cache: the plan fills it for the run; None: a temporary folder, removed)."""

    num_processes: int = 1
    gpu: str | None = None
    max_rows: int | None = None
    cache_dir: Path | None = None
    num_proc: int = 1


@dataclass
class Problems:
    """Problem rows, the first :data:`MAX_PROBLEMS_LISTED` listed, all counted by kind."""

    listed: list[dict[str, Any]] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, file: str, line: int | None, reason: str, *, blocking: bool = False) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if len(self.listed) < MAX_PROBLEMS_LISTED:
            self.listed.append({"file": file, "line": line, "kind": kind, "reason": reason, "skipped": blocking})

    def add_data_error(self, error: DataError, file: str) -> None:
        self.add(classify(error.message), file, error.line, error.message, blocking=True)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.listed, key=lambda p: (p["file"], p["line"] or 0))
        return {"total": self.total, "by_kind": dict(sorted(self.by_kind.items())), "rows": ordered}


def classify(message: str) -> str:
    """The kind of a loader's error message (finetuning.data.loading, finetuning.data.sources)."""
    if message.startswith("not valid JSON"):
        return "not_json"
    if message.startswith("not UTF-8"):
        return "not_utf8"
    if "chat template" in message:
        return "template_error"
    if "chosen_messages" in message and "Field required" in message:
        return "missing_chosen"
    if "rejected_messages" in message and "Field required" in message:
        return "missing_rejected"
    if ".role" in message:
        return "bad_role"
    if message.startswith("expected a JSON object"):
        return "not_an_object"
    return "invalid_record"


# -- the entry points ----------------------------------------------------------------------------------------------


def plan_training(config: SFTConfig | DPOConfig, options: PlanOptions | None = None) -> dict[str, Any]:
    """The plan of ``config``'s run (SFT or preference optimization) as a JSON-ready report."""
    options = options or PlanOptions()
    started = time.monotonic()
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
        with _sampled(config.data_conf, options.max_rows, cache_dir) as sample:
            if isinstance(config, SFTConfig):
                report = _plan_sft(config, sample, batch, options, cache_dir)
            else:
                report = _plan_dpo(config, sample, batch, options)
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


# -- sampling ------------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """The data the plan reads: ``data_conf`` (paths replaced by sampled copies where a file was cut), the original
    path of each copy, and the factor each file's counts are multiplied by."""

    data_conf: DataConf
    originals: dict[str, str]
    files: list[dict[str, Any]]

    @property
    def factor(self) -> float:
        """Rows in the files / rows read, over the training files (1.0 when nothing was cut)."""
        total = sum(f["rows_total"] for f in self.files if f["role"] == "training_data")
        read = sum(f["rows_read"] for f in self.files if f["role"] == "training_data")
        return total / read if read else 1.0

    @property
    def cut(self) -> bool:
        return any(f["rows_read"] < f["rows_total"] for f in self.files)

    def original(self, path: str) -> str:
        return self.originals.get(path, path)


class _SampledContext:
    def __init__(self, sample: Sample, folder: Path | None) -> None:
        self.sample, self.folder = sample, folder

    def __enter__(self) -> Sample:
        return self.sample

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _sampled(data_conf: DataConf, max_rows: int | None, work: Path) -> _SampledContext:
    """Cut each JSONL file to its first ``max_rows`` records (blank lines kept, so line numbers stay the file's)."""
    files: list[dict[str, Any]] = []
    originals: dict[str, str] = {}
    folder = None
    updates: dict[str, Any] = {}
    for role in ("training_data", "validation_data"):
        section = getattr(data_conf, role)
        if not isinstance(section, ConcatenationInput | WeightedMixInput):
            continue
        refs = []
        for index, ref in enumerate(section.datasets):
            if getattr(ref, "sampling_weight", 1.0) <= 0:
                refs.append(ref)
                continue
            path = str(ref.path)
            total, json_array = _count_rows(path)
            read, new_path = total, path
            if max_rows is not None and not json_array and total > max_rows:
                folder = folder or Path(tempfile.mkdtemp(prefix="sample-", dir=work))
                new_path = str(folder / f"{role}-{index}.jsonl")
                _copy_first_rows(path, new_path, max_rows)
                originals[new_path] = path
                read = max_rows
            files.append({"role": role, "path": path, "rows_total": total, "rows_read": read})
            refs.append(ref.model_copy(update={"path": new_path}))
        updates[role] = section.model_copy(update={"datasets": refs})
    # every bad row is counted and listed instead of failing the read at the first
    conf = data_conf.model_copy(update={**updates, "max_bad_rows": _READ_ALL})
    return _SampledContext(Sample(conf, originals, files), folder)


def _count_rows(path: str) -> tuple[int, bool]:
    """Non-blank lines of a JSONL file (its records, good or bad), counted in blocks; a JSON array: -1."""
    from finetuning.data.loading import is_json_array

    if is_json_array(path):
        return -1, True
    rows = 0
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                rows += 1
    return rows, False


def _copy_first_rows(source: str, target: str, rows: int) -> None:
    with open(source, "rb") as src, open(target, "wb") as out:
        for raw in src:
            out.write(raw)
            if raw.strip():
                rows -= 1
                if rows == 0:
                    return


# -- SFT ------------------------------------------------------------------------------------------------------------


def _plan_sft(
    config: SFTConfig, sample: Sample, batch: BatchPlan, options: PlanOptions, cache_dir: Path
) -> dict[str, Any]:
    from finetuning.collators import build_sft_collator
    from finetuning.data.bfd import bfd_bins
    from finetuning.data.preprocess import prepare_sft_datasets
    from finetuning.methods.common import load_training_tokenizer

    sft_args = config.sft_args
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, config.run_conf, "sft")
    # the run's own preprocessing, on the (sampled) files, reading past bad rows
    train, validation = prepare_sft_datasets(
        sample.data_conf, sft_args, tokenizer, num_proc=options.num_proc, cache_dir=cache_dir
    )
    problems = Problems()
    sources = _sft_sources(sample.data_conf, sft_args, tokenizer, options.num_proc, cache_dir)
    limit, truncate = sft_args.max_seq_length, sft_args.length_handling == "truncate"
    truncated = filtered = 0
    for source in sources:
        original = sample.original(source.path)
        for error in source.bad_rows:
            problems.add_data_error(error, original)
        for _ in range(source.bad_count - len(source.bad_rows)):
            problems.by_kind["invalid_record"] = problems.by_kind.get("invalid_record", 0) + 1
        lengths = _source_lengths(source)
        # truncated rows were cut to the limit: the candidates are those at it, re-encoded whole to be sure
        candidates = np.flatnonzero(lengths >= limit if truncate else lengths > limit)
        bad_lines = {e.line for e in source.bad_rows} if source.bad_count == len(source.bad_rows) else None
        found = _lint_sft_file(
            source.path,
            original,
            set(candidates.tolist()),
            bad_lines,
            problems,
            tokenizer,
            tokenizer_setup,
            completions_only=sft_args.train_on_completions_only,
        )
        for row, (line, messages) in found.items():
            if truncate:
                whole = _whole_length(tokenizer, messages)
                if whole > limit:
                    truncated += 1
                    problems.add("truncated", original, line, f"{whole} tokens, cut to max_seq_length={limit}")
            else:
                filtered += 1
                problems.add(
                    "too_long_filtered",
                    original,
                    line,
                    f"{int(lengths[row])} tokens > max_seq_length={limit}: dropped (length_handling=filter)",
                )
    collator = build_sft_collator(tokenizer, tokenizer_setup, completions_only=sft_args.train_on_completions_only)
    factor = sample.factor
    train_stats = _sft_statistics(train, collator, factor)
    train_stats.update(truncated=round(truncated * factor), filtered=round(filtered * factor))
    statistics: dict[str, Any] = {"train": train_stats}
    if validation is not None:
        statistics["validation"] = _sft_statistics(validation, collator, factor)
    lengths = example_lengths(train)
    packing: dict[str, Any] | None = None
    rows = train_stats["rows"]
    if sft_args.packing:
        usable = np.minimum(lengths[lengths > 0], limit)
        _, row_sizes = bfd_bins(usable, limit)
        packed_rows = round(len(row_sizes) * factor)
        fill = float(usable.sum()) / (len(row_sizes) * limit) if len(row_sizes) else 0.0
        packing = {"rows": packed_rows, "seq_length": limit, "efficiency": round(fill, 4)}
        rows = packed_rows
    statistics["packing"] = packing
    steps = _steps(config.training_args, rows, batch)
    model = _meta_model(config, tokenizer)
    per_micro_batch = batch.per_device_train_batch_size * limit
    tokens_per_step = _tokens_per_step(train_stats["tokens"], steps)
    report: dict[str, Any] = {
        "kind": "sft",
        "data": _data_section(sample),
        "problems": problems.report(),
        "statistics": statistics,
        "steps": steps,
        "model": _model_section(model, config),
        "memory": _memory(model, config, per_micro_batch, options.gpu),
        "time": _time(
            model,
            config,
            steps,
            tokens_per_step,
            float(np.mean(lengths)) if len(lengths) else 0.0,
            batch,
            options.gpu,
            passes=1,
        ),
        "resolved_extra": {"packing": packing is not None},
    }
    report["verdicts"] = _verdicts(config, problems, report)
    return report


def _sft_sources(
    data_conf: DataConf, sft_args: Any, tokenizer: PreTrainedTokenizerBase, num_proc: int, cache_dir: Path
) -> list[Any]:
    """The tokenized files behind :func:`prepare_sft_datasets`' datasets, with their bad rows (file, line, reason).

    A thin wrapper: ``prepare_sft_datasets`` keeps its :class:`BadRows` to itself, so the plan asks
    :func:`finetuning.data.sources.tokenize_sources` again with the same settings; the shards are in ``cache_dir``
    by then, so this reads the cache (were the settings to drift from ``prepare_sft_datasets``', it would tokenize
    again: slower, the same rows)."""
    from finetuning.data.loading import BadRows
    from finetuning.data.preprocess import PREPROCESS_VERSION, tokenizer_identity
    from finetuning.data.progress import StageProgress
    from finetuning.data.sources import tokenize_sources

    truncate = sft_args.length_handling == "truncate"
    settings = {
        "version": PREPROCESS_VERSION,
        "max_seq_length": sft_args.max_seq_length if truncate else None,
        "length_handling": sft_args.length_handling,
        "tokenizer": tokenizer_identity(tokenizer),
    }
    paths = [str(path) for _, path in _data_paths(data_conf)]
    sources, _ = tokenize_sources(
        paths,
        tokenizer,
        settings=settings,
        max_seq_length=sft_args.max_seq_length,
        truncate=truncate,
        num_proc=num_proc,
        cache_dir=cache_dir,
        bad_rows=BadRows(_READ_ALL),
        progress=StageProgress("tokenizing"),
    )
    return list(sources)


def _data_paths(data_conf: DataConf) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for role in ("training_data", "validation_data"):
        section = getattr(data_conf, role)
        if isinstance(section, ConcatenationInput | WeightedMixInput):
            for ref in section.datasets:
                if getattr(ref, "sampling_weight", 1.0) > 0 and str(ref.path) not in {p for _, p in found}:
                    found.append((role, str(ref.path)))
    return found


def _source_lengths(source: Any) -> np.ndarray:
    parts = []
    for path in source.shards:
        import pyarrow as pa

        with pa.memory_map(str(path)) as f:
            table = pa.ipc.open_stream(f).read_all()
            parts.append(table.column("length").to_numpy())
    for table in source.tables:
        parts.append(table.column("length").to_numpy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _lint_sft_file(
    path: str,
    original: str,
    wanted: set[int],
    bad_lines: set[int | None] | None,
    problems: Problems,
    tokenizer: PreTrainedTokenizerBase,
    tokenizer_setup: Any,
    *,
    completions_only: bool,
) -> dict[int, tuple[int, list[dict[str, Any]]]]:
    """One streaming pass over a file's records: rows that train but deserve a look (an empty assistant turn, no
    assistant turn), and the line and messages of the good rows at the positions ``wanted`` (source row order)."""
    from finetuning.data.encoding import render
    from finetuning.data.errors import DataError
    from finetuning.data.loading import validate
    from finetuning.data.records import ChatConversation

    found: dict[int, tuple[int, list[dict[str, Any]]]] = {}
    row = 0
    for line, item in _items(path):
        if isinstance(item, DataError):
            continue
        if bad_lines is not None:
            if line in bad_lines:
                continue
            if not isinstance(item, dict):
                continue
            messages = item.get("messages") or []
        else:  # more bad rows than the loader kept: decide as it does
            try:
                record = validate(path, line, item, ChatConversation)
                render(tokenizer, record["messages"])
            except Exception:
                continue
            messages = record["messages"]
        assistant = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if not assistant:
            if completions_only:
                problems.add(
                    "no_assistant_turn",
                    original,
                    line,
                    "no assistant message: with train_on_completions_only no token of this row carries loss",
                )
        elif any(not str(m.get("content") or "").strip() for m in assistant):
            problems.add("empty_assistant_turn", original, line, "an assistant message is empty: it teaches silence")
        if row in wanted:
            found[row] = (line, messages)
        row += 1
    return found


def _items(path: str) -> Iterator[tuple[int, Any]]:
    from finetuning.data.loading import iter_items

    try:
        yield from iter_items(path)
    except Exception as exc:  # the loader already reported the file as a whole
        logger.debug("plan: %s: %s", path, exc)


def _whole_length(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> int:
    """The untruncated token count of a conversation, encoded as the run encodes it."""
    from finetuning.data.encoding import SFTEncoder

    encoder = SFTEncoder(tokenizer, max_seq_length=1, truncate=False)
    return len(encoder.encode([encoder.render(messages)])[0])


def _sft_statistics(dataset: Dataset, collator: Any, factor: float) -> dict[str, Any]:
    lengths = example_lengths(dataset)
    n = len(lengths)
    stats = _length_statistics(lengths, factor)
    # labels as the collator computes them, for every row or an even sample
    positions = np.arange(n) if n <= LABEL_SAMPLE_ROWS else np.linspace(0, n - 1, LABEL_SAMPLE_ROWS).astype(np.int64)
    loss = counted = no_loss = 0
    for position in positions.tolist():
        ids = [int(t) for t in dataset[position]["input_ids"]]
        labels = collator.row_labels(ids, position)
        carrying = sum(1 for label in labels[1:] if label != -100)
        loss += carrying
        counted += len(ids)
        no_loss += carrying == 0
    share = loss / counted if counted else 0.0
    stats["loss_tokens"] = round(share * stats["tokens"])
    stats["loss_token_share"] = round(share, 4)
    stats["loss_tokens_from"] = "every row" if n <= LABEL_SAMPLE_ROWS else f"an even sample of {len(positions)} rows"
    stats["rows_without_loss"] = round(no_loss * (n / max(1, len(positions))) * factor)
    return stats


def _length_statistics(lengths: np.ndarray, factor: float) -> dict[str, Any]:
    if not len(lengths):
        return {"rows": 0, "tokens": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    return {
        "rows": round(len(lengths) * factor),
        "tokens": round(int(lengths.sum()) * factor),
        "mean": round(float(lengths.mean()), 1),
        "p50": int(np.percentile(lengths, 50, method="lower")),
        "p95": int(np.percentile(lengths, 95, method="lower")),
        "max": int(lengths.max()),
    }


# -- preference data -------------------------------------------------------------------------------------------------


def _plan_dpo(config: DPOConfig, sample: Sample, batch: BatchPlan, options: PlanOptions) -> dict[str, Any]:
    from finetuning.data.preference import prepare_preference_datasets
    from finetuning.methods.common import load_training_tokenizer

    args_conf = config.training_args
    tokenizer, _ = load_training_tokenizer(config.data_conf, config.run_conf, "dpo")
    problems = Problems()
    data_type = sample.data_conf.training_data.data_type
    lines: list[tuple[str, int]] = []  # training records' (file, line), in record order (concatenated data)
    for role, path in _data_paths(sample.data_conf):
        section = getattr(sample.data_conf, role)
        found = _lint_preference_file(path, sample.original(path), section.data_type, problems)
        if role == "training_data":
            lines.extend(found)
    unpaired = config.trainer_name == "kto"
    train, validation = prepare_preference_datasets(sample.data_conf, unpaired=unpaired)
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
        **_length_statistics(sequences, factor),
        "prompt": _length_statistics(prompts, factor),
        "chosen": _length_statistics(chosen, factor),
        "rejected": _length_statistics(rejected, factor),
        "truncated": round(truncated * factor),
        "filtered": round(dropped * factor),
    }
    stats["tokens"] = round(total * factor)  # chosen and rejected sequences both
    stats["loss_token_share"] = round(float(answer_tokens.sum()) / total, 4) if total else 0.0
    stats["loss_tokens"] = round(stats["loss_token_share"] * stats["tokens"])
    statistics: dict[str, Any] = {"train": stats, "packing": None}
    if validation is not None:
        statistics["validation"] = {"rows": round(len(validation) * factor)}
    steps = _steps(args_conf, stats["rows"], batch)
    model = _meta_model(config, tokenizer)
    per_micro_batch = 2 * batch.per_device_train_batch_size * int(max_length or 1024)
    reference = config.trainer_name in ("dpo", "kto")
    report: dict[str, Any] = {
        "kind": "dpo",
        "trainer": config.trainer_name,
        "data": _data_section(sample),
        "problems": problems.report(),
        "statistics": statistics,
        "steps": steps,
        "model": _model_section(model, config),
        "memory": _memory(model, config, per_micro_batch, options.gpu),
        "time": _time(
            model,
            config,
            steps,
            _tokens_per_step(stats["tokens"], steps),
            float(sequences.mean()) if len(sequences) else 0.0,
            batch,
            options.gpu,
            passes=1,
            reference_forward=reference,
        ),
        "resolved_extra": {"trainer": config.trainer_name},
    }
    report["verdicts"] = _verdicts(config, problems, report)
    return report


def _lint_preference_file(path: str, original: str, data_type: DataType, problems: Problems) -> list[tuple[str, int]]:
    """Every record validated as the loader validates it: bad ones become problems; returns the good ones' lines."""
    from finetuning.data.errors import DataError
    from finetuning.data.loading import RECORD_TYPES, validate

    record_type = RECORD_TYPES[data_type]
    good: list[tuple[str, int]] = []
    for line, item in _items(path):
        try:
            if isinstance(item, DataError):
                raise item
            record = validate(path, line, item, record_type)
        except DataError as exc:
            problems.add_data_error(exc, original)
            continue
        good.append((original, line))
        for key in ("chosen_messages", "rejected_messages", "completion_messages"):
            answer = record.get(key) or []
            if answer and not any(str(m.get("content") or "").strip() for m in answer):
                problems.add("empty_assistant_turn", original, line, f"{key} has no text")
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


# -- steps, model, memory, time ---------------------------------------------------------------------------------


def _steps(args_conf: Any, rows: int, batch: BatchPlan) -> dict[str, Any]:
    """Optimizer steps as the Trainer counts them: batches per process per epoch (a distributed sampler gives each
    process ceil(rows / processes) rows), grouped by the accumulation (a partial group is a step)."""
    per_process = math.ceil(rows / batch.num_processes)
    per_device = batch.per_device_train_batch_size
    drop_last = bool(getattr(args_conf, "dataloader_drop_last", False))
    batches = per_process // per_device if drop_last else math.ceil(per_process / per_device)
    accumulation = batch.gradient_accumulation_steps
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    max_steps = int(getattr(args_conf, "max_steps", -1) or -1)
    epochs = float(getattr(args_conf, "num_train_epochs", 1.0))
    total = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return {
        "rows_per_epoch": rows,
        "steps_per_epoch": per_epoch,
        "total": total,
        "epochs": round(total / per_epoch, 3),
        "limited_by": "max_steps" if max_steps > 0 else "num_train_epochs",
    }


def _tokens_per_step(tokens_per_epoch: int, steps: dict[str, Any]) -> float:
    return tokens_per_epoch / max(1, steps["steps_per_epoch"])


def _meta_model(config: SFTConfig | DPOConfig, tokenizer: PreTrainedTokenizerBase) -> Any:
    """The run's model built on the ``meta`` device from its config (no weights read), in the dtype it loads in,
    its embeddings grown for the template's tokens as the run grows them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from finetuning import models

    model_args = config.run_conf.model_args
    model_config = AutoConfig.from_pretrained(
        config.run_conf.model,
        trust_remote_code=model_args.trust_remote_code,
        revision=model_args.revision,
        subfolder=model_args.subfolder or "",
    )
    dtype: Any = model_args.dtype
    if dtype in (None, "auto"):
        dtype = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None) or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            model_config, dtype=dtype, trust_remote_code=model_args.trust_remote_code
        )
    try:
        models.grow_embeddings(model, tokenizer)
    except Exception as exc:  # a meta model that cannot be resized: the base vocabulary is counted
        logger.debug("plan: embeddings not grown on the meta model: %s", exc)
    return model


def _model_section(model: Any, config: SFTConfig | DPOConfig) -> dict[str, Any]:
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "parameters": parameters,
        "layers": int(text.num_hidden_layers),
        "hidden_size": int(text.hidden_size),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "training": "full" if isinstance(config.peft_conf, NoPeftConf) else config.peft_conf.peft_type,
        "quantized": config.quant_conf.quantization_type != "no-quantization",
    }


def _memory(model: Any, config: SFTConfig | DPOConfig, tokens_per_micro_batch: int, gpu: str | None) -> dict[str, Any]:
    """The engine's own estimate (:func:`finetuning.memory.estimate_training_memory`) per device, and a verdict."""
    estimate = estimate_training_memory(
        model, tokens_per_micro_batch, trains_base=isinstance(config.peft_conf, NoPeftConf)
    )
    args = config.training_args
    checkpointing_set = {"gradient_checkpointing", "activation_checkpointing"} & args.model_fields_set
    forced = bool(getattr(args, "gradient_checkpointing", False)) if checkpointing_set else None
    without, with_ = estimate.total(checkpointing=False), estimate.total(checkpointing=True)
    report: dict[str, Any] = {
        "per_device_bytes": {
            "weights": estimate.weights,
            "gradients": estimate.gradients,
            "optimizer": estimate.optimizer,
            "activations": estimate.activations,
            "activations_checkpointed": estimate.activations_checkpointed,
            "total": without,
            "total_checkpointed": with_,
        },
        "tokens_per_micro_batch": tokens_per_micro_batch,
        "headroom": HEADROOM,
        "notes": [
            "weights in the dtype the model loads in; gradients and Adam's two fp32 moments only for full finetuning "
            "(an adapter's are negligible); 16-bit activations of a micro-batch of full rows; the allocator, CUDA "
            "context and logits are covered by the headroom (finetuning/memory.py)"
        ],
    }
    if config.training_args.fsdp or config.training_args.deepspeed is not None:
        report["notes"].append("FSDP/DeepSpeed shard weights, gradients and optimizer state: this is an upper bound")
    cards = [accelerator(gpu)] if gpu else list(ACCELERATORS.values())
    report["gpus"] = [_verdict(card, without, with_, forced) for card in cards]
    report["declared_gpu"] = gpu
    return report


def _verdict(card: Accelerator, without: int, with_: int, forced: bool | None) -> dict[str, Any]:
    budget = HEADROOM * card.memory_bytes
    if forced is False:
        fits = without <= budget
        verdict = "fits" if fits else "does not fit (gradient_checkpointing: false)"
    elif without <= budget and not forced:
        verdict = "fits"
    elif with_ <= budget:
        verdict = "fits with activation checkpointing" + (" (set)" if forced else " (the engine turns it on)")
    else:
        verdict = "does not fit: lower max_per_device_train_batch_size or max_seq_length, use an adapter, or shard"
    return {"gpu": card.name, "memory_bytes": card.memory_bytes, "verdict": verdict}


def flops_per_token(parameters: int, layers: int, hidden: int, mean_tokens: float, *, full: bool) -> float:
    """Training FLOPs per token: 6 x parameters (2 forward, 4 backward; an adapter skips the weight gradients:
    4 x parameters) plus causal attention (6 x layers x hidden x the mean example length)."""
    dense = (6 if full else 4) * parameters
    return dense + 6 * layers * hidden * mean_tokens


def _time(
    model: Any,
    config: SFTConfig | DPOConfig,
    steps: dict[str, Any],
    tokens_per_step: float,
    mean_tokens: float,
    batch: BatchPlan,
    gpu: str | None,
    *,
    passes: int,
    reference_forward: bool = False,
) -> dict[str, Any]:
    section = _model_section(model, config)
    full = section["training"] == "full"
    per_token = flops_per_token(
        section["parameters"], section["layers"], section["hidden_size"], mean_tokens, full=full
    )
    if reference_forward:
        per_token += 2 * section["parameters"]  # the reference model's forward pass
    tokens = tokens_per_step * steps["total"]
    flops = per_token * tokens * passes
    measured = CPU_MEASURED
    cpu_rate = measured.real_tokens_per_s * flops_per_token(
        measured.parameters, measured.layers, measured.hidden, measured.mean_tokens, full=True
    )
    cpu_s = flops / cpu_rate
    out: dict[str, Any] = {
        "tokens": round(tokens),
        "flops": flops,
        "flops_per_token": per_token,
        "cpu": {
            "basis": "measured",
            "seconds": round(cpu_s, 3),
            "source": measured.source,
            "achieved_flops_per_s": round(cpu_rate),
            "note": "one process on the bench machine's CPU; scaled from the measured model by FLOPs per token",
        },
    }
    cards = [accelerator(gpu)] if gpu else list(ACCELERATORS.values())
    estimates = []
    for card in cards:
        seconds = flops / (ASSUMED_MFU * card.peak_bf16_flops * batch.num_processes)
        estimates.append(
            {
                "gpu": card.name,
                "basis": "assumed",
                "mfu": ASSUMED_MFU,
                "seconds": round(seconds, 3),
                "gpu_hours": round(seconds * batch.num_processes / 3600, 3),
                "source": card.source,
            }
        )
    out["gpus"] = estimates
    out["note"] = (
        "GPU times are NOT measured: model FLOPs / (assumed MFU x the card's dense bf16 peak x processes); run "
        "bench/sft_throughput.py --device cuda on the card to measure. Activation checkpointing adds about a third."
    )
    return out


def _data_section(sample: Sample) -> dict[str, Any]:
    return {
        "files": sample.files,
        "sampled": sample.cut,
        "extrapolation_factor": round(sample.factor, 4),
        "note": (
            "counts, tokens and steps are extrapolated from the first rows of each file (max_rows); lengths are those "
            "of the rows read"
            if sample.cut
            else "every row was read"
        ),
    }


def _verdicts(config: SFTConfig | DPOConfig, problems: Problems, report: dict[str, Any]) -> list[str]:
    """What would stop or spoil the run, in words."""
    out = []
    bad = sum(count for kind, count in problems.by_kind.items() if kind in _BLOCKING_KINDS)
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


_BLOCKING_KINDS = frozenset(
    {
        "not_json",
        "not_utf8",
        "template_error",
        "missing_chosen",
        "missing_rejected",
        "bad_role",
        "not_an_object",
        "invalid_record",
    }
)


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
    problems = report["problems"]
    lines.append(f"problems: {problems['total']}" + (f" {problems['by_kind']}" if problems["total"] else ""))
    for row in problems["rows"][:20]:
        lines.append(f"  {row['file']} line {row['line']}: [{row['kind']}] {row['reason']}")
    if problems["total"] > 20:
        lines.append(f"  ... {problems['total'] - 20} more (--json lists up to {MAX_PROBLEMS_LISTED})")
    train = report["statistics"]["train"]
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
        f"memory per device: weights {_gib(per['weights'])}, gradients {_gib(per['gradients'])}, optimizer "
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
