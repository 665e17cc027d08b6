"""The activation-checkpointing decision: a memory estimate from a model's shape, checked against measured peaks."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from finetuning.memory import estimate_training_memory, needs_checkpointing

GiB = 2**30


def _meta_model(config: object, cls: type) -> torch.nn.Module:
    with torch.device("meta"):  # the shapes without the memory
        model = cls(config).to(torch.bfloat16)
    return model


@pytest.fixture(scope="module")
def qwen_05b() -> torch.nn.Module:
    config = Qwen2Config(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=True,
    )
    return _meta_model(config, Qwen2ForCausalLM)


def test_estimate_of_a_05b_full_finetune_is_near_the_measured_peak(qwen_05b: torch.nn.Module) -> None:
    # measured on an H100 (issue 5): TRL without checkpointing, batch 8 padded to ~2048: 27.6 GiB peak
    estimate = estimate_training_memory(qwen_05b, 8 * 2048, trains_base=True)
    assert 15 * GiB < estimate.total(checkpointing=False) < 40 * GiB
    assert estimate.total(checkpointing=True) < estimate.total(checkpointing=False) / 2
    assert not needs_checkpointing(estimate, free_bytes=78 * GiB)  # an H100 holds it without checkpointing
    assert needs_checkpointing(estimate, free_bytes=24 * GiB)  # a 24 GiB card does not


def test_an_adapter_needs_no_gradients_or_optimizer_states_for_the_base(qwen_05b: torch.nn.Module) -> None:
    full = estimate_training_memory(qwen_05b, 4096, trains_base=True)
    adapter = estimate_training_memory(qwen_05b, 4096, trains_base=False)
    assert adapter.gradients == adapter.optimizer == 0
    assert full.optimizer == 4 * full.weights  # fp32 Adam moments for bf16 weights
    assert adapter.activations == full.activations


def test_activations_grow_with_tokens_and_layers() -> None:
    small = LlamaConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512)
    deep = LlamaConfig(hidden_size=256, num_hidden_layers=8, num_attention_heads=4, intermediate_size=512)
    shallow_model, deep_model = _meta_model(small, LlamaForCausalLM), _meta_model(deep, LlamaForCausalLM)
    one = estimate_training_memory(shallow_model, 1000, trains_base=True).activations
    assert estimate_training_memory(shallow_model, 2000, trains_base=True).activations == 2 * one
    assert estimate_training_memory(deep_model, 1000, trains_base=True).activations == 4 * one
