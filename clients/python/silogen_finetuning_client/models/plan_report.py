from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.plan_problems import PlanProblems
    from ..models.plan_report_data import PlanReportData
    from ..models.plan_report_memory import PlanReportMemory
    from ..models.plan_report_model import PlanReportModel
    from ..models.plan_report_resolved import PlanReportResolved
    from ..models.plan_report_statistics import PlanReportStatistics
    from ..models.plan_report_steps import PlanReportSteps
    from ..models.plan_report_time import PlanReportTime


T = TypeVar("T", bound="PlanReport")


@_attrs_define
class PlanReport:
    """A pre-flight plan (``dry_run=true``, ``finetuning plan``): what the run would do, measured on its data with its
    own tokenizer, template, masking, filtering and packing. See docs/plan.md for every field.

        Attributes:
            data (PlanReportData): The files read, and whether counts are extrapolated from a sample.
            elapsed_s (float):
            kind (str):
            memory (PlanReportMemory): Bytes per device by kind, and a verdict per GPU.
            model (PlanReportModel):
            plan_version (int):
            problems (PlanProblems):
            resolved (PlanReportResolved): Batch sizes, accumulation and learning rate, as the run resolves them.
            statistics (PlanReportStatistics): train (and validation): rows, tokens, mean/p50/p95/max length, truncated,
                filtered, loss tokens and their share; packing: rows and efficiency (null unpacked).
            steps (PlanReportSteps): Rows per epoch, steps per epoch, total optimizer steps.
            time (PlanReportTime): FLOPs and durations: the CPU's from a measured throughput, each GPU's from an ASSUMED
                MFU.
            verdicts (list[str]): What would stop or spoil the run, in words.
    """

    data: PlanReportData
    elapsed_s: float
    kind: str
    memory: PlanReportMemory
    model: PlanReportModel
    plan_version: int
    problems: PlanProblems
    resolved: PlanReportResolved
    statistics: PlanReportStatistics
    steps: PlanReportSteps
    time: PlanReportTime
    verdicts: list[str]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = self.data.to_dict()

        elapsed_s = self.elapsed_s

        kind = self.kind

        memory = self.memory.to_dict()

        model = self.model.to_dict()

        plan_version = self.plan_version

        problems = self.problems.to_dict()

        resolved = self.resolved.to_dict()

        statistics = self.statistics.to_dict()

        steps = self.steps.to_dict()

        time = self.time.to_dict()

        verdicts = self.verdicts

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "data": data,
                "elapsed_s": elapsed_s,
                "kind": kind,
                "memory": memory,
                "model": model,
                "plan_version": plan_version,
                "problems": problems,
                "resolved": resolved,
                "statistics": statistics,
                "steps": steps,
                "time": time,
                "verdicts": verdicts,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_problems import PlanProblems  # noqa: PLC0415
        from ..models.plan_report_data import PlanReportData  # noqa: PLC0415
        from ..models.plan_report_memory import PlanReportMemory  # noqa: PLC0415
        from ..models.plan_report_model import PlanReportModel  # noqa: PLC0415
        from ..models.plan_report_resolved import PlanReportResolved  # noqa: PLC0415
        from ..models.plan_report_statistics import PlanReportStatistics  # noqa: PLC0415
        from ..models.plan_report_steps import PlanReportSteps  # noqa: PLC0415
        from ..models.plan_report_time import PlanReportTime  # noqa: PLC0415

        d = dict(src_dict)
        data = PlanReportData.from_dict(d.pop("data"))

        elapsed_s = d.pop("elapsed_s")

        kind = d.pop("kind")

        memory = PlanReportMemory.from_dict(d.pop("memory"))

        model = PlanReportModel.from_dict(d.pop("model"))

        plan_version = d.pop("plan_version")

        problems = PlanProblems.from_dict(d.pop("problems"))

        resolved = PlanReportResolved.from_dict(d.pop("resolved"))

        statistics = PlanReportStatistics.from_dict(d.pop("statistics"))

        steps = PlanReportSteps.from_dict(d.pop("steps"))

        time = PlanReportTime.from_dict(d.pop("time"))

        verdicts = cast(list[str], d.pop("verdicts"))

        plan_report = cls(
            data=data,
            elapsed_s=elapsed_s,
            kind=kind,
            memory=memory,
            model=model,
            plan_version=plan_version,
            problems=problems,
            resolved=resolved,
            statistics=statistics,
            steps=steps,
            time=time,
            verdicts=verdicts,
        )

        plan_report.additional_properties = d
        return plan_report

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
