from pathlib import Path

import pytest

from finetuning.checkpoints import resolve_resume
from finetuning.contract import checkpoint_step, last_complete_checkpoint
from finetuning.errors import FinetuningError


def test_auto_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    assert resolve_resume("auto", tmp_path / "missing") is False
    assert resolve_resume("auto", tmp_path) is False


def _checkpoint(folder: Path, step: int, *, weights: bool = True, state: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir()
    if weights:
        (path / "adapter_model.safetensors").write_bytes(b"")
    if state:
        (path / "trainer_state.json").write_text("{}")
    return path


def test_auto_picks_the_last_checkpoint(tmp_path: Path) -> None:
    for step in (5, 20, 100, 10):
        _checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-900-old").mkdir()  # not a checkpoint name
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-100")  # by number, not by name


def test_a_checkpoint_cut_off_while_saving_is_skipped(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, state=False)  # killed after the weights, before the trainer state
    _checkpoint(tmp_path, 30, weights=False, state=False)  # killed at once
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(True, tmp_path) == str(tmp_path / "checkpoint-10")


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


def test_the_api_resumes_from_the_checkpoint_the_engine_will(tmp_path: Path) -> None:
    """One rule for both: a folder with the trainer state but no weights (cut off while saving) is skipped by the
    API's resume as by the engine's, so the resume announces the checkpoint the run really continues from."""
    from api.services import _newest_checkpoint
    from jobcore.models import Job

    output = tmp_path / "out"
    output.mkdir()
    _checkpoint(output, 10)
    _checkpoint(output, 20, weights=False)
    job = Job(resolved={"config": {"training_args": {"output_dir": str(output)}}}, artifacts={})
    assert _newest_checkpoint(job) == str(output / "checkpoint-10")
    assert resolve_resume("auto", output) == str(output / "checkpoint-10")


def test_the_newest_complete_checkpoint_over_several_folders(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _checkpoint(first, 30)
    _checkpoint(second, 20)
    _checkpoint(second, 40, state=False)
    (second / "checkpoint-50").write_text("")  # a file with a checkpoint's name
    assert last_complete_checkpoint(first, second, tmp_path / "missing") == first / "checkpoint-30"
    assert checkpoint_step(Path("/x/checkpoint-7")) == 7
    assert checkpoint_step(Path("/x/checkpoint-7-old")) is None
