from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dpo_config import DPOConfig
    from ..models.grpo_config import GRPOConfig
    from ..models.sft_config import SFTConfig


T = TypeVar("T", bound="AdapterConversionRequest")


@_attrs_define
class AdapterConversionRequest:
    """Make an adapter loadable by vLLM (``create_vllm_compatible_adapter``); the adapter is copied first, so the
    job that made it keeps its output unchanged.

        Attributes:
            adapter (str): Adapter folder or job:<id> of the training job that made it.
            training_config (DPOConfig | GRPOConfig | None | SFTConfig | Unset): The config the adapter was trained with;
                taken from the training job when adapter is job:<id>.
    """

    adapter: str
    training_config: DPOConfig | GRPOConfig | None | SFTConfig | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.dpo_config import DPOConfig  # noqa: PLC0415
        from ..models.grpo_config import GRPOConfig  # noqa: PLC0415
        from ..models.sft_config import SFTConfig  # noqa: PLC0415

        adapter = self.adapter

        training_config: dict[str, Any] | None | Unset
        if isinstance(self.training_config, Unset):
            training_config = UNSET
        elif isinstance(self.training_config, SFTConfig):
            training_config = self.training_config.to_dict()
        elif isinstance(self.training_config, DPOConfig):
            training_config = self.training_config.to_dict()
        elif isinstance(self.training_config, GRPOConfig):
            training_config = self.training_config.to_dict()
        else:
            training_config = self.training_config

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "adapter": adapter,
            }
        )
        if training_config is not UNSET:
            field_dict["training_config"] = training_config

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dpo_config import DPOConfig  # noqa: PLC0415
        from ..models.grpo_config import GRPOConfig  # noqa: PLC0415
        from ..models.sft_config import SFTConfig  # noqa: PLC0415

        d = dict(src_dict)
        adapter = d.pop("adapter")

        def _parse_training_config(data: object) -> DPOConfig | GRPOConfig | None | SFTConfig | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                training_config_type_0 = SFTConfig.from_dict(data)

                return training_config_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                training_config_type_1 = DPOConfig.from_dict(data)

                return training_config_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                training_config_type_2 = GRPOConfig.from_dict(data)

                return training_config_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(DPOConfig | GRPOConfig | None | SFTConfig | Unset, data)

        training_config = _parse_training_config(d.pop("training_config", UNSET))

        adapter_conversion_request = cls(
            adapter=adapter,
            training_config=training_config,
        )

        return adapter_conversion_request
