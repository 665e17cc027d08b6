from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.job_metrics_eval import JobMetricsEval
    from ..models.job_metrics_summary import JobMetricsSummary
    from ..models.job_metrics_train import JobMetricsTrain


T = TypeVar("T", bound="JobMetrics")


@_attrs_define
class JobMetrics:
    """
    Attributes:
        eval_ (JobMetricsEval): Per evaluation: loss, runtime, ...
        summary (JobMetricsSummary): The trainer's end-of-training summary (train_runtime, train_loss).
        train (JobMetricsTrain): Per logging step: loss, learning_rate, grad_norm, ...
    """

    eval_: JobMetricsEval
    summary: JobMetricsSummary
    train: JobMetricsTrain
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        eval_ = self.eval_.to_dict()

        summary = self.summary.to_dict()

        train = self.train.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "eval": eval_,
                "summary": summary,
                "train": train,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_metrics_eval import JobMetricsEval  # noqa: PLC0415
        from ..models.job_metrics_summary import JobMetricsSummary  # noqa: PLC0415
        from ..models.job_metrics_train import JobMetricsTrain  # noqa: PLC0415

        d = dict(src_dict)
        eval_ = JobMetricsEval.from_dict(d.pop("eval"))

        summary = JobMetricsSummary.from_dict(d.pop("summary"))

        train = JobMetricsTrain.from_dict(d.pop("train"))

        job_metrics = cls(
            eval_=eval_,
            summary=summary,
            train=train,
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
