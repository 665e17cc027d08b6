"""Packing and the chunked loss against the tiny model: the same (context, target) pairs, the same loss and gradients
as unpacked, padded training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from datasets import Dataset
from sft_helpers import losses, run_cli, sft_config
from transformers import AutoModelForCausalLM

from finetuning.collators import (
    IGNORE_INDEX,
    REAL_TOKENS,
    CausalLMCollator,
    CompletionsOnlyCollator,
    PackedCollator,
    completion_only_labels,
)
from finetuning.config.data import ChatTemplateName, MissingPadTokenStrategy
from finetuning.data.packing import flattens_batches, label_examples, pack_examples, pack_sft, packing_problem
from finetuning.events import EventWriter, read_events
from finetuning.loss import chunked_causal_lm_loss, chunked_loss_problem
from finetuning.models import grow_embeddings
from finetuning.tiny import tiny_chat_records, write_jsonl
from finetuning.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_model_dir: Path) -> Any:
    tokenizer, _ = load_tokenizer(
        str(tiny_model_dir),
        template=ChatTemplateName.CHAT_ML,
        padding_side="right",
        pad_strategy=MissingPadTokenStrategy.BOS_REPURPOSE,
    )
    return tokenizer


@pytest.fixture(scope="module")
def examples(chat_tokenizer: Any) -> list[list[int]]:
    """Tokenized chat conversations of different lengths."""
    records = tiny_chat_records(12, seed=3)
    texts = [chat_tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in records]
    ids = [chat_tokenizer(text)["input_ids"] for text in texts]
    # uneven lengths, so that rows hold several examples and some padding
    return [row[: 12 + 7 * (i % 5)] for i, row in enumerate(ids)]


def _model(tiny_model_dir: Path, attention: str, tokenizer: Any) -> Any:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention, dtype=torch.float32)
    grow_embeddings(model, tokenizer)  # the chat template's added tokens
    model.config.use_cache = False
    return model


def _packed_batch(examples: list[list[int]], collator: Any, seq_length: int) -> dict[str, Any]:
    dataset = Dataset.from_dict({"input_ids": examples})
    labeled = label_examples(dataset, collator.row_labels, f"test:{type(collator).__name__}")
    packed, stats = pack_examples(labeled, seq_length)
    assert stats.rows < len(examples)  # several examples per row
    return PackedCollator(collator.input_pad_id, seq_length)([packed[i] for i in range(len(packed))])


def _loss_and_grads(model: Any, batch: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    labels = batch["labels"]
    count = (labels[..., 1:] != IGNORE_INDEX).sum()
    inputs = {k: v for k, v in batch.items() if k != REAL_TOKENS}
    loss = model(**inputs, num_items_in_batch=count).loss
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("completions_only", [False, True], ids=["all-tokens", "completions-only"])
def test_packed_loss_and_gradients_equal_unpacked(
    tiny_model_dir: Path, chat_tokenizer: Any, examples: list[list[int]], attention: str, completions_only: bool
) -> None:
    collator: CausalLMCollator = (
        CompletionsOnlyCollator(chat_tokenizer, "<|im_start|>assistant", "<|im_end|>")
        if completions_only
        else CausalLMCollator(chat_tokenizer)
    )
    model = _model(tiny_model_dir, attention, chat_tokenizer)
    padded = collator([{"input_ids": ids} for ids in examples])
    packed = _packed_batch(examples, collator, seq_length=96)
    assert packed["input_ids"].shape[0] < len(examples)

    unpacked_loss, unpacked_grads = _loss_and_grads(model, padded)
    packed_loss, packed_grads = _loss_and_grads(model, packed)

    assert packed_loss == pytest.approx(unpacked_loss, rel=1e-5)
    assert unpacked_grads.keys() == packed_grads.keys()
    for name, grad in unpacked_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_packing_without_restarting_positions_would_leak_across_examples(
    tiny_model_dir: Path, chat_tokenizer: Any, examples: list[list[int]]
) -> None:
    """The control for the equality above: the same rows with running positions give another loss."""
    collator = CausalLMCollator(chat_tokenizer)
    model = _model(tiny_model_dir, "sdpa", chat_tokenizer)
    packed = _packed_batch(examples, collator, seq_length=96)
    running = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"]))
    assert _loss_and_grads(model, running)[0] != pytest.approx(_loss_and_grads(model, packed)[0], rel=1e-3)


def test_rows_restart_positions_per_example_and_keep_completion_masks(
    chat_tokenizer: Any, examples: list[list[int]]
) -> None:
    collator = CompletionsOnlyCollator(chat_tokenizer, "<|im_start|>assistant", "<|im_end|>")
    dataset = Dataset.from_dict({"input_ids": examples})
    packed, stats = pack_examples(label_examples(dataset, collator.row_labels, "test"), 96)
    assert stats.tokens == sum(len(e) for e in examples)
    batch = PackedCollator(collator.input_pad_id, 96)([packed[i] for i in range(len(packed))])
    assert batch[REAL_TOKENS] == stats.tokens
    seen = []
    for row in range(len(packed)):
        ids, labels, positions = (batch[k][row].tolist() for k in ("input_ids", "labels", "position_ids"))
        offset = 0
        for length in packed[row]["seq_lengths"]:
            example = ids[offset : offset + length]
            assert positions[offset : offset + length] == list(range(length))
            expected, _ = completion_only_labels(example, collator.start_ids, collator.end_ids)
            assert labels[offset : offset + length] == [IGNORE_INDEX, *expected[1:]]
            seen.append(example)
            offset += length
        # the padding tail: no targets, positions of its own
        assert labels[offset:] == [IGNORE_INDEX] * (len(ids) - offset)
        assert positions[offset:] == list(range(len(ids) - offset))
    assert sorted(seen) == sorted(examples)  # every example exactly once, whole


def test_flattened_batches_carry_flash_arguments() -> None:
    rows = [
        {"input_ids": [5, 6, 7, 8, 9], "labels": [X, 6, 7, X, 9], "seq_lengths": [3, 2]},
        {"input_ids": [1, 2], "labels": [X, 2], "seq_lengths": [2]},
    ]
    batch = PackedCollator(0, 8, flatten=True)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 1, 2]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 7]
    assert batch["max_length_q"] == 3
    assert batch[REAL_TOKENS] == 7


X = IGNORE_INDEX


def test_packing_is_refused_where_attention_would_cross_examples(tiny_model_dir: Path, chat_tokenizer: Any) -> None:
    model = _model(tiny_model_dir, "sdpa", chat_tokenizer)
    assert packing_problem(model) is None
    assert not flattens_batches(model)
    model.config._attn_implementation = "some_kernel"
    assert "some_kernel" in (packing_problem(model) or "")

    class RemoteCode(torch.nn.Module):
        config = model.config

    assert "not a transformers model" in (packing_problem(RemoteCode()) or "")


# ---------------------------------------------------------------------------------------------------------------------
# the chunked loss


class _WrappedHead(torch.nn.Module):
    """A head that is not a plain Linear (as an adapter-wrapped head): the recomputing path."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(states)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 4096])
