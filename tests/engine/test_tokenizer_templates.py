"""Chat templates, tokenizer loading (tokens, pad strategies, DPO checks), the inference save wrapper, and
completions-only masking on real rendered conversations, all with the tiny offline tokenizer."""

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from finetuning.collators import (
    CausalLMCollator,
    CompletionsOnlyCollator,
    UnkToEosCollator,
    build_sft_collator,
    completion_only_labels,
    tokenize_markers_in_context,
)
from finetuning.config.data import ChatTemplateName, MissingPadTokenStrategy
from finetuning.errors import FinetuningError
from finetuning.templates import get_template
from finetuning.tokenizer import apply_pad_strategy, install_inference_save_wrapper, load_tokenizer

T = ChatTemplateName
P = MissingPadTokenStrategy

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": " It is 5. "},
]
TWO_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": "It is 5."},
    {"role": "user", "content": "And the sky?"},
    {"role": "assistant", "content": "The sky is blue."},
]

# Section 12 of the reference, rendered with the tiny tokenizer (eos "</s>", bos "<s>").
RENDERED = {
    T.CHAT_ML: (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 plus 3?<|im_end|>\n"
        "<|im_start|>assistant\n It is 5. <|im_end|>\n"
    ),
    T.MISTRAL_WITH_SYSTEM: "<<SYS>>\nBe brief.\n<</SYS>>\n[INST] What is 2 plus 3? [/INST] It is 5. </s> ",
    T.PORO: "<|system|>\nBe brief.</s><|user|>\nWhat is 2 plus 3?</s><|assistant|>\n It is 5. </s>",
    T.SIMPLIFIED_LLAMA31: (
        "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 plus 3?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 5.<|eot_id|>"
    ),
    # The tiny model's own template.
    T.KEEP_ORIGINAL: "System: Be brief.\nUser: What is 2 plus 3?\nAssistant:  It is 5. </s>\n",
}
GENERATION_PROMPT = {
    T.CHAT_ML: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 plus 3?<|im_end|>\n"
    "<|im_start|>assistant\n",
    # No generation prompt: the user turn already ends with " [/INST]".
    T.MISTRAL_WITH_SYSTEM: "<<SYS>>\nBe brief.\n<</SYS>>\n[INST] What is 2 plus 3? [/INST]",
    T.PORO: "<|system|>\nBe brief.</s><|user|>\nWhat is 2 plus 3?</s><|assistant|>\n",
    T.SIMPLIFIED_LLAMA31: "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 plus 3?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    T.KEEP_ORIGINAL: "System: Be brief.\nUser: What is 2 plus 3?\nAssistant:",
}
MARKERS = {
    T.CHAT_ML: ("<|im_start|>assistant\n", "<|im_end|>"),
    T.MISTRAL_WITH_SYSTEM: ("[/INST]", "</s>"),
    T.PORO: ("<|assistant|>\n", "</s>"),
    T.SIMPLIFIED_LLAMA31: ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    T.KEEP_ORIGINAL: (None, "</s>"),
}
NEW_TOKENS = {
    T.CHAT_ML: ["<|im_start|>", "<|im_end|>"],
    T.MISTRAL_WITH_SYSTEM: [],
    T.PORO: ["<|user|>", "<|assistant|>"],
    T.SIMPLIFIED_LLAMA31: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    T.KEEP_ORIGINAL: [],
}


def _load(path: Path, template: T = T.CHAT_ML, **kwargs: Any) -> tuple[Any, Any]:
    options: dict[str, Any] = {"padding_side": "right", "pad_strategy": P.BOS_REPURPOSE, **kwargs}
    return load_tokenizer(str(path), template=template, **options)


# ---------------------------------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize("template", list(T))
def test_template_renders_reference_strings(tiny_model_dir: Path, template: T) -> None:
    tokenizer, _ = _load(tiny_model_dir, template)
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert isinstance(rendered, str)
    assert rendered == RENDERED[template]
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == GENERATION_PROMPT[template]


