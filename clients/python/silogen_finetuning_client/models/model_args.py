from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.model_args_device_map import ModelArgsDeviceMap
    from ..models.model_args_max_memory import ModelArgsMaxMemory
    from ..models.model_args_tp_plan import ModelArgsTpPlan


T = TypeVar("T", bound="ModelArgs")


@_attrs_define
class ModelArgs:
    """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``; other keys pass through unchanged.

    Attributes:
        attn_implementation (None | str | Unset):
        cache_dir (None | str | Unset):
        device_map (ModelArgsDeviceMap | None | str | Unset):
        dtype (None | str | Unset): "auto" or a torch dtype name such as "bfloat16".
        local_files_only (bool | None | Unset):
        max_memory (ModelArgsMaxMemory | None | Unset):
        offload_folder (None | str | Unset):
        revision (None | str | Unset):
        subfolder (None | str | Unset):
        token (bool | None | str | Unset):
        tp_plan (ModelArgsTpPlan | None | str | Unset):
        trust_remote_code (bool | Unset): Run the model repository's own Python code. Off unless you trust the source.
            Default: False.
        variant (None | str | Unset):
    """

    attn_implementation: None | str | Unset = UNSET
    cache_dir: None | str | Unset = UNSET
    device_map: ModelArgsDeviceMap | None | str | Unset = UNSET
    dtype: None | str | Unset = UNSET
    local_files_only: bool | None | Unset = UNSET
    max_memory: ModelArgsMaxMemory | None | Unset = UNSET
    offload_folder: None | str | Unset = UNSET
    revision: None | str | Unset = UNSET
    subfolder: None | str | Unset = UNSET
    token: bool | None | str | Unset = UNSET
    tp_plan: ModelArgsTpPlan | None | str | Unset = UNSET
    trust_remote_code: bool | Unset = False
    variant: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.model_args_device_map import ModelArgsDeviceMap  # noqa: PLC0415
        from ..models.model_args_max_memory import ModelArgsMaxMemory  # noqa: PLC0415
        from ..models.model_args_tp_plan import ModelArgsTpPlan  # noqa: PLC0415

        attn_implementation: None | str | Unset
        if isinstance(self.attn_implementation, Unset):
            attn_implementation = UNSET
        else:
            attn_implementation = self.attn_implementation

        cache_dir: None | str | Unset
        if isinstance(self.cache_dir, Unset):
            cache_dir = UNSET
        else:
            cache_dir = self.cache_dir

        device_map: dict[str, Any] | None | str | Unset
        if isinstance(self.device_map, Unset):
            device_map = UNSET
        elif isinstance(self.device_map, ModelArgsDeviceMap):
            device_map = self.device_map.to_dict()
        else:
            device_map = self.device_map

        dtype: None | str | Unset
        if isinstance(self.dtype, Unset):
            dtype = UNSET
        else:
            dtype = self.dtype

        local_files_only: bool | None | Unset
        if isinstance(self.local_files_only, Unset):
            local_files_only = UNSET
        else:
            local_files_only = self.local_files_only

        max_memory: dict[str, Any] | None | Unset
        if isinstance(self.max_memory, Unset):
            max_memory = UNSET
        elif isinstance(self.max_memory, ModelArgsMaxMemory):
            max_memory = self.max_memory.to_dict()
        else:
            max_memory = self.max_memory

        offload_folder: None | str | Unset
        if isinstance(self.offload_folder, Unset):
            offload_folder = UNSET
        else:
            offload_folder = self.offload_folder

        revision: None | str | Unset
        if isinstance(self.revision, Unset):
            revision = UNSET
        else:
            revision = self.revision

        subfolder: None | str | Unset
        if isinstance(self.subfolder, Unset):
            subfolder = UNSET
        else:
            subfolder = self.subfolder

        token: bool | None | str | Unset
        if isinstance(self.token, Unset):
            token = UNSET
        else:
            token = self.token

        tp_plan: dict[str, Any] | None | str | Unset
        if isinstance(self.tp_plan, Unset):
            tp_plan = UNSET
        elif isinstance(self.tp_plan, ModelArgsTpPlan):
            tp_plan = self.tp_plan.to_dict()
        else:
            tp_plan = self.tp_plan

        trust_remote_code = self.trust_remote_code

        variant: None | str | Unset
        if isinstance(self.variant, Unset):
            variant = UNSET
        else:
            variant = self.variant

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if attn_implementation is not UNSET:
            field_dict["attn_implementation"] = attn_implementation
        if cache_dir is not UNSET:
            field_dict["cache_dir"] = cache_dir
        if device_map is not UNSET:
            field_dict["device_map"] = device_map
        if dtype is not UNSET:
            field_dict["dtype"] = dtype
        if local_files_only is not UNSET:
            field_dict["local_files_only"] = local_files_only
        if max_memory is not UNSET:
            field_dict["max_memory"] = max_memory
        if offload_folder is not UNSET:
            field_dict["offload_folder"] = offload_folder
        if revision is not UNSET:
            field_dict["revision"] = revision
        if subfolder is not UNSET:
            field_dict["subfolder"] = subfolder
        if token is not UNSET:
            field_dict["token"] = token
        if tp_plan is not UNSET:
            field_dict["tp_plan"] = tp_plan
        if trust_remote_code is not UNSET:
            field_dict["trust_remote_code"] = trust_remote_code
        if variant is not UNSET:
            field_dict["variant"] = variant

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.model_args_device_map import ModelArgsDeviceMap  # noqa: PLC0415
        from ..models.model_args_max_memory import ModelArgsMaxMemory  # noqa: PLC0415
        from ..models.model_args_tp_plan import ModelArgsTpPlan  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_attn_implementation(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        attn_implementation = _parse_attn_implementation(d.pop("attn_implementation", UNSET))

        def _parse_cache_dir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cache_dir = _parse_cache_dir(d.pop("cache_dir", UNSET))

        def _parse_device_map(data: object) -> ModelArgsDeviceMap | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                device_map_device_map = ModelArgsDeviceMap.from_dict(data)

                return device_map_device_map
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ModelArgsDeviceMap | None | str | Unset, data)

        device_map = _parse_device_map(d.pop("device_map", UNSET))

        def _parse_dtype(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dtype = _parse_dtype(d.pop("dtype", UNSET))

        def _parse_local_files_only(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        local_files_only = _parse_local_files_only(d.pop("local_files_only", UNSET))

        def _parse_max_memory(data: object) -> ModelArgsMaxMemory | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                max_memory_max_memory = ModelArgsMaxMemory.from_dict(data)

                return max_memory_max_memory
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ModelArgsMaxMemory | None | Unset, data)

        max_memory = _parse_max_memory(d.pop("max_memory", UNSET))

        def _parse_offload_folder(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        offload_folder = _parse_offload_folder(d.pop("offload_folder", UNSET))

        def _parse_revision(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        revision = _parse_revision(d.pop("revision", UNSET))

        def _parse_subfolder(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        subfolder = _parse_subfolder(d.pop("subfolder", UNSET))

        def _parse_token(data: object) -> bool | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | str | Unset, data)

        token = _parse_token(d.pop("token", UNSET))

        def _parse_tp_plan(data: object) -> ModelArgsTpPlan | None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                tp_plan_tp_plan = ModelArgsTpPlan.from_dict(data)

                return tp_plan_tp_plan
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ModelArgsTpPlan | None | str | Unset, data)

        tp_plan = _parse_tp_plan(d.pop("tp_plan", UNSET))

        trust_remote_code = d.pop("trust_remote_code", UNSET)

        def _parse_variant(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        variant = _parse_variant(d.pop("variant", UNSET))

        model_args = cls(
            attn_implementation=attn_implementation,
            cache_dir=cache_dir,
            device_map=device_map,
            dtype=dtype,
            local_files_only=local_files_only,
            max_memory=max_memory,
            offload_folder=offload_folder,
            revision=revision,
            subfolder=subfolder,
            token=token,
            tp_plan=tp_plan,
            trust_remote_code=trust_remote_code,
            variant=variant,
        )

        model_args.additional_properties = d
        return model_args

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
