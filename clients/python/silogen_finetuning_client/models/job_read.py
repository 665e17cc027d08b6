from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.job_kind import JobKind, check_job_kind
from ..models.job_status import JobStatus, check_job_status
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.job_attempt import JobAttempt
    from ..models.job_error import JobError
    from ..models.job_links import JobLinks
    from ..models.job_progress import JobProgress
    from ..models.job_read_artifacts import JobReadArtifacts
    from ..models.job_read_config import JobReadConfig
    from ..models.job_read_inputs import JobReadInputs
    from ..models.job_read_labels import JobReadLabels
    from ..models.job_read_metrics import JobReadMetrics
    from ..models.job_read_resolved import JobReadResolved
    from ..models.lost_work import LostWork


T = TypeVar("T", bound="JobRead")


@_attrs_define
class JobRead:
    """
    Attributes:
        artifacts (JobReadArtifacts): Name -> path of what the job produced.
        attempt (int): How many times a worker has claimed the job.
        config (JobReadConfig): The config as submitted (validated).
        created_at (datetime.datetime):
        error (JobError | None):
        finished_at (datetime.datetime | None):
        id (str):
        inputs (JobReadInputs): Config path -> the earlier job output it was chained to.
        kind (JobKind):
        labels (JobReadLabels):
        metrics (JobReadMetrics): Final metrics.
        mlflow_run_id (None | str):
        name (None | str):
        phase (None | str): Finer progress beside the status: loading_model, training, saving, ...
        progress (JobProgress):
        queue (str):
        resolved (JobReadResolved): What runs: `config` (paths in force, outputs under the job's folder),
            `num_processes`, `training_config` (adapter conversion), `upgrades` (fields of the original engine's libraries
            that were read in today's spelling: `param`, `replacement`, `reason`), `rerun_of` (a rerun: the job whose
            manifest it reruns), `warnings` and, once running, `engine` (e.g. computed batch sizes).
        started_at (datetime.datetime | None):
        status (JobStatus):
        updated_at (datetime.datetime):
        attempts (list[JobAttempt] | Unset): Each run of the job, oldest first.
        links (JobLinks | Unset):
        lost_work (LostWork | Unset):
        not_before (datetime.datetime | None | Unset): A job requeued after its worker was lost waits until then (back-
            off).
    """

    artifacts: JobReadArtifacts
    attempt: int
    config: JobReadConfig
    created_at: datetime.datetime
    error: JobError | None
    finished_at: datetime.datetime | None
    id: str
    inputs: JobReadInputs
    kind: JobKind
    labels: JobReadLabels
    metrics: JobReadMetrics
    mlflow_run_id: None | str
    name: None | str
    phase: None | str
    progress: JobProgress
    queue: str
    resolved: JobReadResolved
    started_at: datetime.datetime | None
    status: JobStatus
    updated_at: datetime.datetime
    attempts: list[JobAttempt] | Unset = UNSET
    links: JobLinks | Unset = UNSET
    lost_work: LostWork | Unset = UNSET
    not_before: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.job_error import JobError  # noqa: PLC0415

        artifacts = self.artifacts.to_dict()

        attempt = self.attempt

        config = self.config.to_dict()

        created_at = self.created_at.isoformat()

        error: dict[str, Any] | None
        if isinstance(self.error, JobError):
            error = self.error.to_dict()
        else:
            error = self.error

        finished_at: None | str
        if isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        id = self.id

        inputs = self.inputs.to_dict()

        kind: str = self.kind

        labels = self.labels.to_dict()

        metrics = self.metrics.to_dict()

        mlflow_run_id: None | str
        mlflow_run_id = self.mlflow_run_id

        name: None | str
        name = self.name

        phase: None | str
        phase = self.phase

        progress = self.progress.to_dict()

        queue = self.queue

        resolved = self.resolved.to_dict()

        started_at: None | str
        if isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        status: str = self.status

        updated_at = self.updated_at.isoformat()

        attempts: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.attempts, Unset):
            attempts = []
            for attempts_item_data in self.attempts:
                attempts_item = attempts_item_data.to_dict()
                attempts.append(attempts_item)

        links: dict[str, Any] | Unset = UNSET
        if not isinstance(self.links, Unset):
            links = self.links.to_dict()

        lost_work: dict[str, Any] | Unset = UNSET
        if not isinstance(self.lost_work, Unset):
            lost_work = self.lost_work.to_dict()

        not_before: None | str | Unset
        if isinstance(self.not_before, Unset):
            not_before = UNSET
        elif isinstance(self.not_before, datetime.datetime):
            not_before = self.not_before.isoformat()
        else:
            not_before = self.not_before

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "artifacts": artifacts,
                "attempt": attempt,
                "config": config,
                "created_at": created_at,
                "error": error,
                "finished_at": finished_at,
                "id": id,
                "inputs": inputs,
                "kind": kind,
                "labels": labels,
                "metrics": metrics,
                "mlflow_run_id": mlflow_run_id,
                "name": name,
                "phase": phase,
                "progress": progress,
                "queue": queue,
                "resolved": resolved,
                "started_at": started_at,
                "status": status,
                "updated_at": updated_at,
            }
        )
        if attempts is not UNSET:
            field_dict["attempts"] = attempts
        if links is not UNSET:
            field_dict["links"] = links
        if lost_work is not UNSET:
            field_dict["lost_work"] = lost_work
        if not_before is not UNSET:
            field_dict["not_before"] = not_before

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_attempt import JobAttempt  # noqa: PLC0415
        from ..models.job_error import JobError  # noqa: PLC0415
        from ..models.job_links import JobLinks  # noqa: PLC0415
        from ..models.job_progress import JobProgress  # noqa: PLC0415
        from ..models.job_read_artifacts import JobReadArtifacts  # noqa: PLC0415
        from ..models.job_read_config import JobReadConfig  # noqa: PLC0415
        from ..models.job_read_inputs import JobReadInputs  # noqa: PLC0415
        from ..models.job_read_labels import JobReadLabels  # noqa: PLC0415
        from ..models.job_read_metrics import JobReadMetrics  # noqa: PLC0415
        from ..models.job_read_resolved import JobReadResolved  # noqa: PLC0415
        from ..models.lost_work import LostWork  # noqa: PLC0415

        d = dict(src_dict)
        artifacts = JobReadArtifacts.from_dict(d.pop("artifacts"))

        attempt = d.pop("attempt")

        config = JobReadConfig.from_dict(d.pop("config"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        def _parse_error(data: object) -> JobError | None:
            if data is None:
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                error_type_0 = JobError.from_dict(data)

                return error_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(JobError | None, data)

        error = _parse_error(d.pop("error"))

        def _parse_finished_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        finished_at = _parse_finished_at(d.pop("finished_at"))

        id = d.pop("id")

        inputs = JobReadInputs.from_dict(d.pop("inputs"))

        kind = check_job_kind(d.pop("kind"))

        labels = JobReadLabels.from_dict(d.pop("labels"))

        metrics = JobReadMetrics.from_dict(d.pop("metrics"))

        def _parse_mlflow_run_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        mlflow_run_id = _parse_mlflow_run_id(d.pop("mlflow_run_id"))

        def _parse_name(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        name = _parse_name(d.pop("name"))

        def _parse_phase(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        phase = _parse_phase(d.pop("phase"))

        progress = JobProgress.from_dict(d.pop("progress"))

        queue = d.pop("queue")

        resolved = JobReadResolved.from_dict(d.pop("resolved"))

        def _parse_started_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)

                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        started_at = _parse_started_at(d.pop("started_at"))

        status = check_job_status(d.pop("status"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        _attempts = d.pop("attempts", UNSET)
        attempts: list[JobAttempt] | Unset = UNSET
        if _attempts is not UNSET:
            attempts = []
            for attempts_item_data in _attempts:
                attempts_item = JobAttempt.from_dict(attempts_item_data)

                attempts.append(attempts_item)

        _links = d.pop("links", UNSET)
        links: JobLinks | Unset
        if isinstance(_links, Unset):
            links = UNSET
        else:
            links = JobLinks.from_dict(_links)

        _lost_work = d.pop("lost_work", UNSET)
        lost_work: LostWork | Unset
        if isinstance(_lost_work, Unset):
            lost_work = UNSET
        else:
            lost_work = LostWork.from_dict(_lost_work)

        def _parse_not_before(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                not_before_type_0 = datetime.datetime.fromisoformat(data)

                return not_before_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        not_before = _parse_not_before(d.pop("not_before", UNSET))

        job_read = cls(
            artifacts=artifacts,
            attempt=attempt,
            config=config,
            created_at=created_at,
            error=error,
            finished_at=finished_at,
            id=id,
            inputs=inputs,
            kind=kind,
            labels=labels,
            metrics=metrics,
            mlflow_run_id=mlflow_run_id,
            name=name,
            phase=phase,
            progress=progress,
            queue=queue,
            resolved=resolved,
            started_at=started_at,
            status=status,
            updated_at=updated_at,
            attempts=attempts,
            links=links,
            lost_work=lost_work,
            not_before=not_before,
        )

        job_read.additional_properties = d
        return job_read

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