@pytest.mark.parametrize("template", list(T))
def test_template_markers_and_tokens(tiny_model_dir: Path, template: T) -> None:
    _, setup = _load(tiny_model_dir, template)
    assert (setup.assistant_start, setup.assistant_end) == MARKERS[template]
    assert setup.new_tokens == NEW_TOKENS[template]
    assert list(get_template(template).new_special_tokens) == NEW_TOKENS[template]
    assert setup.template.name == template


def test_get_template_accepts_strings_and_rejects_unknown_names() -> None:
    assert get_template("chat-ml") is get_template(T.CHAT_ML)
    with pytest.raises(ValueError, match="unknown chat template 'chatml'"):
        get_template("chatml")


def test_chat_ml_assistant_tokens_mask(tiny_model_dir: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)
    # transformers 5: tokenize=True returns a BatchEncoding by default, not a list of ids.
    encoded = tokenizer.apply_chat_template(TWO_TURNS, return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    kept = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tokenizer.decode(kept) == "It is 5.<|im_end|>The sky is blue.<|im_end|>"


def test_empty_conversation_is_refused(tiny_model_dir: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)
    with pytest.raises(ValueError, match="empty conversation"):
        tokenizer.apply_chat_template([], tokenize=False)


# ---------------------------------------------------------------------------------------------------------------------
# Loading: new tokens, training-mode settings, pad strategies


@pytest.mark.parametrize("template", [T.CHAT_ML, T.PORO, T.SIMPLIFIED_LLAMA31])
def test_new_tokens_are_single_special_tokens(tiny_model_dir: Path, template: T) -> None:
    base = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer, setup = _load(tiny_model_dir, template)
    assert len(tokenizer) == len(base) + len(setup.new_tokens)
    for token in setup.new_tokens:
        ids = tokenizer(f"a{token}b", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_tokens_to_ids(token) in ids
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]
        assert token in tokenizer.all_special_tokens
    # Existing special tokens are kept, not replaced.
    assert {"<s>", "</s>", "<unk>"} <= set(tokenizer.all_special_tokens)


def test_tokens_already_present_are_not_new(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.CHAT_ML)
    tokenizer.save_pretrained(tmp_path)
    again, setup_again = _load(tmp_path, T.CHAT_ML)
    assert setup.new_tokens == ["<|im_start|>", "<|im_end|>"]
    assert setup_again.new_tokens == []
    assert len(again) == len(tokenizer)


def test_training_mode_keeps_own_eos_and_frames_with_bos_eos(tiny_model_dir: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML, padding_side="left")
    assert tokenizer.eos_token == "</s>"  # the original forced "</s>"; we keep the tokenizer's own
    assert tokenizer.padding_side == "left"
    body = tokenizer("The cat", add_special_tokens=False)["input_ids"]
    assert tokenizer("The cat")["input_ids"] == [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]


def test_bad_padding_side(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="padding_side"):
        _load(tiny_model_dir, padding_side="middle")


@pytest.mark.parametrize(
    ("strategy", "pad_token"),
    [
        (P.EOS_REPURPOSE, "</s>"),
        (P.BOS_REPURPOSE, "<s>"),
        (P.UNK_REPURPOSE, "<unk>"),
        (P.UNK_CONVERT_TO_EOS, "<unk>"),
    ],
)
def test_pad_strategies_without_pad_token(tiny_model_dir: Path, strategy: P, pad_token: str) -> None:
    tokenizer, setup = _load(tiny_model_dir, pad_strategy=strategy)
    assert tokenizer.pad_token == pad_token
    assert tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids(pad_token)
    assert setup.pad_strategy == strategy


@pytest.mark.parametrize("strategy", [P.EOS_REPURPOSE, P.BOS_REPURPOSE, P.UNK_REPURPOSE])
def test_pad_strategies_leave_an_existing_pad_token(tiny_model_dir_with_pad: Path, strategy: P) -> None:
    tokenizer, setup = _load(tiny_model_dir_with_pad, pad_strategy=strategy)
    assert tokenizer.pad_token == "<pad>"
    assert setup.pad_strategy is None


def test_unk_convert_to_eos_refuses_an_existing_pad_token(tiny_model_dir_with_pad: Path) -> None:
    with pytest.raises(FinetuningError, match="already has a pad token"):
        _load(tiny_model_dir_with_pad, pad_strategy=P.UNK_CONVERT_TO_EOS)


def test_pad_strategy_needs_its_token(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.bos_token = None
    with pytest.raises(FinetuningError, match="pads with the tokenizer's bos_token, but this tokenizer has none"):
        apply_pad_strategy(tokenizer, P.BOS_REPURPOSE)
    assert tokenizer.pad_token is None


# ---------------------------------------------------------------------------------------------------------------------
# DPO: expects an SFT-prepared tokenizer


def test_dpo_refuses_a_different_stored_template(tiny_model_dir: Path) -> None:
    with pytest.raises(FinetuningError, match="does not carry the 'chat-ml' chat template") as excinfo:
        _load(tiny_model_dir, T.CHAT_ML, for_training_method="dpo")
    assert "run SFT with this template first" in str(excinfo.value)


def test_dpo_refuses_missing_template_tokens(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = get_template(T.CHAT_ML).jinja
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(FinetuningError, match=r"lacks: \['<\|im_start\|>', '<\|im_end\|>'\]"):
        _load(tmp_path, T.CHAT_ML, for_training_method="dpo")


def test_dpo_accepts_an_sft_saved_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    sft_tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)
    sft_tokenizer.save_pretrained(tmp_path)
    tokenizer, setup = _load(tmp_path, T.CHAT_ML, for_training_method="dpo")
    assert tokenizer.chat_template == sft_tokenizer.chat_template
    assert setup.new_tokens == []
    # The saved tokenizer's own EOS is the assistant end now, and DPO keeps it.
    assert tokenizer.eos_token == "<|im_end|>"
    assert setup.assistant_end == "<|im_end|>"


def test_dpo_keep_original_takes_the_stored_template(tiny_model_dir: Path) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.KEEP_ORIGINAL, for_training_method="dpo")
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    assert setup.assistant_end == "</s>"


def test_keep_original_needs_a_stored_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(FinetuningError, match="has no chat template"):
        _load(tmp_path, T.KEEP_ORIGINAL)


# ---------------------------------------------------------------------------------------------------------------------
# The inference save wrapper


def test_saved_tokenizer_is_in_inference_mode(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)
    files = tokenizer.save_pretrained(tmp_path)
    assert {Path(f).name for f in files} >= {"tokenizer_config.json", "tokenizer.json"}

    saved = AutoTokenizer.from_pretrained(tmp_path)
    assert saved.eos_token == "<|im_end|>"
    assert saved.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert saved.bos_token == "<s>"  # left alone
    body = saved("The cat", add_special_tokens=False)["input_ids"]
    # BOS added, no EOS: what generation wants. (The reloaded add_bos_token *attribute* reads False in transformers
    # 5, because from_pretrained drops it when tokenizer.json exists; the post-processor is what adds BOS.)
    assert saved("The cat")["input_ids"] == [saved.bos_token_id, *body]
    assert saved.chat_template == tokenizer.chat_template


def test_save_restores_training_settings(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)
    before = tokenizer("The cat")["input_ids"]
    post_processor = repr(tokenizer.backend_tokenizer.post_processor)
    tokenizer.save_pretrained(tmp_path)
    assert (tokenizer.eos_token, tokenizer.add_bos_token, tokenizer.add_eos_token) == ("</s>", True, True)
    assert repr(tokenizer.backend_tokenizer.post_processor) == post_processor
    assert tokenizer("The cat")["input_ids"] == before


def test_save_wrapper_sets_values_during_save_and_passes_the_result(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen: list[tuple[Any, ...]] = []
    sentinel = object()

    def fake_save(*args: Any, **kwargs: Any) -> object:
        seen.append((args, kwargs, tokenizer.eos_token, tokenizer.add_bos_token, tokenizer.add_eos_token))
        return sentinel

    target: Any = tokenizer  # methods and read-only properties replaced for the test
    target.save_pretrained = fake_save
    target.add_eos_token = True
    install_inference_save_wrapper(tokenizer, "<unk>")
    assert tokenizer.save_pretrained("somewhere", safe=True) is sentinel
    assert seen == [(("somewhere",), {"safe": True}, "<unk>", True, False)]
    assert (tokenizer.eos_token, tokenizer.add_bos_token, tokenizer.add_eos_token) == ("</s>", False, True)


def test_save_wrapper_restores_on_error(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def failing_save(*args: Any, **kwargs: Any) -> None:
        assert tokenizer.eos_token == "<unk>"
        raise OSError("disk full")

    target: Any = tokenizer
    target.save_pretrained = failing_save
    install_inference_save_wrapper(tokenizer, "<unk>")
    with pytest.raises(OSError, match="disk full"):
        tokenizer.save_pretrained("somewhere")
    assert (tokenizer.eos_token, tokenizer.add_bos_token, tokenizer.add_eos_token) == ("</s>", False, False)


def test_save_wrapper_twice_raises(tiny_model_dir: Path) -> None:
    tokenizer, _ = _load(tiny_model_dir, T.CHAT_ML)  # already wrapped by load_tokenizer
    with pytest.raises(RuntimeError, match="already wrapped"):
        install_inference_save_wrapper(tokenizer, "<|im_end|>")


def test_save_wrapper_is_per_instance(tiny_model_dir: Path, tmp_path: Path) -> None:
    wrapped, _ = _load(tiny_model_dir, T.CHAT_ML)
    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).eos_token == "</s>"
    assert wrapped.save_pretrained.__name__ == "save_pretrained"


@pytest.mark.parametrize("template", [T.KEEP_ORIGINAL, T.MISTRAL_WITH_SYSTEM])
def test_eos_ended_templates_save_their_eos(tiny_model_dir: Path, tmp_path: Path, template: T) -> None:
    tokenizer, _ = _load(tiny_model_dir, template)
    tokenizer.save_pretrained(tmp_path)
    saved = AutoTokenizer.from_pretrained(tmp_path)
    assert saved.eos_token == "</s>"
    assert saved("x")["input_ids"][0] == saved.bos_token_id
    assert saved("x")["input_ids"][-1] != saved.eos_token_id


# ---------------------------------------------------------------------------------------------------------------------
# Completions-only on real rendered conversations


def _kept_spans(labels: list[int]) -> list[list[int]]:
    spans: list[list[int]] = []
    current: list[int] = []
    for label in [*labels, -100]:
        if label != -100:
            current.append(label)
        elif current:
            spans.append(current)
            current = []
    return spans


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i : i + len(part)] == part for i in range(len(ids) - len(part) + 1))


