"""Load the base model (safetensors only, remote code opt-in), quantize it, grow its vocabulary, attach PEFT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from finetuning.config.model import (
    BnBQuantizationConf,
    GenericPeftConf,
    ModelArgs,
    NoPeftConf,
    PeftConf,
    PretrainedPeftConf,
    QuantConf,
)
from finetuning.errors import FinetuningError, ModelNotFoundError, UnsupportedHardwareError

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


# Where SFT saves the grown base beside an adapter whose chat template added tokens (sft_args default).
NEW_BASEMODEL_NAME = "checkpoint-new-basemodel"


def config_vocab_size(reference: str, **config_kwargs: Any) -> int | None:
    """The vocabulary size in a model's config (no weights are read); None when the config cannot be read."""
    from transformers import AutoConfig

    config_kwargs.setdefault("trust_remote_code", False)
    try:
        config = AutoConfig.from_pretrained(reference, **config_kwargs)
    except (OSError, ValueError) as exc:  # a missing folder, a hub id offline, a model type this transformers lacks
        logger.info("could not read the model config of '%s': %s", reference, exc)
        return None
    size = getattr(config.get_text_config(), "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def looks_local(reference: str) -> bool:
    """A path rather than a hub id: absolute, relative with ./ or ../, or ~."""
    return reference.startswith(("/", "./", "../", "~")) or Path(reference).expanduser().exists()


def model_reference_problem(reference: str) -> str | None:
    """What is wrong with a model, tokenizer or adapter reference that names a missing local folder, else None."""
    if looks_local(reference) and not Path(reference).expanduser().is_dir():
        return f"no folder at '{reference}'; give an existing folder or a hub id"
    return None


def check_model_reference(reference: str, param: str) -> None:
    """Fail before any work when a local model, tokenizer or adapter folder is missing."""
    problem = model_reference_problem(reference)
    if problem:
        raise ModelNotFoundError(problem, param)


def quantization_config(conf: QuantConf, *, fsdp: bool, bf16: bool, fp16: bool) -> BitsAndBytesConfig | None:
    if not isinstance(conf, BnBQuantizationConf):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # bitsandbytes raises RuntimeError/ImportError when no backend fits this machine
        raise UnsupportedHardwareError(
            f"bitsandbytes quantization cannot run here ({exc}); install bitsandbytes for this platform "
            "or remove quant_conf",
            "quant_conf",
        ) from exc
    from transformers import BitsAndBytesConfig

    kwargs = conf.model_dump(exclude={"quantization_type"})
    if fsdp and kwargs["bnb_4bit_quant_storage"] is None:
        # FSDP shards the quantized weights with the other parameters, so they must share one storage dtype
        kwargs["bnb_4bit_quant_storage"] = "bfloat16" if bf16 else "float16" if fp16 else "float32"
    return BitsAndBytesConfig(**kwargs)


def default_device_map(num_processes: int, local_process_index: int, *, deepspeed: bool, on_cpu: bool) -> Any:
    """One whole model per accelerator in data parallel; let accelerate place it on one process; the Trainer
    places it under DeepSpeed and on the CPU."""
    if deepspeed or on_cpu:
        return None
    return {"": local_process_index} if num_processes > 1 else "auto"


def load_model(
    reference: str,
    model_args: ModelArgs,
    quantization: BitsAndBytesConfig | None = None,
    *,
    device_map: Any = None,
    param: str = "run_conf.model",
) -> PreTrainedModel:
    """A causal LM from a folder or hub id: safetensors only, remote code only if ``model_args`` allows it.

    ``param`` names the config field (or argument) the reference came from, for the error message.
    """
    from transformers import AutoModelForCausalLM

    check_model_reference(reference, param)
    kwargs = model_args.from_pretrained_kwargs()
    kwargs["use_safetensors"] = True
    kwargs.setdefault("trust_remote_code", False)
    if "device_map" not in kwargs and device_map is not None:
        kwargs["device_map"] = device_map
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    try:
        return AutoModelForCausalLM.from_pretrained(reference, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(f"could not load a safetensors causal LM from '{reference}': {exc}", param) from exc


def is_quantized(model: PreTrainedModel) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def grow_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give new tokens rows (mean-initialised by transformers) when the tokenizer outgrew the model."""
    weight = cast("torch.Tensor", model.get_input_embeddings().weight)
    current = int(weight.shape[0])
    if len(tokenizer) <= current:
        return False
    if is_quantized(model):
        raise FinetuningError(
            f"the chat template adds {len(tokenizer) - current} tokens, but a quantized model's embeddings cannot "
            "grow; use a template that adds no tokens (keep-original) or drop quant_conf",
            "invalid_config",
            "quant_conf",
        )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    logger.info("grew the vocabulary from %d to %d tokens", current, len(tokenizer))
    return True


def sync_special_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stop_token: str) -> None:
    """Keep the model's config and generation config in line with the tokenizer we train with."""
    model.config.pad_token_id = tokenizer.pad_token_id
    stop_id = tokenizer.convert_tokens_to_ids(stop_token)
    eos_ids = [i for i in dict.fromkeys([stop_id, tokenizer.eos_token_id]) if i is not None]
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids


def _module_name(model: torch.nn.Module, module: torch.nn.Module | None) -> str | None:
    if module is None:
        return None
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    return None


def embedding_module_names(model: PreTrainedModel) -> list[str]:
    names = [_module_name(model, model.get_input_embeddings()), _module_name(model, model.get_output_embeddings())]
    return [n for n in names if n]


def keep_trainable_weights_in_float32(model: Any, *, mixed_precision: bool) -> int:
    """Trainable float16 weights become float32 (returns how many weights were cast): Adam's updates underflow in
    float16, so a float16 model trained as it is turns to NaN or diverges within steps (on a GPU, fp16's gradient
    scaler refuses it outright). Under mixed precision only the trainable weights are cast (autocast runs each layer
    in float16 whatever its weights' dtype); without it the whole model is, since layers of two dtypes cannot feed
    each other."""
    import torch

    parameters = list(model.parameters())
    if not any(p.requires_grad and p.dtype == torch.float16 for p in parameters):
        return 0
    cast = [p for p in parameters if p.dtype == torch.float16 and (p.requires_grad or not mixed_precision)]
    for parameter in cast:
        parameter.data = parameter.data.float()
    if mixed_precision:
        logger.warning(
            "%d trainable float16 weights are kept in float32 (float16 master weights lose Adam's updates); the "
            "frozen weights stay float16",
            len(cast),
        )
    else:
        logger.warning(
            "the float16 model trains in float32: without mixed precision (bf16: true, or fp16: true on a GPU) "
            "float16 weights lose Adam's updates"
        )
    return len(cast)


def attach_peft(
    model: PreTrainedModel,
    conf: PeftConf,
    *,
    vocab_grew: bool,
    gradient_checkpointing: bool,
    gradient_checkpointing_kwargs: dict[str, Any] | None,
    sharded: bool,
    defer_new_adapter: bool = False,
) -> tuple[Any, Any]:
    """Return the model to train (a PeftModel unless NO_PEFT) and, with ``defer_new_adapter``, the PEFT config of a
    new adapter left for the trainer to attach (TRL's preference trainers then use the adapter-disabled model as
    the reference instead of a copy)."""
    if isinstance(conf, NoPeftConf):
        _summary("NO_PEFT", model)
        return model, None

    import peft

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if is_quantized(model) and not sharded:
        model = peft.prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs,
        )
    elif gradient_checkpointing:
        # frozen embeddings give no input gradients, which reentrant checkpointing needs
        model.enable_input_require_grads()

    if isinstance(conf, PretrainedPeftConf):
        if vocab_grew:
            raise FinetuningError(
                "the chat template adds tokens, but a pretrained adapter cannot train the grown embeddings; "
                "use the tokenizer the adapter was trained with (chat_template_name: keep-original) "
                "or start a new adapter",
                "invalid_config",
                "peft_conf",
            )
        check_model_reference(conf.name_or_path, "peft_conf.name_or_path")
        peft_model = peft.PeftModel.from_pretrained(model, conf.name_or_path, is_trainable=True)
        _summary("PRETRAINED_PEFT", peft_model)
        return peft_model, None

    assert isinstance(conf, GenericPeftConf)
    peft_config = build_peft_config(conf)
    if vocab_grew:
        extra = embedding_module_names(model)
        current = list(getattr(peft_config, "modules_to_save", None) or [])
        if not hasattr(peft_config, "modules_to_save"):
            raise FinetuningError(
                f"{conf.peft_type} adapters cannot train the grown embeddings the chat template needs; "
                "use LORA or chat_template_name: keep-original",
                "invalid_config",
                "peft_conf.peft_type",
            )
        peft_config.modules_to_save = current + [n for n in extra if n not in current]
    if defer_new_adapter:
        return model, peft_config
    peft_model = peft.get_peft_model(model, peft_config)
    _summary(conf.peft_type, peft_model)
    return peft_model, None


def build_peft_config(conf: GenericPeftConf) -> Any:
    """The PEFT config object for ``peft_type`` with ``peft_kwargs``; a bad kwarg names its path."""
    import peft

    config_class = peft.PEFT_TYPE_TO_CONFIG_MAPPING[peft.PeftType(conf.peft_type)]
    try:
        return config_class(task_type=conf.task_type, **conf.peft_kwargs)
    except TypeError as exc:
        raise FinetuningError(
            f"{exc} (accepted keys are the fields of peft.{config_class.__name__})",
            "invalid_config",
            "peft_conf.peft_kwargs",
        ) from exc
    except ValueError as exc:
        raise FinetuningError(str(exc), "invalid_config", "peft_conf.peft_kwargs") from exc


def _summary(peft_type: str, model: torch.nn.Module) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("%s: %d of %d parameters trainable (%.2f%%)", peft_type, trainable, total, 100 * trainable / total)


def causal_lm_of(model: Any) -> Any:
    """The transformers causal LM inside ``model`` (a PeftModel, or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
