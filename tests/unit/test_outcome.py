"""The job's outcome from the engine's final status, its return code and the stop it was asked for: no process."""

from __future__ import annotations

import signal

import pytest

from finetuning.contract import EXIT_STOPPED, OOM_REMEDY
from jobcore.models import JobStatus
from worker.outcome import MAX_MESSAGE_CHARS, decide


def status(value: str, **fields: object) -> dict[str, object]:
    return {"v": 1, "type": "status", "status": value, **fields}


def test_a_reported_success_carries_its_artifacts_and_metrics() -> None:
    outcome = decide(status("succeeded", artifacts={"model": "/m"}, metrics={"loss": 1.0}), 0)
    assert (outcome.status, outcome.artifacts, outcome.metrics, outcome.error) == (
        JobStatus.SUCCEEDED,
        {"model": "/m"},
        {"loss": 1.0},
        None,
    )


def test_a_reported_failure_keeps_the_engines_error_and_one_without_gets_one() -> None:
    error = {"code": "invalid_data", "message": "row 3", "param": None}
    assert decide(status("failed", error=error), 2).error == error
    missing = decide(status("failed"), 1)
    assert missing.status == JobStatus.FAILED
    assert missing.error is not None
    assert missing.error["code"] == "internal_error"
    assert "exit 1" in missing.error["message"]


def test_an_unknown_reported_status_is_a_failure() -> None:
    assert decide(status("exploded"), 0).status == JobStatus.FAILED
    assert decide({"type": "status", "status": {"nested": 1}}, 0).status == JobStatus.FAILED


def test_a_shutdown_hands_the_job_back_with_its_checkpoint_unless_it_finished() -> None:
    stopped = decide(status("cancelled", checkpoint="/out/checkpoint-7"), EXIT_STOPPED, stop_reason="shutdown")
    assert (stopped.status, stopped.hand_back, stopped.checkpoint) == (JobStatus.QUEUED, True, "/out/checkpoint-7")
    killed = decide(None, -signal.SIGKILL, stop_reason="shutdown")
    assert killed.hand_back
    assert killed.checkpoint is None
    finished = decide(status("succeeded"), 0, stop_reason="shutdown")  # it finished before the stop mattered
    assert finished.status == JobStatus.SUCCEEDED
    assert not finished.hand_back


def test_a_cancel_ends_cancelled_with_the_checkpoint_it_saved() -> None:
    with_checkpoint = decide(
        status("cancelled", checkpoint="/out/checkpoint-3"), EXIT_STOPPED, stop_reason="cancel", cancelled=True
    )
    assert (with_checkpoint.status, with_checkpoint.checkpoint) == (JobStatus.CANCELLED, "/out/checkpoint-3")
    terminated = decide(None, -signal.SIGTERM, cancelled=True)
    assert (terminated.status, terminated.checkpoint, terminated.exit_code) == (JobStatus.CANCELLED, None, -15)
    # a failure the cancel caused (a non-zero exit after its status) is still the cancel
    assert decide(status("failed"), 1, cancelled=True).status == JobStatus.CANCELLED


@pytest.mark.parametrize("returncode", [-signal.SIGKILL, 128 + signal.SIGKILL])
def test_a_kill_nobody_asked_for_reads_as_the_out_of_memory_killer(returncode: int) -> None:
    outcome = decide(None, returncode, stderr_tail="loading shards")
    assert outcome.error is not None
    assert outcome.error["code"] == "out_of_memory"
    assert OOM_REMEDY[1:40] in outcome.error["message"]
    assert outcome.error["message"].endswith("loading shards")


def test_a_crash_names_how_it_ended_and_keeps_the_end_of_stderr_within_the_limit() -> None:
    outcome = decide(None, -signal.SIGSEGV, stderr_tail="x" * 10_000 + "the last line")
    assert outcome.error is not None
    assert outcome.error["code"] == "engine_crashed"
    assert "killed by SIGSEGV" in outcome.error["message"]
    assert outcome.error["message"].endswith("the last line")
    assert len(outcome.error["message"]) <= MAX_MESSAGE_CHARS
    assert "exited with 3" in str(decide(None, 3).error)