@pytest.mark.parametrize("template", [T.CHAT_ML, T.MISTRAL_WITH_SYSTEM, T.PORO, T.SIMPLIFIED_LLAMA31])
def test_markers_in_context_match_rendered_conversations(tiny_model_dir: Path, template: T) -> None:
    tokenizer, setup = _load(tiny_model_dir, template)
    ids = tokenizer(tokenizer.apply_chat_template(TWO_TURNS, tokenize=False))["input_ids"]
    start = tokenize_markers_in_context(tokenizer, setup.assistant_start)
    end = tokenize_markers_in_context(tokenizer, setup.assistant_end)
    assert _contains(ids, start)
    assert _contains(ids, end)

    labels, scan = completion_only_labels(ids, start, end)
    assert (scan.n_starts, scan.n_ends) == (2, 2)
    decoded = [tokenizer.decode(span) for span in _kept_spans(labels)]
    assert decoded == [
        f"{setup.assistant_start}It is 5.{setup.assistant_end}",
        f"{setup.assistant_start}The sky is blue.{setup.assistant_end}",
    ]
    # The training-mode EOS that follows the last turn is masked.
    assert ids[-1] == tokenizer.eos_token_id
    assert labels[-1] == -100


def test_chat_ml_completion_labels_exact(tiny_model_dir: Path) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.CHAT_ML)
    start = tokenize_markers_in_context(tokenizer, setup.assistant_start)
    (im_end,) = tokenize_markers_in_context(tokenizer, setup.assistant_end)
    assert im_end == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert start[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")

    ids = tokenizer(tokenizer.apply_chat_template(TWO_TURNS, tokenize=False))["input_ids"]
    labels, _ = completion_only_labels(ids, start, [im_end])
    turns = [
        start + tokenizer("It is 5.", add_special_tokens=False)["input_ids"] + [im_end],
        start + tokenizer("The sky is blue.", add_special_tokens=False)["input_ids"] + [im_end],
    ]
    assert _kept_spans(labels) == turns
    assert sum(label != -100 for label in labels) == sum(map(len, turns))


@pytest.mark.parametrize("side", ["right", "left"])
def test_completions_collator_on_real_batch(tiny_model_dir: Path, side: str, caplog: pytest.LogCaptureFixture) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.CHAT_ML, padding_side=side)
    collator = build_sft_collator(tokenizer, setup, completions_only=True)
    assert isinstance(collator, CompletionsOnlyCollator)
    long_row = tokenizer(tokenizer.apply_chat_template(TWO_TURNS, tokenize=False))
    short_row = tokenizer(tokenizer.apply_chat_template(TWO_TURNS[1:3], tokenize=False))
    truncated = {"input_ids": long_row["input_ids"][:-6]}
    with caplog.at_level(logging.WARNING, logger="finetuning.collators"):
        batch = collator([dict(long_row), dict(short_row), truncated])
    assert "probably truncated" in caplog.text

    width = len(long_row["input_ids"])
    assert batch["input_ids"].shape == (3, width)
    short_len = len(short_row["input_ids"])
    pad_positions = slice(short_len, None) if side == "right" else slice(0, width - short_len)
    assert batch["attention_mask"][1, pad_positions].eq(0).all()
    assert batch["labels"][1, pad_positions].eq(-100).all()
    assert batch["input_ids"][1, pad_positions].eq(tokenizer.bos_token_id).all()

    decoded = [tokenizer.decode([t for t in row.tolist() if t != -100]) for row in batch["labels"]]
    first = "<|im_start|>assistant\nIt is 5.<|im_end|>"
    assert decoded[0] == first + "<|im_start|>assistant\nThe sky is blue.<|im_end|>"
    assert decoded[1] == first
    # Truncated inside the second reply: its start and what is left of it stay targets.
    assert decoded[2].startswith(first + "<|im_start|>assistant\nThe")
    assert "<|im_end|>" not in decoded[2][len(first) :]


