from pathlib import Path

import pytest

from finetuning.errors import FinetuningError
from finetuning.runtime import resolve_resume


def test_auto_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    assert resolve_resume("auto", tmp_path / "missing") is False
    assert resolve_resume("auto", tmp_path) is False


def test_auto_picks_the_last_checkpoint(tmp_path: Path) -> None:
    for step in (5, 20, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-20")


def test_true_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FinetuningError) as caught:
        resolve_resume(True, tmp_path)
    assert caught.value.param == "run_conf.resume_from_checkpoint"


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FinetuningError, match="no checkpoint folder"):
        resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path)
    (tmp_path / "checkpoint-3").mkdir()
    assert resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path) == str(tmp_path / "checkpoint-3")
    assert resolve_resume(False, tmp_path) is False
