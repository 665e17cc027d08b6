"""The `finetuning` command's light subcommands: schema, validate, and input errors (no training)."""

import json
from pathlib import Path

import pytest
import yaml

from finetuning.cli import EXIT_BAD_INPUT, EXIT_OK, main

CONFIGS = Path(__file__).parents[1] / "assets" / "configs"


@pytest.mark.parametrize("kind", ["sft", "dpo", "generate"])
def test_schema_prints_json_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == EXIT_OK
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object"
    assert "properties" in schema


def test_validate_prints_the_config_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "sft", str(CONFIGS / "sft.yaml")]) == EXIT_OK
    echoed = yaml.safe_load(capsys.readouterr().out)
    assert echoed["run_conf"]["final_checkpoint_name"] == "checkpoint-final"
    assert echoed["training_args"]["learning_rate"] == 1e-4


def test_validate_reports_every_problem_with_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((CONFIGS / "sft.yaml").read_text())
    data["sft_args"]["max_seq_lenght"] = 10
    data["training_args"]["gradient_accumulation_steps"] = 2
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", "sft", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "sft_args.max_seq_lenght: unknown key 'max_seq_lenght'; did you mean 'max_seq_length'?" in err
    assert "training_args.gradient_accumulation_steps" in err
    assert "Traceback" not in err


def test_dpo_config_errors_exit_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((CONFIGS / "dpo.yaml").read_text())
    data["data_conf"]["training_data"]["data_type"] = "UnpairedPreference"  # needs loss_type kto
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["dpo", str(path)]) == EXIT_BAD_INPUT
    assert "loss_type: kto" in capsys.readouterr().err


def test_missing_config_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events-file", str(tmp_path / "e.jsonl"), "sft", str(tmp_path / "none.yaml")]) == EXIT_BAD_INPUT
    assert "config file not found" in capsys.readouterr().err
