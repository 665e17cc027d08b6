"""The tokenizer and model of a generate job: the tokenizer set up for batched generation, and the base model (grown
to the tokenizer, or the adapter's grown base) with the adapter attached for inference."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config.jobs import GenerateConfig, GenerateModelConf
from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.models import NEW_BASEMODEL_NAME, config_vocab_size

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer


def tokenizer_source(conf: GenerateModelConf) -> tuple[str, str]:
    """The tokenizer to load and the config field it comes from: ``tokenizer``, else the adapter, else the model.

    An adapter folder without tokenizer files (one not saved by this engine) falls back to the model.
    """
    if conf.tokenizer:
        return conf.tokenizer, "model_conf.tokenizer"
    if conf.adapter:
        folder = Path(conf.adapter).expanduser()
        if not folder.is_dir() or any((folder / name).is_file() for name in _TOKENIZER_FILES):
            return conf.adapter, "model_conf.adapter"
        logger.info("the adapter folder %s has no tokenizer; using the model's", conf.adapter)
    return conf.model, "model_conf.model"


def load_inference_tokenizer(conf: GenerateModelConf) -> PreTrainedTokenizerBase:
    """The tokenizer as saved, set up for batched generation (left padding).

    The add_bos/add_eos switches are deliberately not passed to ``from_pretrained``: in transformers 5 that rebuilds
    the post-processor from the tokenizer config and silently drops a BOS that only the saved ``tokenizer.json``
    adds. :func:`encode_prompt` removes an appended EOS instead.
    """
    from transformers import AutoTokenizer

    source, param = tokenizer_source(conf)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=conf.model_args.trust_remote_code)
    except OSError as exc:
        raise ModelNotFoundError(f"could not load a tokenizer from '{source}': {exc}", param) from exc
    tokenizer.padding_side = "left"  # the prompt must end where generation starts
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------------
# Model


def _config_vocab_size(reference: str, conf: GenerateModelConf) -> int | None:
    """The base model's vocabulary size from its config alone; None if it cannot be read (load_model says why)."""
    wanted = ("revision", "token", "cache_dir", "local_files_only", "subfolder", "trust_remote_code")
    kwargs = {k: v for k, v in conf.model_args.from_pretrained_kwargs().items() if k in wanted}
    return config_vocab_size(reference, **kwargs)


def base_model_reference(conf: GenerateModelConf, tokenizer_length: int) -> tuple[str, str]:
    """The base to load and its config field: ``model``, or the adapter's ``checkpoint-new-basemodel`` sibling when
    the adapter's tokenizer outgrew ``model`` (that sibling holds the grown embeddings the adapter was trained on)."""
    if conf.adapter:
        sibling = Path(conf.adapter).expanduser().parent / NEW_BASEMODEL_NAME
        if sibling.is_dir() and sibling.resolve() != Path(conf.model).expanduser().resolve():
            vocab_size = _config_vocab_size(conf.model, conf)
            if vocab_size is not None and vocab_size < tokenizer_length:
                logger.info("the tokenizer outgrew %s; using the adapter's grown base %s", conf.model, sibling)
                return str(sibling), "model_conf.adapter"
    return conf.model, "model_conf.model"


def load_generation_model(config: GenerateConfig, tokenizer: PreTrainedTokenizerBase) -> Any:
    """The base model (quantized if asked), grown to the tokenizer if an adapter needs it, with the adapter attached
    for inference; in eval mode."""
    import torch

    from finetuning import models

    conf = config.model_conf
    quantization = models.quantization_config(config.quant_conf, fsdp=False, bf16=False, fp16=False)
    reference, param = base_model_reference(conf, len(tokenizer))
    device_map = "auto" if torch.cuda.is_available() else None
    model: Any = models.load_model(reference, conf.model_args, quantization, device_map=device_map, param=param)
    rows = int(model.get_input_embeddings().weight.shape[0])
    if len(tokenizer) > rows:
        if not conf.adapter:
            raise FinetuningError(
                f"the tokenizer has {len(tokenizer)} tokens but the model only {rows} embeddings; give the "
                "tokenizer that belongs to the model (or the adapter that added the tokens)",
                "invalid_config",
                "model_conf.tokenizer",
            )
        if quantization is not None:
            raise FinetuningError(
                f"the adapter's tokenizer has {len(tokenizer)} tokens but the model only {rows} embeddings, and a "
                f"quantized model's embeddings cannot grow; keep the {NEW_BASEMODEL_NAME} folder that training saved "
                "beside the adapter (or give it as model_conf.model), or drop quant_conf",
                "invalid_config",
                "quant_conf",
            )
        # The adapter was trained on a grown base, and SFT saves the grown embedding rows with the adapter:
        # attaching it replaces these freshly initialised rows.
        models.grow_embeddings(model, tokenizer)
    if conf.adapter:
        from peft import PeftModel

        with warnings.catch_warnings():
            # peft 0.21 asks transformers 5 for the deprecated is_gradient_checkpointing: noise, not the user's doing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            try:
                model = PeftModel.from_pretrained(model, conf.adapter, is_trainable=False)
            except RuntimeError as exc:
                if "size mismatch" not in str(exc):
                    raise
                raise FinetuningError(
                    f"the adapter does not fit the base model ({str(exc).splitlines()[-1].strip()}); an adapter "
                    "trained with added tokens needs its own tokenizer (model_conf.tokenizer) or the "
                    f"{NEW_BASEMODEL_NAME} saved beside it as model_conf.model",
                    "invalid_config",
                    "model_conf.adapter",
                ) from exc
    model.eval()
    return model
