"""The shared YAML loader: the CLI refuses an alias bomb as the API does, and reads ordinary configs unchanged."""

import time
from pathlib import Path

import pytest
import yaml

from finetuning.cli import EXIT_BAD_INPUT, EXIT_OK, main
from finetuning.config import ConfigError, SFTConfig
from finetuning.config.safe_yaml import YAMLExpansionError, check_expanded_size, safe_load

CONFIGS = Path(__file__).parents[1] / "assets" / "configs"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``width ** levels`` values (387 million by default) in a few hundred bytes."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for previous, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_cli_refuses_an_alias_bomb_quickly_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    started = time.monotonic()
    assert main(["validate", "sft", str(path)]) == EXIT_BAD_INPUT
    assert time.monotonic() - started < 5  # measured, not expanded
    err = capsys.readouterr().err
    assert f"{path} is refused: it expands to more than 200000 values through its anchors and aliases" in err
    assert "Traceback" not in err


def test_cli_reads_a_normal_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "sft", str(CONFIGS / "sft.yaml")]) == EXIT_OK
    assert yaml.safe_load(capsys.readouterr().out)["sft_args"]["max_seq_length"] == 1024


def test_a_config_may_use_a_few_aliases() -> None:
    text = (CONFIGS / "sft.yaml").read_text().replace(
        "target_modules: [q_proj, v_proj]", "target_modules: &modules [q_proj, v_proj]"
    ) + "x_shared: *modules\n"
    # the alias resolves to the same list; the unknown top-level key is the only complaint
    with pytest.raises(ConfigError) as caught:
        SFTConfig.from_yaml(text)
    assert [issue.loc for issue in caught.value.issues] == ["x_shared"]


def test_a_self_referring_document_is_refused() -> None:
    with pytest.raises(ConfigError, match="contains itself"):
        SFTConfig.from_yaml("data_conf: &a {x: *a}\n")
    with pytest.raises(YAMLExpansionError, match="contains itself"):
        safe_load("a: &a [1, *a]\n")


def test_expanded_size_counts_each_alias_where_it_is_used() -> None:
    assert check_expanded_size(safe_load("a: &a [1, 2]\nb: [*a, *a]\n")) == 1 + 3 + 1 + 3 + 3
    assert check_expanded_size(safe_load(alias_bomb(levels=3, width=3)), max_values=100) == 1 + 4 + 13 + 40
    with pytest.raises(YAMLExpansionError):
        safe_load(alias_bomb(levels=3, width=3), max_values=57)
    assert check_expanded_size("scalar") == 1


def test_deep_nesting_is_measured_without_recursion() -> None:
    # deeper than Python's recursion limit: the walk must not recurse (a ruamel document can be this deep)
    nested: list[object] = []
    for _ in range(5000):
        nested = [nested]
    assert check_expanded_size(nested) == 5001