@pytest.mark.parametrize("kind", ["linear", "linear-with-bias", "wrapped"])
def test_chunked_loss_matches_plain_loss_and_gradients(chunk_tokens: int, kind: str) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    linear = torch.nn.Linear(16, 50, bias=kind == "linear-with-bias")
    head = _WrappedHead(linear) if kind == "wrapped" else linear
    labels = torch.randint(0, 50, (3, 11))
    labels[0, :4] = IGNORE_INDEX
    labels[2, 7:] = IGNORE_INDEX
    params = [hidden, *linear.parameters()]

    logits = head(hidden)
    plain = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1))
    plain_grads = torch.autograd.grad(plain * 3.0, params)  # a scale on the way back, as gradient accumulation

    chunked = chunked_causal_lm_loss(hidden, head, labels, chunk_tokens=chunk_tokens)
    chunked_grads = torch.autograd.grad(chunked * 3.0, params)
    torch.testing.assert_close(chunked, plain)
    for got, expected in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_fused_loss_in_bfloat16_is_close_to_the_float32_loss() -> None:
    torch.manual_seed(1)
    hidden = torch.randn(2, 33, 32)
    head = torch.nn.Linear(32, 300, bias=False)
    labels = torch.randint(0, 300, (2, 33))
    reference = chunked_causal_lm_loss(hidden, head, labels)
    low = chunked_causal_lm_loss(hidden.bfloat16().requires_grad_(), head.bfloat16(), labels, chunk_tokens=16)
    low.backward()
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(reference.item(), rel=2e-2)
    assert head.weight.grad is not None
    assert head.weight.grad.dtype == torch.bfloat16


