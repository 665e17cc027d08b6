"""The ``from_pretrained`` keyword arguments of transformers 4.57 (``model_args``) that transformers 5 renamed or
removed; the bitsandbytes ones move to ``quant_conf``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetuning.config.legacy.rules import Edit, Retired, no_effect, renamed, switch_to

_BNB_KEYS = (
    "load_in_4bit",
    "load_in_8bit",
    "llm_int8_threshold",
    "llm_int8_skip_modules",
    "llm_int8_enable_fp32_cpu_offload",
    "llm_int8_has_fp16_weight",
    "bnb_4bit_compute_dtype",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
    "bnb_4bit_quant_storage",
)


def _bnb_to_quant_conf(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    """``load_in_4bit`` and the other bitsandbytes settings in model_args move to quant_conf, all at once."""
    if not (edit.original.get("load_in_4bit") or edit.original.get("load_in_8bit")):
        if key in ("load_in_4bit", "load_in_8bit") and value is False:
            edit.drop(key)
            return None, "false was the default"
        return None
    quant_conf = edit.doc.get("quant_conf")
    if isinstance(quant_conf, Mapping) and quant_conf.get("quantization_type", "no-quantization") != (
        "no-quantization"
    ):
        return None
    target = edit.subsection("quant_conf")
    if target is None:
        return None
    target.clear()
    target["quantization_type"] = "bits-and-bytes"
    for name in _BNB_KEYS:
        if name in edit.section:
            target[name] = edit.section.pop(name)
    return "quant_conf", "transformers 5 quantizes only through a quantization config"


MODEL_ARGS: dict[str, Retired] = {
    "torch_dtype": renamed("dtype", "transformers 5 renamed torch_dtype"),
    "use_auth_token": renamed("token", "transformers 5 removed use_auth_token"),
    "use_flash_attention_2": Retired(
        switch_to("attn_implementation", "flash_attention_2", "transformers 5 removed use_flash_attention_2"),
        "removed in transformers 5; use attn_implementation: flash_attention_2",
    ),
    "from_tf": no_effect(
        "false was the default",
        unless=lambda value: value is True,
        refusal="removed in transformers 5; the engine loads safetensors weights only: convert the checkpoint",
    ),
    "from_flax": no_effect(
        "false was the default",
        unless=lambda value: value is True,
        refusal="removed in transformers 5; the engine loads safetensors weights only: convert the checkpoint",
    ),
    "low_cpu_mem_usage": no_effect("transformers 5 always loads with low memory use"),
    "resume_download": no_effect("downloads always resume now"),
    "offload_state_dict": no_effect("transformers 5 decides this itself"),
    "mirror": no_effect("transformers 5 ignores it; set HF_ENDPOINT for a mirror"),
    "_fast_init": no_effect("transformers 5 always initializes this way"),
    **{
        name: Retired(
            _bnb_to_quant_conf,
            "transformers 5 quantizes only through a quantization config: move the bitsandbytes settings to "
            "quant_conf (quantization_type: bits-and-bytes), and give them in one place",
        )
        for name in _BNB_KEYS
    },
}
