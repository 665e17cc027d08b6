from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.superseded_series_eval import SupersededSeriesEval
    from ..models.superseded_series_train import SupersededSeriesTrain


T = TypeVar("T", bound="SupersededSeries")


@_attrs_define
class SupersededSeries:
    """
    Attributes:
        eval_ (SupersededSeriesEval | Unset):
        train (SupersededSeriesTrain | Unset):
    """

    eval_: SupersededSeriesEval | Unset = UNSET
    train: SupersededSeriesTrain | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        eval_: dict[str, Any] | Unset = UNSET
        if not isinstance(self.eval_, Unset):
            eval_ = self.eval_.to_dict()

        train: dict[str, Any] | Unset = UNSET
        if not isinstance(self.train, Unset):
            train = self.train.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if eval_ is not UNSET:
            field_dict["eval"] = eval_
        if train is not UNSET:
            field_dict["train"] = train

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.superseded_series_eval import SupersededSeriesEval  # noqa: PLC0415
        from ..models.superseded_series_train import SupersededSeriesTrain  # noqa: PLC0415

        d = dict(src_dict)
        _eval_ = d.pop("eval", UNSET)
        eval_: SupersededSeriesEval | Unset
        if isinstance(_eval_, Unset):
            eval_ = UNSET
        else:
            eval_ = SupersededSeriesEval.from_dict(_eval_)

        _train = d.pop("train", UNSET)
        train: SupersededSeriesTrain | Unset
        if isinstance(_train, Unset):
            train = UNSET
        else:
            train = SupersededSeriesTrain.from_dict(_train)

        superseded_series = cls(
            eval_=eval_,
            train=train,
        )

        superseded_series.additional_properties = d
        return superseded_series

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