def test_chunked_loss_divides_by_the_accumulated_count() -> None:
    hidden, head = torch.randn(1, 5, 4), torch.nn.Linear(4, 9)
    labels = torch.tensor([[1, 2, 3, 4, 5]])
    mean = chunked_causal_lm_loss(hidden, head, labels)
    assert chunked_causal_lm_loss(hidden, head, labels, num_items_in_batch=8).item() == pytest.approx(
        mean.item() * 4 / 8
    )


def test_chunked_loss_matches_the_models_own_loss(
    tiny_model_dir: Path, chat_tokenizer: Any, examples: list[list[int]]
) -> None:
    model = _model(tiny_model_dir, "sdpa", chat_tokenizer)
    assert chunked_loss_problem(model) is None
    batch = CausalLMCollator(chat_tokenizer)([{"input_ids": ids} for ids in examples])
    own = model(**batch).loss
    outputs = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=True,
        logits_to_keep=torch.empty(0, dtype=torch.long),
    )
    assert outputs.logits.shape[1] == 0  # the forward skipped the projection
    chunked = chunked_causal_lm_loss(outputs.hidden_states[-1], model.get_output_embeddings(), batch["labels"])
    torch.testing.assert_close(chunked, own)
    model.config.final_logit_softcapping = 30.0
    assert "final_logit_softcapping" in (chunked_loss_problem(model) or "")


# ---------------------------------------------------------------------------------------------------------------------
# the engine end to end: packed and chunked by default


def test_sft_packs_by_default_and_the_chunked_loss_follows_the_same_curve(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tiny_chat_records(48, seed=5), tmp_path / "chat.jsonl")
    curves = {}
    for chunked in (True, False):
        config = sft_config(
            tiny_model_dir,
            data,
            tmp_path / f"out-{chunked}",
            training_args={"max_steps": 8},
            sft_args={"chunked_loss": chunked},
        )
        code, events = run_cli(tmp_path / f"run-{chunked}", config)
        assert code == 0
        curves[chunked] = losses(events)
        packed = [e["message"] for e in events if e["type"] == "log" and e["message"].startswith("packed ")]
        assert packed
        assert "48 training examples into" in packed[0]
        steps = [e for e in events if e["type"] == "metrics" and e.get("tokens_per_second")]
        assert len(steps) >= 7  # real tokens are counted on the host, and reported at every logging step
    assert curves[True] == pytest.approx(curves[False], rel=1e-4)
    assert curves[True][-1] < 0.8 * curves[True][0]


# --- best-fit decreasing over the whole dataset, written to Arrow ------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_packing_gives_trls_rows_on_inputs_of_one_trl_batch(seed: int) -> None:
    """Up to 1000 examples TRL's pack_dataset packs them all at once: the rows must be the same, cut (too long) and
    left-out (empty) examples included."""
    from trl import pack_dataset

    rng = np.random.default_rng(seed)
    seq_length = int(rng.choice([4, 16, 96, 512]))
    lengths = rng.integers(0, seq_length + 4, size=int(rng.integers(1, 1000)))
    ids = [rng.integers(0, 1000, size=n).tolist() for n in lengths]
    dataset = Dataset.from_dict({"input_ids": ids, "labels": [[IGNORE_INDEX, *row[1:]] if row else [] for row in ids]})
    packed, stats = pack_examples(dataset, seq_length)
    assert packed.to_list() == pack_dataset(dataset, seq_length, strategy="bfd").to_list()
    assert (stats.examples, stats.rows) == (int((lengths > 0).sum()), len(packed))


