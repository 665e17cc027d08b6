"""Completions-only masking of mistral-with-system on a real SentencePiece vocabulary: Mistral 7B's own
(``tokenizer.model.v1``, 32000 pieces, as shipped inside the mistral-common package), converted offline to a
transformers fast tokenizer.

On this vocabulary the ``[/INST]`` marker is not the tokens it is in a neutral context: the template's space before
it makes ``▁[`` of its first piece, and an answer that begins with punctuation merges into its last (``](``,
``].``). The engine's marker patterns (finetuning.collators.MarkerPattern) must still find every turn.
"""

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetuning.collators import IGNORE_INDEX, CompletionsOnlyCollator, build_sft_collator
from finetuning.config.data import ChatTemplateName, MissingPadTokenStrategy
from finetuning.data.preprocess import preprocess_sft
from finetuning.tokenizer import load_tokenizer

SYSTEM = {"role": "system", "content": "Be brief."}


def _shipped_vocabulary() -> Path:
    # found without importing mistral_common (only its data file is used)
    spec = importlib.util.find_spec("mistral_common")
    assert spec is not None, "mistral-common (a dev dependency) ships the vocabulary this test needs"
    assert spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "tokenizer.model.v1"


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder as a Mistral 7B checkpoint has it, built offline from the SentencePiece model."""
    from transformers import LlamaTokenizer

    out = tmp_path_factory.mktemp("mistral-v1")
    shutil.copy(_shipped_vocabulary(), out / "tokenizer.model")
    # the SentencePiece model is converted to a tokenizers (fast) tokenizer and saved with it
    LlamaTokenizer.from_pretrained(str(out)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def loaded(mistral_dir: Path) -> tuple[Any, CompletionsOnlyCollator]:
    tokenizer, setup = load_tokenizer(
        str(mistral_dir),
        template=ChatTemplateName.MISTRAL_WITH_SYSTEM,
        padding_side="right",
        pad_strategy=MissingPadTokenStrategy.UNK_REPURPOSE,
    )
    collator = build_sft_collator(tokenizer, setup, completions_only=True)
    assert isinstance(collator, CompletionsOnlyCollator)
    return tokenizer, collator


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i : i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def _expected_labels(tokenizer: Any, text: str, ids: list[int]) -> list[int]:
    """The oracle, from character offsets: a token is a target where it overlaps an assistant turn, which runs from
    ``[/INST]`` through the EOS after the answer (the engine keeps both markers as targets)."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    # the SFT row is the template's text framed by the tokenizer's BOS and training-mode EOS
    assert ids == [tokenizer.bos_token_id, *encoded["input_ids"], tokenizer.eos_token_id]
    turns, search = [], 0
    while (start := text.find("[/INST]", search)) >= 0:
        end = text.index(tokenizer.eos_token, start) + len(tokenizer.eos_token)
        turns.append((start, end))
        search = end
    labels = [IGNORE_INDEX]  # BOS
    for token, (begin, finish) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        inside = any(begin < end and finish > start for start, end in turns)
        labels.append(token if inside else IGNORE_INDEX)
    return [*labels, IGNORE_INDEX]  # the training-mode EOS after the last turn


def _row(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    processed = preprocess_sft([{"messages": messages}], tokenizer, max_seq_length=512, length_handling="filter")
    return text, list(processed.dataset[0]["input_ids"])


def test_the_vocabulary_is_real_sentencepiece(loaded: tuple[Any, CompletionsOnlyCollator]) -> None:
    tokenizer, collator = loaded
    assert len(tokenizer) == 32000
    assert tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")
    # the marker in a neutral context, and as the template writes it: a different first piece
    assert tokenizer.convert_ids_to_tokens(collator.start_ids) == ["[", "/", "INST", "]"]
    in_text = tokenizer("Hi [/INST]", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(in_text)[-4:] == ["▁[", "/", "INST", "]"]
    assert not _contains(in_text, collator.start_ids)


@pytest.mark.parametrize(
    "answer",
    ["It is 5.", "5", "(5)", ".5, I think", ": five", "[5]", '"5"', "* five", "5 [/INST] is not a marker here"],
)
def test_exactly_the_assistant_turn_is_trained(loaded: tuple[Any, CompletionsOnlyCollator], answer: str) -> None:
    tokenizer, collator = loaded
    messages = [SYSTEM, {"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": answer}]
    text, ids = _row(tokenizer, messages)
    labels = collator([{"input_ids": ids}])["labels"][0].tolist()
    assert labels == _expected_labels(tokenizer, text, ids)
    kept = [label for label in labels if label != IGNORE_INDEX]
    assert tokenizer.decode(kept) == f"[/INST]{answer}</s>"
    # the system prompt and the user's turn up to the marker are masked
    first_target = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert tokenizer.decode(ids[1:first_target]) == "<<SYS>>\nBe brief.\n<</SYS>>\n[INST] What is 2 plus 3?"


def test_every_turn_of_a_conversation_is_found(loaded: tuple[Any, CompletionsOnlyCollator]) -> None:
    tokenizer, collator = loaded
    messages = [
        SYSTEM,
        {"role": "user", "content": "What is 2 plus 3?"},
        {"role": "assistant", "content": "(5)"},
        {"role": "user", "content": "And the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
    text, ids = _row(tokenizer, messages)
    labels = collator([{"input_ids": ids}])["labels"][0].tolist()
    assert labels == _expected_labels(tokenizer, text, ids)
    spans, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    assert spans == ["[/INST](5)</s>", "[/INST]Blue.</s>"]
