from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.merge_request_device_map import MergeRequestDeviceMap


T = TypeVar("T", bound="MergeRequest")


@_attrs_define
class MergeRequest:
    """Merge an adapter into its base model (``merge_adapter``).

    Attributes:
        adapter (str): Adapter folder or job:<id> of the training job that made it.
        base_model (str): Base model folder, hub id, or job:<id>/new_basemodel.
        device_map (MergeRequestDeviceMap | str | Unset): auto, cpu, cuda or a device map. Default: 'auto'.
        tokenizer (None | str | Unset): Defaults to the adapter's tokenizer.
    """

    adapter: str
    base_model: str
    device_map: MergeRequestDeviceMap | str | Unset = "auto"
    tokenizer: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.merge_request_device_map import MergeRequestDeviceMap  # noqa: PLC0415

        adapter = self.adapter

        base_model = self.base_model

        device_map: dict[str, Any] | str | Unset
        if isinstance(self.device_map, Unset):
            device_map = UNSET
        elif isinstance(self.device_map, MergeRequestDeviceMap):
            device_map = self.device_map.to_dict()
        else:
            device_map = self.device_map

        tokenizer: None | str | Unset
        if isinstance(self.tokenizer, Unset):
            tokenizer = UNSET
        else:
            tokenizer = self.tokenizer

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "adapter": adapter,
                "base_model": base_model,
            }
        )
        if device_map is not UNSET:
            field_dict["device_map"] = device_map
        if tokenizer is not UNSET:
            field_dict["tokenizer"] = tokenizer

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.merge_request_device_map import MergeRequestDeviceMap  # noqa: PLC0415

        d = dict(src_dict)
        adapter = d.pop("adapter")

        base_model = d.pop("base_model")

        def _parse_device_map(data: object) -> MergeRequestDeviceMap | str | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                device_map_device_map = MergeRequestDeviceMap.from_dict(data)

                return device_map_device_map
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(MergeRequestDeviceMap | str | Unset, data)

        device_map = _parse_device_map(d.pop("device_map", UNSET))

        def _parse_tokenizer(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tokenizer = _parse_tokenizer(d.pop("tokenizer", UNSET))

        merge_request = cls(
            adapter=adapter,
            base_model=base_model,
            device_map=device_map,
            tokenizer=tokenizer,
        )

        return merge_request