def test_build_sft_collator_variants(tiny_model_dir: Path) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.CHAT_ML, pad_strategy=P.UNK_CONVERT_TO_EOS)
    assert type(build_sft_collator(tokenizer, setup, completions_only=False)) is UnkToEosCollator
    with pytest.raises(ValueError, match="cannot be combined with train_on_completions_only"):
        build_sft_collator(tokenizer, setup, completions_only=True)

    tokenizer, setup = _load(tiny_model_dir, T.KEEP_ORIGINAL)
    assert type(build_sft_collator(tokenizer, setup, completions_only=False)) is CausalLMCollator
    with pytest.raises(ValueError, match="needs an assistant start marker"):
        build_sft_collator(tokenizer, setup, completions_only=True)


def test_unk_to_eos_collator_on_real_rows(tiny_model_dir: Path) -> None:
    tokenizer, setup = _load(tiny_model_dir, T.CHAT_ML, pad_strategy=P.UNK_CONVERT_TO_EOS)
    collator = build_sft_collator(tokenizer, setup, completions_only=False)
    rows = [tokenizer("The cat sees a red ball."), tokenizer("Hi")]
    batch = collator([dict(r) for r in rows])
    n_long, n_short = len(rows[0]["input_ids"]), len(rows[1]["input_ids"])
    eos = tokenizer.eos_token_id
    assert batch["input_ids"][1].tolist() == rows[1]["input_ids"] + [eos] * (n_long - n_short)
    assert batch["labels"][1].tolist() == rows[1]["input_ids"] + [-100] * (n_long - n_short)
    assert torch.equal(batch["labels"][0], torch.tensor(rows[0]["input_ids"]))