def test_packing_the_whole_dataset_fills_rows_at_least_as_well_as_trls_per_batch_packing() -> None:
    from trl import pack_dataset

    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 1000, size=n).tolist() for n in rng.integers(1, 300, size=5000)]
    dataset = Dataset.from_dict({"input_ids": ids, "labels": ids})
    packed, stats = pack_examples(dataset, 512)
    assert stats.rows <= len(pack_dataset(dataset, 512, strategy="bfd"))
    assert stats.fill > 0.99
    # every example once, whole
    rows = packed.to_list()
    assert sorted(map(tuple, _examples_of(rows))) == sorted(map(tuple, ids))


def _examples_of(rows: list[dict[str, Any]]) -> list[list[int]]:
    out = []
    for row in rows:
        offset = 0
        for length in row["seq_lengths"]:
            out.append(row["input_ids"][offset : offset + length])
            offset += length
    return out


@pytest.mark.parametrize("completions_only", [False, True], ids=["all-tokens", "completions-only"])
def test_pack_sft_labels_and_packs_like_label_examples_then_pack_examples(
    chat_tokenizer: Any, examples: list[list[int]], completions_only: bool, tmp_path: Path
) -> None:
    collator: CausalLMCollator = (
        CompletionsOnlyCollator(chat_tokenizer, "<|im_start|>assistant", "<|im_end|>")
        if completions_only
        else CausalLMCollator(chat_tokenizer)
    )
    dataset = Dataset.from_dict({"input_ids": examples, "length": [len(e) for e in examples]})
    expected, expected_stats = pack_examples(label_examples(dataset, collator.row_labels, "test"), 96)
    packed, stats = pack_sft(dataset, collator.row_labels, "test", 96)
    assert packed.to_list() == expected.to_list()
    assert stats == expected_stats

    # written to the cache folder, memory-mapped, and found there by the next run
    events_file = tmp_path / "events.jsonl"
    with EventWriter(events_file) as events:
        first, _ = pack_sft(dataset, collator.row_labels, "test", 96, cache_dir=tmp_path / "cache", events=events)
        again, again_stats = pack_sft(
            dataset, collator.row_labels, "test", 96, cache_dir=tmp_path / "cache", events=events
        )
        pack_sft(dataset, collator.row_labels, "test", 128, cache_dir=tmp_path / "cache", events=events)
    assert first.cache_files
    assert again.cache_files
    assert again.to_list() == first.to_list() == expected.to_list()
    assert again_stats == stats
    done = [e for e in read_events(events_file) if e["type"] == "preprocessing" and e["state"] == "done"]
    assert [(e["stage"], e["cache"]) for e in done] == [("packing", "miss"), ("packing", "hit"), ("packing", "miss")]


def test_pack_sft_reads_memory_mapped_shards_through_an_index_mapping(
    chat_tokenizer: Any, examples: list[list[int]], tmp_path: Path
) -> None:
    """The engine's datasets: several Arrow files concatenated, seen through a selection (mix, split)."""
    from datasets import concatenate_datasets

    from finetuning.data.packing import _file_blocks

    parts = []
    for number in range(3):
        part = Dataset.from_dict({"input_ids": examples[number::3], "length": [len(e) for e in examples[number::3]]})
        path = tmp_path / f"part-{number}.arrow"
        part.save_to_disk(str(tmp_path / f"saved-{number}"))
        parts.append(Dataset.load_from_disk(str(tmp_path / f"saved-{number}")))
        del path
    combined = concatenate_datasets(parts)
    assert _file_blocks(combined.data) is not None  # read from the files, through short-lived memory maps
    order = np.random.default_rng(1).permutation(len(combined))[:9]
    selected = combined.select(order, keep_in_memory=True)
    in_memory = Dataset.from_dict(selected.to_dict())
    collator = CausalLMCollator(chat_tokenizer)
    packed, _ = pack_sft(selected, collator.row_labels, "test", 96)
    expected, _ = pack_sft(in_memory, collator.row_labels, "test", 96)
    assert packed.to_list() == expected.to_list()
