"""The job-state transitions: each says the same status in its row values and its event, and the attempt comes
first in every event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobcore import transitions
from jobcore.models import JobStatus

NOW = datetime(2026, 12, 5, tzinfo=UTC)

ALL = {
    "submitted": transitions.submitted(),
    "claimed": transitions.claimed("w@host:1", NOW, 30),
    "succeeded": transitions.finished(JobStatus.SUCCEEDED, NOW, artifacts={"mlflow_run_id": "r" * 100}),
    "failed": transitions.finished(JobStatus.FAILED, NOW, error={"code": "x", "message": "m", "param": None}),
    "handed_back": transitions.handed_back(NOW, {"model": "/m"}, "/o/checkpoint-3", cancelled=False),
    "handed_back_cancelled": transitions.handed_back(NOW, {}, None, cancelled=True),
    "lost_requeued": transitions.lost_requeued(NOW, 4.0, NOW),
    "lost_failed": transitions.lost_failed(NOW, 3),
    "lost_cancelled": transitions.lost_cancelled(NOW),
    "cancelled_while_queued": transitions.cancelled_while_queued(NOW, "/o/checkpoint-3"),
    "cancel_requested": transitions.cancel_requested(save_checkpoint=True),
    "resumed": transitions.resumed(2, {"model": "/m"}, "/o/checkpoint-3"),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_row_and_the_event_tell_the_same_status(name: str) -> None:
    transition = ALL[name]
    event = transition.event_for(7)
    assert list(event)[:2] == ["status", "attempt"]
    assert event["attempt"] == 7
    assert JobStatus(event["status"]).value == transition.values["status"]
    if transition.entry is not None and JobStatus(event["status"]).terminal:
        assert transition.stamp == "ended_at"


def test_what_each_transition_keeps() -> None:
    assert ALL["succeeded"].values["mlflow_run_id"] == "r" * 64
    assert ALL["handed_back"].values["artifacts"] == {"model": "/m", "checkpoint": "/o/checkpoint-3"}
    assert ALL["resumed"].values["uncounted_attempts"] == 2  # a fresh max_attempts budget
    assert ALL["resumed"].values["artifacts"]["checkpoint"] == "/o/checkpoint-3"
    assert ALL["lost_failed"].values["error"]["code"] == "worker_lost"
    assert ALL["cancel_requested"].event == {"status": "cancel_requested", "save_checkpoint": True}
    assert "save_checkpoint" not in transitions.cancel_requested(save_checkpoint=False).event
    with pytest.raises(ValueError, match="terminal"):
        transitions.finished(JobStatus.RUNNING, NOW)
