"""The plan of an SFT run: the run's own preprocessing, its problem rows, token statistics, labels and packing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuning.batchsize import BatchPlan
from finetuning.config.data import DataConf
from finetuning.config.jobs import SFTConfig
from finetuning.data.encoding import example_lengths
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
from finetuning.plan.sample import READ_ALL, Sample, data_paths, data_section, items

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from finetuning.data.progress import CacheState


# rows whose labels are computed one by one for the loss-token share; beyond, an even sample of this many
LABEL_SAMPLE_ROWS = 20_000


def plan_sft(
    config: SFTConfig, sample: Sample, batch: BatchPlan, options: PlanOptions, cache_dir: Path
) -> dict[str, Any]:
    from finetuning.collators import build_sft_collator
    from finetuning.data.bfd import bfd_bins
    from finetuning.data.preprocess import prepare_sft_datasets
    from finetuning.methods.common import load_training_tokenizer

    sft_args = config.sft_args
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, config.run_conf, "sft")
    # the files tokenized first (so the cache's state is what the plan found), then the run's own preprocessing on
    # the (sampled) files, reading past bad rows, from those shards
    sources, cache = _sft_sources(sample.data_conf, sft_args, tokenizer, options.num_proc, cache_dir)
    train, validation = prepare_sft_datasets(
        sample.data_conf, sft_args, tokenizer, num_proc=options.num_proc, cache_dir=cache_dir
    )
    problems = Problems()
    limit, truncate = sft_args.max_seq_length, sft_args.length_handling == "truncate"
    truncated = filtered = 0
    for source in sources:
        original = sample.original(source.path)
        problems.add_bad_rows(source.bad_rows, source.bad_count, sample.original)
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
    steps = count_steps(config.training_args, rows, batch)
    model = meta_model(config, tokenizer)
    per_micro_batch = batch.per_device_train_batch_size * limit
    tokens_per_step = mean_tokens_per_step(train_stats["tokens"], steps)
    report: dict[str, Any] = {
        "kind": "sft",
        "data": {**data_section(sample), "preprocessing_cache": cache},
        "problems": problems.report(),
        "statistics": statistics,
        "steps": steps,
        "model": model_section(model, config),
        "memory": memory_section(model, config, per_micro_batch, options.gpu),
        "time": time_section(
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
    report["verdicts"] = overall_verdicts(config, problems, report)
    return report


def _sft_sources(
    data_conf: DataConf, sft_args: Any, tokenizer: PreTrainedTokenizerBase, num_proc: int, cache_dir: Path
) -> tuple[list[Any], CacheState]:
    """The tokenized files behind :func:`prepare_sft_datasets`' datasets, with their bad rows (file, line, reason),
    and whether the preprocessing cache held them already (``hit``), in part, or not at all.

    ``prepare_sft_datasets`` keeps its :class:`BadRows` to itself, so the plan calls
    :func:`finetuning.data.sources.tokenize_sources` first with the same settings; ``prepare_sft_datasets`` then
    finds the shards in ``cache_dir`` (were the settings to drift apart, it would tokenize again: slower, the same
    rows)."""
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
    paths = [str(path) for _, path in data_paths(data_conf)]
    sources, cache = tokenize_sources(
        paths,
        tokenizer,
        settings=settings,
        max_seq_length=sft_args.max_seq_length,
        truncate=truncate,
        num_proc=num_proc,
        cache_dir=cache_dir,
        bad_rows=BadRows(READ_ALL),
        progress=StageProgress("tokenizing"),
    )
    return list(sources), cache


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
    for line, item in items(path):
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


def _whole_length(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> int:
    """The untruncated token count of a conversation, encoded as the run encodes it."""
    from finetuning.data.encoding import SFTEncoder

    encoder = SFTEncoder(tokenizer, max_seq_length=1, truncate=False)
    return len(encoder.encode([encoder.render(messages)])[0])


def _sft_statistics(dataset: Dataset, collator: Any, factor: float) -> dict[str, Any]:
    lengths = example_lengths(dataset)
    n = len(lengths)
    stats = length_statistics(lengths, factor)
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
