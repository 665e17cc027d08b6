from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.bnb_quantization_conf_bnb_4bit_quant_type import (
    BnBQuantizationConfBnb4BitQuantType,
    check_bn_b_quantization_conf_bnb_4_bit_quant_type,
)
from ..types import UNSET, Unset

T = TypeVar("T", bound="BnBQuantizationConf")


@_attrs_define
class BnBQuantizationConf:
    """bitsandbytes quantization (``transformers.BitsAndBytesConfig`` fields).

    Attributes:
        bnb_4bit_compute_dtype (None | str | Unset):
        bnb_4bit_quant_storage (None | str | Unset):
        bnb_4bit_quant_type (BnBQuantizationConfBnb4BitQuantType | Unset):  Default: 'fp4'.
        bnb_4bit_use_double_quant (bool | Unset):  Default: False.
        llm_int8_enable_fp32_cpu_offload (bool | Unset):  Default: False.
        llm_int8_has_fp16_weight (bool | Unset):  Default: False.
        llm_int8_skip_modules (list[str] | None | Unset):
        llm_int8_threshold (float | Unset):  Default: 6.0.
        load_in_4bit (bool | Unset):  Default: False.
        load_in_8bit (bool | Unset):  Default: False.
        quantization_type (Literal['bits-and-bytes'] | Unset):  Default: 'bits-and-bytes'.
    """

    bnb_4bit_compute_dtype: None | str | Unset = UNSET
    bnb_4bit_quant_storage: None | str | Unset = UNSET
    bnb_4bit_quant_type: BnBQuantizationConfBnb4BitQuantType | Unset = "fp4"
    bnb_4bit_use_double_quant: bool | Unset = False
    llm_int8_enable_fp32_cpu_offload: bool | Unset = False
    llm_int8_has_fp16_weight: bool | Unset = False
    llm_int8_skip_modules: list[str] | None | Unset = UNSET
    llm_int8_threshold: float | Unset = 6.0
    load_in_4bit: bool | Unset = False
    load_in_8bit: bool | Unset = False
    quantization_type: Literal["bits-and-bytes"] | Unset = "bits-and-bytes"

    def to_dict(self) -> dict[str, Any]:
        bnb_4bit_compute_dtype: None | str | Unset
        if isinstance(self.bnb_4bit_compute_dtype, Unset):
            bnb_4bit_compute_dtype = UNSET
        else:
            bnb_4bit_compute_dtype = self.bnb_4bit_compute_dtype

        bnb_4bit_quant_storage: None | str | Unset
        if isinstance(self.bnb_4bit_quant_storage, Unset):
            bnb_4bit_quant_storage = UNSET
        else:
            bnb_4bit_quant_storage = self.bnb_4bit_quant_storage

        bnb_4bit_quant_type: str | Unset = UNSET
        if not isinstance(self.bnb_4bit_quant_type, Unset):
            bnb_4bit_quant_type = self.bnb_4bit_quant_type

        bnb_4bit_use_double_quant = self.bnb_4bit_use_double_quant

        llm_int8_enable_fp32_cpu_offload = self.llm_int8_enable_fp32_cpu_offload

        llm_int8_has_fp16_weight = self.llm_int8_has_fp16_weight

        llm_int8_skip_modules: list[str] | None | Unset
        if isinstance(self.llm_int8_skip_modules, Unset):
            llm_int8_skip_modules = UNSET
        elif isinstance(self.llm_int8_skip_modules, list):
            llm_int8_skip_modules = self.llm_int8_skip_modules

        else:
            llm_int8_skip_modules = self.llm_int8_skip_modules

        llm_int8_threshold = self.llm_int8_threshold

        load_in_4bit = self.load_in_4bit

        load_in_8bit = self.load_in_8bit

        quantization_type = self.quantization_type

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if bnb_4bit_compute_dtype is not UNSET:
            field_dict["bnb_4bit_compute_dtype"] = bnb_4bit_compute_dtype
        if bnb_4bit_quant_storage is not UNSET:
            field_dict["bnb_4bit_quant_storage"] = bnb_4bit_quant_storage
        if bnb_4bit_quant_type is not UNSET:
            field_dict["bnb_4bit_quant_type"] = bnb_4bit_quant_type
        if bnb_4bit_use_double_quant is not UNSET:
            field_dict["bnb_4bit_use_double_quant"] = bnb_4bit_use_double_quant
        if llm_int8_enable_fp32_cpu_offload is not UNSET:
            field_dict["llm_int8_enable_fp32_cpu_offload"] = llm_int8_enable_fp32_cpu_offload
        if llm_int8_has_fp16_weight is not UNSET:
            field_dict["llm_int8_has_fp16_weight"] = llm_int8_has_fp16_weight
        if llm_int8_skip_modules is not UNSET:
            field_dict["llm_int8_skip_modules"] = llm_int8_skip_modules
        if llm_int8_threshold is not UNSET:
            field_dict["llm_int8_threshold"] = llm_int8_threshold
        if load_in_4bit is not UNSET:
            field_dict["load_in_4bit"] = load_in_4bit
        if load_in_8bit is not UNSET:
            field_dict["load_in_8bit"] = load_in_8bit
        if quantization_type is not UNSET:
            field_dict["quantization_type"] = quantization_type

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_bnb_4bit_compute_dtype(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        bnb_4bit_compute_dtype = _parse_bnb_4bit_compute_dtype(d.pop("bnb_4bit_compute_dtype", UNSET))

        def _parse_bnb_4bit_quant_storage(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        bnb_4bit_quant_storage = _parse_bnb_4bit_quant_storage(d.pop("bnb_4bit_quant_storage", UNSET))

        _bnb_4bit_quant_type = d.pop("bnb_4bit_quant_type", UNSET)
        bnb_4bit_quant_type: BnBQuantizationConfBnb4BitQuantType | Unset
        if isinstance(_bnb_4bit_quant_type, Unset):
            bnb_4bit_quant_type = UNSET
        else:
            bnb_4bit_quant_type = check_bn_b_quantization_conf_bnb_4_bit_quant_type(_bnb_4bit_quant_type)

        bnb_4bit_use_double_quant = d.pop("bnb_4bit_use_double_quant", UNSET)

        llm_int8_enable_fp32_cpu_offload = d.pop("llm_int8_enable_fp32_cpu_offload", UNSET)

        llm_int8_has_fp16_weight = d.pop("llm_int8_has_fp16_weight", UNSET)

        def _parse_llm_int8_skip_modules(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                llm_int8_skip_modules_type_0 = cast(list[str], data)

                return llm_int8_skip_modules_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        llm_int8_skip_modules = _parse_llm_int8_skip_modules(d.pop("llm_int8_skip_modules", UNSET))

        llm_int8_threshold = d.pop("llm_int8_threshold", UNSET)

        load_in_4bit = d.pop("load_in_4bit", UNSET)

        load_in_8bit = d.pop("load_in_8bit", UNSET)

        quantization_type = cast(Literal["bits-and-bytes"] | Unset, d.pop("quantization_type", UNSET))
        if quantization_type != "bits-and-bytes" and not isinstance(quantization_type, Unset):
            raise ValueError(f"quantization_type must match const 'bits-and-bytes', got '{quantization_type}'")

        bnb_quantization_conf = cls(
            bnb_4bit_compute_dtype=bnb_4bit_compute_dtype,
            bnb_4bit_quant_storage=bnb_4bit_quant_storage,
            bnb_4bit_quant_type=bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=bnb_4bit_use_double_quant,
            llm_int8_enable_fp32_cpu_offload=llm_int8_enable_fp32_cpu_offload,
            llm_int8_has_fp16_weight=llm_int8_has_fp16_weight,
            llm_int8_skip_modules=llm_int8_skip_modules,
            llm_int8_threshold=llm_int8_threshold,
            load_in_4bit=load_in_4bit,
            load_in_8bit=load_in_8bit,
            quantization_type=quantization_type,
        )

        return bnb_quantization_conf
