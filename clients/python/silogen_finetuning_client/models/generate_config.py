from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.bnb_quantization_conf import BnBQuantizationConf
    from ..models.eval_data_prompt import EvalDataPrompt
    from ..models.generate_config_hf_gen_params import GenerateConfigHfGenParams
    from ..models.generate_model_conf import GenerateModelConf
    from ..models.no_quantization_conf import NoQuantizationConf
    from ..models.open_input_prompt import OpenInputPrompt


T = TypeVar("T", bound="GenerateConfig")


@_attrs_define
class GenerateConfig:
    """Generation with HF ``generate`` (``generate config.yaml output.yaml``).

    Attributes:
        model_conf (GenerateModelConf):
        prompt_conf (EvalDataPrompt | OpenInputPrompt):
        batch_size (int | Unset): Prompts generated together (left-padded) in one generate call; lower it if memory runs
            out. Default: 8.
        hf_gen_params (GenerateConfigHfGenParams | Unset): transformers.GenerationConfig fields
        quant_conf (BnBQuantizationConf | NoQuantizationConf | Unset):
        seed (int | None | Unset): Seeds the random generators before generating, so that sampling (do_sample: true)
            repeats for the same prompts and batch_size. Unset: not seeded.
    """

    model_conf: GenerateModelConf
    prompt_conf: EvalDataPrompt | OpenInputPrompt
    batch_size: int | Unset = 8
    hf_gen_params: GenerateConfigHfGenParams | Unset = UNSET
    quant_conf: BnBQuantizationConf | NoQuantizationConf | Unset = UNSET
    seed: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.open_input_prompt import OpenInputPrompt  # noqa: PLC0415

        model_conf = self.model_conf.to_dict()

        prompt_conf: dict[str, Any]
        if isinstance(self.prompt_conf, OpenInputPrompt):
            prompt_conf = self.prompt_conf.to_dict()
        else:
            prompt_conf = self.prompt_conf.to_dict()

        batch_size = self.batch_size

        hf_gen_params: dict[str, Any] | Unset = UNSET
        if not isinstance(self.hf_gen_params, Unset):
            hf_gen_params = self.hf_gen_params.to_dict()

        quant_conf: dict[str, Any] | Unset
        if isinstance(self.quant_conf, Unset):
            quant_conf = UNSET
        elif isinstance(self.quant_conf, NoQuantizationConf):
            quant_conf = self.quant_conf.to_dict()
        else:
            quant_conf = self.quant_conf.to_dict()

        seed: int | None | Unset
        if isinstance(self.seed, Unset):
            seed = UNSET
        else:
            seed = self.seed

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "model_conf": model_conf,
                "prompt_conf": prompt_conf,
            }
        )
        if batch_size is not UNSET:
            field_dict["batch_size"] = batch_size
        if hf_gen_params is not UNSET:
            field_dict["hf_gen_params"] = hf_gen_params
        if quant_conf is not UNSET:
            field_dict["quant_conf"] = quant_conf
        if seed is not UNSET:
            field_dict["seed"] = seed

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bnb_quantization_conf import BnBQuantizationConf  # noqa: PLC0415
        from ..models.eval_data_prompt import EvalDataPrompt  # noqa: PLC0415
        from ..models.generate_config_hf_gen_params import GenerateConfigHfGenParams  # noqa: PLC0415
        from ..models.generate_model_conf import GenerateModelConf  # noqa: PLC0415
        from ..models.no_quantization_conf import NoQuantizationConf  # noqa: PLC0415
        from ..models.open_input_prompt import OpenInputPrompt  # noqa: PLC0415

        d = dict(src_dict)
        model_conf = GenerateModelConf.from_dict(d.pop("model_conf"))

        def _parse_prompt_conf(data: object) -> EvalDataPrompt | OpenInputPrompt:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                prompt_conf_type_0 = OpenInputPrompt.from_dict(data)

                return prompt_conf_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            prompt_conf_type_1 = EvalDataPrompt.from_dict(data)

            return prompt_conf_type_1

        prompt_conf = _parse_prompt_conf(d.pop("prompt_conf"))

        batch_size = d.pop("batch_size", UNSET)

        _hf_gen_params = d.pop("hf_gen_params", UNSET)
        hf_gen_params: GenerateConfigHfGenParams | Unset
        if isinstance(_hf_gen_params, Unset):
            hf_gen_params = UNSET
        else:
            hf_gen_params = GenerateConfigHfGenParams.from_dict(_hf_gen_params)

        def _parse_quant_conf(data: object) -> BnBQuantizationConf | NoQuantizationConf | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                quant_conf_type_0 = NoQuantizationConf.from_dict(data)

                return quant_conf_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            quant_conf_type_1 = BnBQuantizationConf.from_dict(data)

            return quant_conf_type_1

        quant_conf = _parse_quant_conf(d.pop("quant_conf", UNSET))

        def _parse_seed(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        seed = _parse_seed(d.pop("seed", UNSET))

        generate_config = cls(
            model_conf=model_conf,
            prompt_conf=prompt_conf,
            batch_size=batch_size,
            hf_gen_params=hf_gen_params,
            quant_conf=quant_conf,
            seed=seed,
        )

        return generate_config
