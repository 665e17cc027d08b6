"""SFT and DPO start a conversation with the same single BOS, for every built-in template (one place decides:
finetuning.tokenizer.SpecialTokenFraming)."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from finetuning.config.data import ChatTemplateName, MissingPadTokenStrategy
from finetuning.data.preference import TruncatingPreferenceCollator
from finetuning.data.preprocess import preprocess_sft
from finetuning.tokenizer import SpecialTokenFraming, load_tokenizer

T = ChatTemplateName

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 plus 3?"}]
CHOSEN = [{"role": "assistant", "content": "It is 5."}]
REJECTED = [{"role": "assistant", "content": "It is 6."}]


def _load(path: Path, template: T) -> Any:
    tokenizer, _ = load_tokenizer(
        str(path), template=template, padding_side="right", pad_strategy=MissingPadTokenStrategy.EOS_REPURPOSE
    )
    return tokenizer


def _sft_ids(tokenizer: Any) -> list[int]:
    processed = preprocess_sft(
        [{"messages": PROMPT + CHOSEN}], tokenizer, max_seq_length=512, length_handling="filter", cache_dir=None
    )
    return list(processed.dataset[0]["input_ids"])


def _dpo_ids(tokenizer: Any) -> list[int]:
    """prompt + chosen as TRL's DPOTrainer tokenizes them (its dataset preparation, without building a trainer)."""
    from datasets import Dataset
    from trl import DPOTrainer

    rows = Dataset.from_list([{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}])
    # stand-ins for the trainer and its config: only the fields the dataset preparation reads
    trainer: Any = SimpleNamespace(_tokenizer=tokenizer)
    args: Any = SimpleNamespace(dataset_num_proc=None, max_length=None, truncation_mode="keep_start")
    prepared = DPOTrainer._prepare_dataset(trainer, rows, tokenizer, args, "train")
    return list(prepared[0]["prompt_ids"]) + list(prepared[0]["chosen_ids"])


@pytest.fixture(scope="module")
def tiny_without_bos(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tokenizer with no BOS token at all (as Qwen's): neither method may invent one."""
    out = tmp_path_factory.mktemp("no-bos")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, out / name)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["bos_token"] = None
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("template", list(T))
def test_sft_and_dpo_start_with_the_same_single_bos(tiny_model_dir: Path, template: T) -> None:
    tokenizer = _load(tiny_model_dir, template)
    bos = tokenizer.bos_token_id
    assert bos is not None
    sft, dpo = _sft_ids(tokenizer), _dpo_ids(tokenizer)
    for ids in (sft, dpo):
        assert ids[0] == bos, tokenizer.convert_ids_to_tokens(ids[:3])
        assert ids.count(bos) == 1, tokenizer.convert_ids_to_tokens(ids[:3])
    # the same tokens: SFT only adds its training-mode EOS at the end, where the template left framing to it
    assert sft[: len(dpo)] == dpo
    expected_tail = [] if template == T.SIMPLIFIED_LLAMA31 else [tokenizer.eos_token_id]
    assert sft[len(dpo) :] == expected_tail


@pytest.mark.parametrize("template", [T.CHAT_ML, T.MISTRAL_WITH_SYSTEM, T.SIMPLIFIED_LLAMA31])
def test_a_tokenizer_without_bos_gets_none_in_either_method(tiny_without_bos: Path, template: T) -> None:
    tokenizer = _load(tiny_without_bos, template)
    assert tokenizer.bos_token is None
    sft, dpo = _sft_ids(tokenizer), _dpo_ids(tokenizer)
    assert sft[: len(dpo)] == dpo
    assert tokenizer.convert_tokens_to_ids("<s>") not in sft + dpo


def test_apply_chat_template_frames_every_list_form(tiny_model_dir: Path) -> None:
    tokenizer = _load(tiny_model_dir, T.CHAT_ML)
    bos = tokenizer.bos_token_id
    text = tokenizer.apply_chat_template(PROMPT + CHOSEN, tokenize=False)
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert isinstance(text, str)
    assert not text.startswith("<s>")  # rendering is untouched

    assert tokenizer.apply_chat_template(PROMPT + CHOSEN, return_dict=False) == [bos, *body]
    batch = tokenizer.apply_chat_template([PROMPT + CHOSEN, PROMPT + CHOSEN], return_dict=False)
    assert batch == [[bos, *body], [bos, *body]]
    masked = tokenizer.apply_chat_template(PROMPT + CHOSEN, return_assistant_tokens_mask=True)
    assert masked["input_ids"] == [bos, *body]
    assert masked["attention_mask"][0] == 1
    assert masked["assistant_masks"][0] == 0
    assert len(masked["assistant_masks"]) == len(body) + 1


def test_framing_keeps_its_tokens_when_truncating() -> None:
    framing = SpecialTokenFraming(prefix=(1,), suffix=(2,), bos_token_id=1)
    assert framing.frame([5, 6, 7], with_suffix=True) == [1, 5, 6, 7, 2]
    assert framing.frame([5, 6, 7], with_suffix=False) == [1, 5, 6, 7]
    assert framing.frame([1, 5, 6], with_suffix=True) == [1, 5, 6]  # the template's own BOS: nothing added
    assert framing.frame([5, 6, 7, 8], with_suffix=True, max_length=4) == [1, 5, 6, 2]
    assert framing.frame([5, 6, 7, 8], with_suffix=True, max_length=4, truncation_side="left") == [1, 7, 8, 2]
    assert SpecialTokenFraming(prefix=(), suffix=(), bos_token_id=None).frame([5], with_suffix=True) == [5]


def test_sft_framing_matches_the_tokenizers_own(tiny_model_dir: Path) -> None:
    """Where the template leaves framing to the tokenizer, SFT's rows are what the tokenizer itself makes."""
    tokenizer = _load(tiny_model_dir, T.CHAT_ML)
    text = tokenizer.apply_chat_template(PROMPT + CHOSEN, tokenize=False)
    assert _sft_ids(tokenizer) == tokenizer(text)["input_ids"]
    truncated = preprocess_sft(
        [{"messages": PROMPT + CHOSEN}], tokenizer, max_seq_length=7, length_handling="truncate", cache_dir=None
    )
    assert truncated.dataset[0]["input_ids"] == tokenizer(text, truncation=True, max_length=7)["input_ids"]


def test_preference_truncation_keeps_the_prompts_bos() -> None:
    seen: list[list[dict[str, list[int]]]] = []
    collator = TruncatingPreferenceCollator(
        seen.append, max_prompt_length=3, max_completion_length=None, bos_token_id=1
    )
    collator([{"prompt_ids": [1, 10, 11, 12, 13], "chosen_ids": [5], "rejected_ids": [6]}])
    collator([{"prompt_ids": [1, 10], "chosen_ids": [5], "rejected_ids": [6]}])
    assert [rows[0]["prompt_ids"] for rows in seen] == [[1, 12, 13], [1, 10]]
