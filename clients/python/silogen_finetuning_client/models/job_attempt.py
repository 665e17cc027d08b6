from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.resume_point import ResumePoint


T = TypeVar("T", bound="JobAttempt")


@_attrs_define
class JobAttempt:
    """One run of the job on a worker.

    Attributes:
        attempt (int): The claim's number (the job's `attempt` then).
        checkpoint (None | str | Unset): The checkpoint the run saved when it was stopped.
        ended_at (datetime.datetime | None | Unset):
        last_step (int | None | Unset): The last training step it logged, once it ended.
        lost_seconds (float | None | Unset): Wall-clock (GPU) seconds those lost steps took this run.
        lost_steps (int | None | Unset): Steps this run had done after the checkpoint a later run resumed from: done
            again, their values superseded in the metrics.
        outcome (str | Unset): running, succeeded, failed, cancelled, handed_back (its worker shut down: queued again,
            not counted against the attempt limit) or lost (its worker stopped answering). Default: 'running'.
        ray_restarts (int | None | Unset): A run on a Ray cluster: how many times Ray Train restarted its training group
            (a lost Ray worker or node) from the newest checkpoint.
        reason (None | str | Unset): e.g. worker_shutdown, worker_lost, or the error code.
        resumed_from (None | ResumePoint | Unset): The checkpoint this run continued from, if it continued one.
        started_at (datetime.datetime | None | Unset):
        worker (None | str | Unset): `<celery hostname>:<pool process pid>`.
    """

    attempt: int
    checkpoint: None | str | Unset = UNSET
    ended_at: datetime.datetime | None | Unset = UNSET
    last_step: int | None | Unset = UNSET
    lost_seconds: float | None | Unset = UNSET
    lost_steps: int | None | Unset = UNSET
    outcome: str | Unset = "running"
    ray_restarts: int | None | Unset = UNSET
    reason: None | str | Unset = UNSET
    resumed_from: None | ResumePoint | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    worker: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.resume_point import ResumePoint  # noqa: PLC0415

        attempt = self.attempt

        checkpoint: None | str | Unset
        if isinstance(self.checkpoint, Unset):
            checkpoint = UNSET
        else:
            checkpoint = self.checkpoint

        ended_at: None | str | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        elif isinstance(self.ended_at, datetime.datetime):
            ended_at = self.ended_at.isoformat()
        else:
            ended_at = self.ended_at

        last_step: int | None | Unset
        if isinstance(self.last_step, Unset):
            last_step = UNSET
        else:
            last_step = self.last_step

        lost_seconds: float | None | Unset
        if isinstance(self.lost_seconds, Unset):
            lost_seconds = UNSET
        else:
            lost_seconds = self.lost_seconds

        lost_steps: int | None | Unset
        if isinstance(self.lost_steps, Unset):
            lost_steps = UNSET
        else:
            lost_steps = self.lost_steps

        outcome = self.outcome

        ray_restarts: int | None | Unset
        if isinstance(self.ray_restarts, Unset):
            ray_restarts = UNSET
        else:
            ray_restarts = self.ray_restarts

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        resumed_from: dict[str, Any] | None | Unset
        if isinstance(self.resumed_from, Unset):
            resumed_from = UNSET
        elif isinstance(self.resumed_from, ResumePoint):
            resumed_from = self.resumed_from.to_dict()
        else:
            resumed_from = self.resumed_from

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        worker: None | str | Unset
        if isinstance(self.worker, Unset):
            worker = UNSET
        else:
            worker = self.worker

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
            }
        )
        if checkpoint is not UNSET:
            field_dict["checkpoint"] = checkpoint
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at
        if last_step is not UNSET:
            field_dict["last_step"] = last_step
        if lost_seconds is not UNSET:
            field_dict["lost_seconds"] = lost_seconds
        if lost_steps is not UNSET:
            field_dict["lost_steps"] = lost_steps
        if outcome is not UNSET:
            field_dict["outcome"] = outcome
        if ray_restarts is not UNSET:
            field_dict["ray_restarts"] = ray_restarts
        if reason is not UNSET:
            field_dict["reason"] = reason
        if resumed_from is not UNSET:
            field_dict["resumed_from"] = resumed_from
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if worker is not UNSET:
            field_dict["worker"] = worker

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.resume_point import ResumePoint  # noqa: PLC0415

        d = dict(src_dict)
        attempt = d.pop("attempt")

        def _parse_checkpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        checkpoint = _parse_checkpoint(d.pop("checkpoint", UNSET))

        def _parse_ended_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                ended_at_type_0 = datetime.datetime.fromisoformat(data)

                return ended_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        ended_at = _parse_ended_at(d.pop("ended_at", UNSET))

        def _parse_last_step(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        last_step = _parse_last_step(d.pop("last_step", UNSET))

        def _parse_lost_seconds(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        lost_seconds = _parse_lost_seconds(d.pop("lost_seconds", UNSET))

        def _parse_lost_steps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        lost_steps = _parse_lost_steps(d.pop("lost_steps", UNSET))

        outcome = d.pop("outcome", UNSET)

        def _parse_ray_restarts(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ray_restarts = _parse_ray_restarts(d.pop("ray_restarts", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        def _parse_resumed_from(data: object) -> None | ResumePoint | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                resumed_from_type_0 = ResumePoint.from_dict(data)

                return resumed_from_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ResumePoint | Unset, data)

        resumed_from = _parse_resumed_from(d.pop("resumed_from", UNSET))

        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)

                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))

        def _parse_worker(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        worker = _parse_worker(d.pop("worker", UNSET))

        job_attempt = cls(
            attempt=attempt,
            checkpoint=checkpoint,
            ended_at=ended_at,
            last_step=last_step,
            lost_seconds=lost_seconds,
            lost_steps=lost_steps,
            outcome=outcome,
            ray_restarts=ray_restarts,
            reason=reason,
            resumed_from=resumed_from,
            started_at=started_at,
            worker=worker,
        )

        job_attempt.additional_properties = d
        return job_attempt

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
