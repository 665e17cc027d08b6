"""The generation parameters of a generate job: ``hf_gen_params`` checked against ``GenerationConfig``, completed with
the tokenizer's special ids and the default lengths, the prompt budget they leave, and the model's own defaults
merged in."""

from __future__ import annotations

import copy
import difflib
from typing import TYPE_CHECKING, Any

from finetuning.errors import FinetuningError

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

# Filled in when hf_gen_params leaves them out (as in the original engine).
DEFAULT_MAX_LENGTH = 2048
DEFAULT_MAX_NEW_TOKENS = 512
# Keys of GenerationConfig.to_dict() that are bookkeeping, not generation parameters.
NOT_PARAMS = frozenset({"transformers_version", "_from_model_config"})


def build_generation_config(user: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """``hf_gen_params`` checked against ``GenerationConfig`` and completed with the tokenizer's special ids and
    the default lengths; a bad key or value names ``hf_gen_params.<key>``."""
    from transformers import GenerationConfig

    known = set(GenerationConfig().to_dict()) - NOT_PARAMS
    for key in user:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise FinetuningError(
                f"unknown generation parameter '{key}'{hint} (accepted keys are the fields of "
                "transformers.GenerationConfig)",
                "invalid_config",
                f"hf_gen_params.{key}",
            )
    if (user.get("num_return_sequences") or 1) != 1:
        raise FinetuningError(
            "only one answer per prompt is written; for several samples of one input use prompt_conf.num_samples",
            "invalid_config",
            "hf_gen_params.num_return_sequences",
        )

    params = {key: value for key, value in user.items() if value is not None}  # null means "fill it in"
    eos_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    # A tokenizer saved after chat training has the template's end marker as EOS; "</s>" still ends base-style text.
    legacy_eos = tokenizer.get_vocab().get("</s>")
    if legacy_eos is not None and legacy_eos not in eos_ids:
        eos_ids.append(legacy_eos)
    if eos_ids:
        params.setdefault("eos_token_id", eos_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or [None])[0]
    if pad_id is not None:
        params.setdefault("pad_token_id", pad_id)  # for padding only: the tokenizer itself is left as it is
    if tokenizer.bos_token_id is not None:
        params.setdefault("bos_token_id", tokenizer.bos_token_id)
    params.setdefault("max_length", DEFAULT_MAX_LENGTH)
    params.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)

    try:
        return GenerationConfig(**params)  # validates the values: better now than after loading the model
    except (TypeError, ValueError) as exc:
        # The library's message does not always name the field (a string max_new_tokens gives "'<=' not supported
        # between instances of 'str' and 'int'"): find the user's key that fails on its own.
        culprit = next((key for key in params if key in user and _fails({key: params[key]})), None)
        param = f"hf_gen_params.{culprit}" if culprit else "hf_gen_params"
        raise FinetuningError(f"invalid generation parameters: {exc}", "invalid_config", param) from exc


def _fails(values: dict[str, Any]) -> bool:
    from transformers import GenerationConfig

    try:
        GenerationConfig(**values)
    except (TypeError, ValueError):
        return True
    return False


def prompt_budget(generation_config: GenerationConfig) -> int:
    """How many prompt tokens fit: ``max_length`` minus the room kept for ``max_new_tokens``."""
    max_length, max_new_tokens = generation_config.max_length, generation_config.max_new_tokens
    if not isinstance(max_length, int) or not isinstance(max_new_tokens, int):
        raise FinetuningError("max_length and max_new_tokens must be whole numbers", "invalid_config", "hf_gen_params")
    if max_length - max_new_tokens < 1:
        raise FinetuningError(
            f"max_new_tokens ({max_new_tokens}) leaves no room for the prompt within max_length ({max_length}); "
            "lower max_new_tokens or raise max_length",
            "invalid_config",
            "hf_gen_params.max_new_tokens",
        )
    return max_length - max_new_tokens


def with_model_defaults(generation_config: GenerationConfig, model: Any) -> GenerationConfig:
    """What ``generate`` will use: our parameters, and the model's ``generation_config.json`` for the rest.

    transformers 5 makes this merge itself inside ``generate`` (every GenerationConfig field now defaults to None,
    so a model's sampling defaults apply unless hf_gen_params overrides them); doing it here too lets the output
    record the parameters actually in force.
    """
    merged = copy.deepcopy(generation_config)
    model_defaults = getattr(model, "generation_config", None)
    if model_defaults is not None:
        values = {k: v for k, v in model_defaults.to_dict().items() if k not in NOT_PARAMS}
        merged.update(**values, defaults_only=True)
    return merged
