from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.checkpoint_read_metrics import CheckpointReadMetrics


T = TypeVar("T", bound="CheckpointRead")


@_attrs_define
class CheckpointRead:
    """
    Attributes:
        complete (bool): Saved to the end (weights and trainer state; in a bucket: every file uploaded). Only a complete
            checkpoint is resumed from or used by another job.
        created_at (datetime.datetime | None):
        location (str): Its folder, or its s3:// prefix.
        metrics (CheckpointReadMetrics): The train metrics logged at its step (`train`) and the evaluation at its step
            (`eval`), if any.
        name (str): checkpoint-<step>; `job:<id>/checkpoint-<step>` names it in another job's config.
        size_bytes (int):
        step (int):
    """

    complete: bool
    created_at: datetime.datetime | None
    location: str
    metrics: CheckpointReadMetrics
    name: str
    size_bytes: int
    step: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        complete = self.complete

        created_at: None | str
        if isinstance(self.created_at, datetime.datetime):
            created_at = self.created_at.isoformat()
        else:
            created_at = self.created_at

        location = self.location

        metrics = self.metrics.to_dict()

        name = self.name

        size_bytes = self.size_bytes

        step = self.step

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "complete": complete,
                "created_at": created_at,
                "location": location,
                "metrics": metrics,
                "name": name,
                "size_bytes": size_bytes,
                "step": step,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.checkpoint_read_metrics import CheckpointReadMetrics  # noqa: PLC0415

        d = dict(src_dict)
        complete = d.pop("complete")

        def _parse_created_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                created_at_type_0 = datetime.datetime.fromisoformat(data)

                return created_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        created_at = _parse_created_at(d.pop("created_at"))

        location = d.pop("location")

        metrics = CheckpointReadMetrics.from_dict(d.pop("metrics"))

        name = d.pop("name")

        size_bytes = d.pop("size_bytes")

        step = d.pop("step")

        checkpoint_read = cls(
            complete=complete,
            created_at=created_at,
            location=location,
            metrics=metrics,
            name=name,
            size_bytes=size_bytes,
            step=step,
        )

        checkpoint_read.additional_properties = d
        return checkpoint_read

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
