from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.job_metrics_eval import JobMetricsEval
    from ..models.job_metrics_summary import JobMetricsSummary
    from ..models.job_metrics_train import JobMetricsTrain
    from ..models.superseded_series import SupersededSeries


T = TypeVar("T", bound="JobMetrics")


@_attrs_define
class JobMetrics:
    """
    Attributes:
        eval_ (JobMetricsEval): Per evaluation: loss, runtime, ...; the same way.
        summary (JobMetricsSummary): The trainer's end-of-training summary (train_runtime, train_loss).
        train (JobMetricsTrain): Per logging step: loss, learning_rate, grad_norm, ...; each step once, from the run
            that carried the job on (a run that resumed a checkpoint supersedes what an earlier run logged after it).
        superseded (None | SupersededSeries | Unset): With include_superseded=true: the points earlier runs logged after
            the checkpoint a later run resumed from (the lost timeline), each with its attempt.
        through_event_id (int | Unset): The job's newest event when the series was read: follow the stream from here
            (`after`) to extend the series without reading its history again. Default: 0.
    """

    eval_: JobMetricsEval
    summary: JobMetricsSummary
    train: JobMetricsTrain
    superseded: None | SupersededSeries | Unset = UNSET
    through_event_id: int | Unset = 0
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.superseded_series import SupersededSeries  # noqa: PLC0415

        eval_ = self.eval_.to_dict()

        summary = self.summary.to_dict()

        train = self.train.to_dict()

        superseded: dict[str, Any] | None | Unset
        if isinstance(self.superseded, Unset):
            superseded = UNSET
        elif isinstance(self.superseded, SupersededSeries):
            superseded = self.superseded.to_dict()
        else:
            superseded = self.superseded

        through_event_id = self.through_event_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "eval": eval_,
                "summary": summary,
                "train": train,
            }
        )
        if superseded is not UNSET:
            field_dict["superseded"] = superseded
        if through_event_id is not UNSET:
            field_dict["through_event_id"] = through_event_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_metrics_eval import JobMetricsEval  # noqa: PLC0415
        from ..models.job_metrics_summary import JobMetricsSummary  # noqa: PLC0415
        from ..models.job_metrics_train import JobMetricsTrain  # noqa: PLC0415
        from ..models.superseded_series import SupersededSeries  # noqa: PLC0415

        d = dict(src_dict)
        eval_ = JobMetricsEval.from_dict(d.pop("eval"))

        summary = JobMetricsSummary.from_dict(d.pop("summary"))

        train = JobMetricsTrain.from_dict(d.pop("train"))

        def _parse_superseded(data: object) -> None | SupersededSeries | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                superseded_type_0 = SupersededSeries.from_dict(data)

                return superseded_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SupersededSeries | Unset, data)

        superseded = _parse_superseded(d.pop("superseded", UNSET))

        through_event_id = d.pop("through_event_id", UNSET)

        job_metrics = cls(
            eval_=eval_,
            summary=summary,
            train=train,
            superseded=superseded,
            through_event_id=through_event_id,
        )

        job_metrics.additional_properties = d
        return job_metrics

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
