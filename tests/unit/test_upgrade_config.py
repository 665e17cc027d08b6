"""``finetuning upgrade-config``: a shelf of original recipes rewritten in today's spelling, comments, key order and
every untouched line kept as the user wrote them."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from finetuning.cli import main
from finetuning.config import DPOConfig
from finetuning.tools.upgrade_config import detect_kind, upgrade_text

ORIGINAL_CONFIGS = sorted((Path(__file__).parents[1] / "assets" / "original-configs").glob("*.yaml"))

LEGACY = """\
# a DPO recipe of 2024
method: dpo
data_conf:
  training_data:
    type: CONCATENATION
    datasets:
      - path: /data/prefs.jsonl   # the preference pairs
  validation_data: {type: NONE}
training_args:
  evaluation_strategy: "no"   # we do not evaluate
  warmup_ratio: 0.1
  rpo_alpha: 0.5
  push_to_hub: False
  overwrite_output_dir: true
batchsize_conf: {total_train_batch_size: 8, max_per_device_train_batch_size: 2}
peft_conf:
  peft_type: LORA
  peft_kwargs: {r: 8, target_modules: [q_proj, v_proj]}
run_conf:
  model: /models/llama
  model_args:
    torch_dtype: bfloat16   # as the checkpoint
"""


@pytest.mark.parametrize("path", ORIGINAL_CONFIGS, ids=lambda p: p.stem)
def test_only_the_retired_lines_change(path: Path) -> None:
    text = path.read_text()
    result = upgrade_text(text)
    assert result.problems == []
    retired = {note.path.rsplit(".", 1)[-1] for note in result.notes}
    diff = [line for line in difflib.ndiff(text.splitlines(), result.text.splitlines()) if line[:1] in "+-"]
    removed = [line[2:] for line in diff if line.startswith("- ")]
    assert all(any(f"{key}:" in line for key in retired) for line in removed)
    assert len(removed) == len(result.notes)
    # once upgraded, there is nothing left to upgrade
    again = upgrade_text(result.text)
    assert again.notes == []
    assert again.text == result.text


def test_comments_order_and_quoting_survive() -> None:
    result = upgrade_text(LEGACY)
    assert result.kind == "dpo"
    lines = result.text.splitlines()
    assert lines[0] == "# a DPO recipe of 2024"
    assert any(line.startswith('  eval_strategy: "no"') and line.endswith("# we do not evaluate") for line in lines)
    assert "  push_to_hub: False" in lines  # an untouched line is the user's, capitalised False and all
    assert any(line.startswith("    dtype: bfloat16 ") and line.endswith("# as the checkpoint") for line in lines)
    assert result.text.endswith("# as the checkpoint\n")
    assert "overwrite_output_dir" not in result.text
    assert "rpo_alpha" not in result.text
    config = DPOConfig.from_yaml(result.text)
    assert config.training_args.loss_type == ["sigmoid", "sft"]
    assert config.training_args.loss_weights == [1.0, 0.5]
    assert config.upgrades == []


def test_kind_comes_from_method_or_the_sections() -> None:
    assert detect_kind({"method": "sft"}) == "sft"
    assert detect_kind({"model_conf": {}, "prompt_conf": {}}) == "generate"
    assert detect_kind({"sft_args": {}}) == "sft"
    assert detect_kind({"training_args": {"beta": 0.1}}) == "dpo"
    assert detect_kind({"training_args": {}}) is None


def test_cli_prints_one_file_and_says_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dpo.yaml"
    path.write_text(LEGACY)
    assert main(["upgrade-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "warmup_steps: 0.1" in out
    assert "training_args.warmup_ratio is now training_args.warmup_steps" in err
    assert path.read_text() == LEGACY  # not rewritten without --in-place


def test_cli_in_place_and_check_for_a_shelf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shelf = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in shelf:
        path.write_text(LEGACY)
    args = [str(p) for p in shelf]
    assert main(["upgrade-config", *args]) == 2  # several files need --in-place or --check
    assert main(["upgrade-config", "--check", *args]) == 1
    assert main(["upgrade-config", "--in-place", *args]) == 0
    assert all("warmup_steps: 0.1" in p.read_text() for p in shelf)
    assert main(["upgrade-config", "--check", *args]) == 0
    assert "up to date" not in capsys.readouterr().out


def test_cli_leaves_a_file_that_is_still_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    text = LEGACY.replace("  warmup_ratio: 0.1\n", "  warmup_ratio: 0.1\n  save_safetensors: false\n")
    path.write_text(text)
    assert main(["upgrade-config", "--in-place", str(path)]) == 2
    assert path.read_text() == text
    assert "still refused: training_args.save_safetensors" in capsys.readouterr().err


def test_cli_asks_for_the_kind_when_the_file_does_not_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("training_args: {warmup_ratio: 0.1}\n")
    assert main(["upgrade-config", str(path)]) == 2
    assert "--kind" in capsys.readouterr().err
