"""replace_tokens: renamed special tokens keep their ids in every tokenizer file, and the copy loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetuning.events import read_events
from finetuning.tools.replace_tokens import main

EXTRA_TOKENS = ["<|a|>", "<|c|>", "<|e|>", "<|im_end|>", "<|re.*+?/x|>"]
TEMPLATE = "{% for m in messages %}<|a|>{{ m['content'] }}<|im_end|>{% endfor %}"


@pytest.fixture(scope="module")
def source_tokenizer(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tokenizer with extra special tokens and a template, plus the legacy files older transformers wrote
    (special_tokens_map.json, added_tokens.json, added_tokens_decoder and chat_template in the config)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("source") / "tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, add_bos_token=True)
    tokenizer.add_special_tokens({"extra_special_tokens": EXTRA_TOKENS})
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ["<s>", "</s>", "<unk>", *EXTRA_TOKENS]}
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = TEMPLATE
    config["added_tokens_decoder"] = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in ids.items()
    }
    config_path.write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False},
                "unk_token": "<unk>",
                "additional_special_tokens": EXTRA_TOKENS,
            }
        )
    )
    (folder / "added_tokens.json").write_text(json.dumps({t: ids[t] for t in EXTRA_TOKENS}))
    (folder / "model.safetensors").write_bytes(b"not copied")  # weights stay behind
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def load(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def all_strings(value: Any) -> set[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return set().union(*map(all_strings, value)) if value else set()
    if isinstance(value, dict):
        return set(value) | (set().union(*map(all_strings, value.values())) if value else set())
    return set()


def run(*args: str | Path) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize(
    "pairs",
    [["--from", "<|a|>"], ["--from", "<|a|>", "--from", "<|c|>", "--to", "x"], ["--to", "x"], []],
    ids=["from-only", "two-from-one-to", "to-only", "none"],
)
def test_unpaired_or_missing_pairs_are_a_usage_error(
    source_tokenizer: Path, out: Path, pairs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(source_tokenizer, out, *pairs)
    assert exc.value.code == 2
    assert "--from" in capsys.readouterr().err
    assert not out.exists()


def test_pairs_apply_in_order_and_keep_ids(source_tokenizer: Path, out: Path) -> None:
    before = load(source_tokenizer)
    old_ids = {t: before.convert_tokens_to_ids(t) for t in ("<|a|>", "<|c|>", "<|e|>")}
    events_file = out.parent / "events.jsonl"

    code = run(
        source_tokenizer,
        out,
        *("--from", "<|a|>", "--to", "<|b|>"),
        *("--from", "<|c|>", "--to", "<|d|>"),
        *("--from", "<|e|>", "--to", "<|f|>"),
        *("--events-file", events_file),
    )

    assert code == 0
    after = load(out)
    for old, new in (("<|a|>", "<|b|>"), ("<|c|>", "<|d|>"), ("<|e|>", "<|f|>")):
        assert after.encode(new, add_special_tokens=False) == [old_ids[old]]
        assert new in after.all_special_tokens
        assert old not in after.get_vocab()
        assert old not in after.all_special_tokens
        assert len(after.encode(old, add_special_tokens=False)) > 1  # now plain text
    assert len(after) == len(before)
    assert not (out / "model.safetensors").exists()
    events = read_events(events_file)
    assert [e["type"] for e in events][0] == "run_started"
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["metrics"]["token_ids"] == {
        "<|b|>": old_ids["<|a|>"],
        "<|d|>": old_ids["<|c|>"],
        "<|f|>": old_ids["<|e|>"],
    }


def test_every_file_is_rewritten_structurally(source_tokenizer: Path, out: Path) -> None:
    assert run(source_tokenizer, out, "--from", "<|a|>", "--to", "<|b|>") == 0

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        strings = all_strings(json.loads((out / name).read_text()))
        assert "<|a|>" not in strings, name
        assert "<|b|>" in strings, name
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["chat_template"] == TEMPLATE.replace("<|a|>", "<|b|>")
    assert (out / "chat_template.jinja").read_text() == TEMPLATE.replace("<|a|>", "<|b|>")
    # files without the token are copied unchanged
    original = json.loads((source_tokenizer / "tokenizer.json").read_text())
    rewritten = json.loads((out / "tokenizer.json").read_text())
    assert rewritten["model"]["merges"] == original["model"]["merges"]
    assert rewritten["pre_tokenizer"] == original["pre_tokenizer"]


def test_tokens_with_slashes_and_regex_characters(source_tokenizer: Path, out: Path) -> None:
    before = load(source_tokenizer)
    regex_id, end_id = before.convert_tokens_to_ids("<|re.*+?/x|>"), before.convert_tokens_to_ids("<|im_end|>")

    code = run(
        source_tokenizer,
        out,
        *("--from", "<|re.*+?/x|>", "--to", "<|plain|>"),
        *("--from", "<|im_end|>", "--to", "<|end/turn\\1 $& [x]|>"),
    )

    assert code == 0
    after = load(out)
    assert after.encode("<|plain|>", add_special_tokens=False) == [regex_id]
    assert after.encode("<|end/turn\\1 $& [x]|>", add_special_tokens=False) == [end_id]
    rendered = after.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert rendered == "<|a|>hi<|end/turn\\1 $& [x]|>"


def test_renamed_special_token_fields_follow(source_tokenizer: Path, out: Path) -> None:
    before = load(source_tokenizer)

    assert run(source_tokenizer, out, "--from", "<s>", "--to", "<|begin|>", "--from", "</s>", "--to", "<|eot|>") == 0

    after = load(out)
    assert (after.bos_token, after.bos_token_id) == ("<|begin|>", before.bos_token_id)
    assert (after.eos_token, after.eos_token_id) == ("<|eot|>", before.eos_token_id)
    # the post-processor still prepends BOS, by its new name
    assert after("Question").input_ids == before("Question").input_ids
    assert after.convert_ids_to_tokens(after("Question").input_ids[0]) == "<|begin|>"
    assert "<s>" not in after.all_special_tokens


def test_swapping_two_tokens_is_allowed(source_tokenizer: Path, out: Path) -> None:
    before = load(source_tokenizer)

    assert run(source_tokenizer, out, "--from", "<|a|>", "--to", "<|c|>", "--from", "<|c|>", "--to", "<|a|>") == 0

    after = load(out)
    assert after.convert_tokens_to_ids("<|a|>") == before.convert_tokens_to_ids("<|c|>")
    assert after.convert_tokens_to_ids("<|c|>") == before.convert_tokens_to_ids("<|a|>")
    assert (out / "chat_template.jinja").read_text() == TEMPLATE.replace("<|a|>", "<|c|>")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("<|a|>", "</s>"), "already exists"),
        (("<|a|>", "Question"), "already exists"),  # an ordinary vocabulary token
        (("<|nope|>", "<|x|>"), "not a token"),
        (("Question", "<|x|>"), "ordinary vocabulary token"),
    ],
)
def test_bad_replacements_fail_and_write_nothing(
    source_tokenizer: Path, out: Path, pair: tuple[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if pair[0] == "Question" or pair[1] == "Question":
        assert "Question" in load(source_tokenizer).get_vocab()

    code = run(source_tokenizer, out, "--from", pair[0], "--to", pair[1])

    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not out.exists()
    assert not list(out.parent.glob(".out.replacing-*"))


def test_missing_tokenizer_files_fail_naming_the_argument(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")

    assert run(empty, out, "--from", "<s>", "--to", "<x>") == 2
    assert "tokenizer: none of the tokenizer files" in capsys.readouterr().err

    assert run(tmp_path / "missing", out, "--from", "<s>", "--to", "<x>") == 2
    assert "tokenizer: no tokenizer folder" in capsys.readouterr().err
    assert not out.exists()


def test_existing_output_is_refused(source_tokenizer: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(source_tokenizer, out)

    assert run(source_tokenizer, out, "--from", "<|a|>", "--to", "<|b|>") == 2
    assert "out:" in capsys.readouterr().err
    assert run(source_tokenizer, source_tokenizer, "--from", "<|a|>", "--to", "<|b|>") == 2
    assert run(source_tokenizer, source_tokenizer / "renamed", "--from", "<|a|>", "--to", "<|b|>") == 2
    assert not (source_tokenizer / "renamed").exists()
    assert (source_tokenizer / "chat_template.jinja").read_text() == TEMPLATE
