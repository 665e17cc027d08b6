"""``generate config.yaml output.yaml``: answers from a model (optionally with an adapter), written as a YAML list.

The prompts are either one open input repeated ``num_samples`` times or the ``prompt_messages`` of an eval-data
file (JSONL or a JSON array). Prompts are generated in left-padded batches; each output item holds the rendered
prompt, the answer (new tokens only), the reference answers and the generation parameters in force.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from finetuning.config.jobs import EvalDataPrompt, GenerateConfig, GenerateModelConf
from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.models import NEW_BASEMODEL_NAME, config_vocab_size, model_reference_problem
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging
from finetuning.tools.generation_prompts import (
    EncodedPrompt,
    Prompt,
    build_prompts,
    encode_prompt,
)

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

TEST_TYPE = "open-ended"
# Filled in when hf_gen_params leaves them out (as in the original engine).
DEFAULT_MAX_LENGTH = 2048
DEFAULT_MAX_NEW_TOKENS = 512
# Keys of GenerationConfig.to_dict() that are bookkeeping, not generation parameters.
_NOT_PARAMS = frozenset({"transformers_version", "_from_model_config"})
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="generate", description="Generate answers with Hugging Face generate and write them as a YAML list."
    )
    add_common_arguments(parser)
    parser.add_argument("config", type=Path, help="The generation config (YAML).")
    parser.add_argument("output", type=Path, help="Where to write the answers (YAML list); replaced if it exists.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.logging_level)
    return run_with_events(args, lambda events: run_generate(args.config, args.output, events))


def run_generate(config_path: Path, output: Path, events: EventWriter) -> dict[str, Any]:
    """Validate, load, generate and write; returns the artifacts and metrics for the final status event."""
    import torch

    config = GenerateConfig.from_yaml_file(config_path)
    events.run_started("generate", config=_redacted(config.model_dump(mode="json")))
    preflight(config, output)

    # Everything a user can get wrong is checked before the model loads: that is the slow part.
    events.phase("loading_tokenizer")
    tokenizer = load_inference_tokenizer(config.model_conf)
    requested = build_generation_config(config.hf_gen_params, tokenizer)
    budget = prompt_budget(requested)
    prompts = build_prompts(config.prompt_conf, tokenizer)
    encoded = [encode_prompt(tokenizer, prompt.text, budget) for prompt in prompts]
    if not encoded[0].ids:  # only an open input sent as given can encode to nothing, and then all samples do
        raise FinetuningError(
            "the prompt is empty and the tokenizer adds no BOS token, so there is nothing to generate from; "
            "give an input",
            "invalid_config",
            "prompt_conf.input",
        )
    truncated = sum(e.truncated for e in encoded)
    if truncated:
        logger.warning(
            "%d of %d prompts were longer than %d tokens and lost their start", truncated, len(prompts), budget
        )

    events.phase("loading_model")
    model = load_generation_model(config, tokenizer)
    generation_config = with_model_defaults(requested, model)

    events.phase("generating")
    if config.seed is not None:
        from transformers import set_seed

        set_seed(config.seed)
    started = time.monotonic()
    n_batches = -(-len(encoded) // config.batch_size)

    def report(done: int) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (n_batches - done)
        events.progress(step=done, total_steps=n_batches, elapsed_s=elapsed, eta_s=eta)

    try:
        generated = generate_batches(
            model, tokenizer, [e.ids for e in encoded], generation_config, config.batch_size, on_batch=report
        )
    except torch.OutOfMemoryError as exc:
        raise FinetuningError(
            f"out of memory while generating batches of {config.batch_size} prompts: lower batch_size or "
            "hf_gen_params.max_new_tokens, or load the model in 4-bit (quant_conf)",
            "out_of_memory",
            "batch_size",
        ) from exc
    seconds = time.monotonic() - started

    events.phase("saving")
    gen_params = output_gen_params(generation_config, config)
    items = [
        output_item(prompt, enc, new_ids, tokenizer, gen_params)
        for prompt, enc, new_ids in zip(prompts, encoded, generated, strict=True)
    ]
    write_yaml_atomically(items, output)
    logger.info("wrote %d answers to %s (%.2f s generating)", len(items), output, seconds)
    metrics = {
        "prompts": len(items),
        "truncated": truncated,
        "new_tokens": sum(len(ids) for ids in generated),
        "seconds": round(seconds, 3),
    }
    return {"artifacts": {"output": str(output.absolute())}, "metrics": metrics}


# ---------------------------------------------------------------------------------------------------------------------
# Up-front checks


def preflight(config: GenerateConfig, output: Path) -> None:
    """Fail in a second, naming every missing input, rather than after loading a model."""
    conf = config.model_conf
    problems: list[tuple[str, str, str]] = []  # (code, param, message)
    references = [
        ("model_conf.model", conf.model),
        ("model_conf.adapter", conf.adapter),
        ("model_conf.tokenizer", conf.tokenizer),
    ]
    for param, reference in references:
        problem = model_reference_problem(reference) if reference else None
        if problem:
            problems.append(("model_not_found", param, problem))
    if conf.adapter and Path(conf.adapter).expanduser().is_dir():
        if not (Path(conf.adapter).expanduser() / "adapter_config.json").is_file():
            problems.append(
                (
                    "model_not_found",
                    "model_conf.adapter",
                    f"'{conf.adapter}' holds no adapter_config.json (not a PEFT adapter)",
                )
            )
    if isinstance(config.prompt_conf, EvalDataPrompt):
        path = config.prompt_conf.data.path
        if not Path(path).expanduser().is_file():
            problems.append(("data_not_found", "prompt_conf.data.path", f"no data file at '{path}'"))
    if output.is_dir():
        problems.append(("invalid_request", "output", f"'{output}' is a folder; give a file path for the YAML output"))
    if problems:
        code, param, _ = problems[0]
        message = "; ".join(f"{p}: {m}" for _, p, m in problems) if len(problems) > 1 else problems[0][2]
        raise FinetuningError(message, code, param)


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer and prompts


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
# Generation parameters


def build_generation_config(user: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """``hf_gen_params`` checked against ``GenerationConfig`` and completed with the tokenizer's special ids and
    the default lengths; a bad key or value names ``hf_gen_params.<key>``."""
    from transformers import GenerationConfig

    known = set(GenerationConfig().to_dict()) - _NOT_PARAMS
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
        values = {k: v for k, v in model_defaults.to_dict().items() if k not in _NOT_PARAMS}
        merged.update(**values, defaults_only=True)
    return merged


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


# ---------------------------------------------------------------------------------------------------------------------
# Generating


def generate_batches(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    generation_config: GenerationConfig,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The new token ids for each prompt, in order, generated ``batch_size`` prompts at a time with left padding.

    Each answer ends at its first EOS (kept) and carries no padding, as if its prompt had been generated alone.
    ``on_batch(done_batches)`` is called after every batch.
    """
    import torch

    pad_id = generation_config.pad_token_id
    if pad_id is None:
        raise FinetuningError(
            "no pad token for batching: the tokenizer has neither a pad nor an EOS token; set pad_token_id",
            "invalid_config",
            "hf_gen_params.pad_token_id",
        )
    eos = generation_config.eos_token_id
    if generation_config.max_new_tokens is not None:
        # The prompts already fit max_length - max_new_tokens, so max_new_tokens alone bounds the length; with both
        # set, transformers warns "Both `max_new_tokens` and `max_length` seem to have been set" on every call.
        generation_config = copy.deepcopy(generation_config)
        generation_config.max_length = None
    eos_ids = set() if eos is None else ({int(eos)} if isinstance(eos, int) else {int(i) for i in eos})
    extra = {"tokenizer": tokenizer} if generation_config.stop_strings else {}
    device = model.device
    # Longest first: similar lengths share a batch (less padding), and running out of memory shows at once.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[list[int]] = [[] for _ in prompts]
    for done, start in enumerate(range(0, len(order), batch_size), start=1):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in batch])
        attention_mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=generation_config,
                **extra,
            )
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        for row, index in enumerate(batch):
            answers[index] = _trim(sequences[row, width:].tolist(), eos_ids, int(pad_id))
        if on_batch is not None:
            on_batch(done)
    return answers


def _trim(new_ids: list[int], eos_ids: set[int], pad_id: int) -> list[int]:
    """Cut after the first EOS; drop the padding ``generate`` adds to rows that finished before the others."""
    for position, token in enumerate(new_ids):
        if token in eos_ids:
            return new_ids[: position + 1]
    while new_ids and new_ids[-1] == pad_id:
        new_ids = new_ids[:-1]
    return new_ids


# ---------------------------------------------------------------------------------------------------------------------
# Output


def _redacted(data: dict[str, Any]) -> dict[str, Any]:
    """The config without the hub token, which must not end up in events or output files."""
    model_args = data.get("model_conf", {}).get("model_args")
    if isinstance(model_args, dict) and isinstance(model_args.get("token"), str):
        model_args["token"] = "***"
    return data


def output_gen_params(generation_config: GenerationConfig, config: GenerateConfig) -> dict[str, Any]:
    """The generation parameters in force as plain data, plus the set fields of quant_conf and model_conf as JSON."""
    params = {k: v for k, v in generation_config.to_diff_dict().items() if k not in _NOT_PARAMS}
    params = json.loads(json.dumps(params, default=str))  # plain lists/dicts/scalars only, as safe_dump needs
    model_conf = _redacted({"model_conf": config.model_conf.model_dump(mode="json", exclude_unset=True)})["model_conf"]
    params["quant_conf"] = json.dumps(config.quant_conf.model_dump(mode="json", exclude_unset=True))
    params["model_conf"] = json.dumps(model_conf)
    return params


def output_item(
    prompt: Prompt,
    encoded: EncodedPrompt,
    new_ids: list[int],
    tokenizer: PreTrainedTokenizerBase,
    gen_params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dataset": prompt.dataset,
        "id": prompt.id,
        "prompt": prompt.text,
        "answer": tokenizer.decode(new_ids, skip_special_tokens=True),
        "correct_answers": list(prompt.correct_answers),
        "test_type": TEST_TYPE,
        "data_collection": prompt.dataset,
        "truncated": encoded.truncated,
        "all_text_raw": tokenizer.decode(encoded.ids + new_ids, skip_special_tokens=False),
        # Its own copy: a dict shared between items makes PyYAML write &anchors and *aliases.
        "gen_params": copy.deepcopy(gen_params),
    }


def write_yaml_atomically(items: list[dict[str, Any]], output: Path) -> None:
    """Write to a temporary file beside ``output`` and rename it over: readers never see half a file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(items, f, sort_keys=False, allow_unicode=True)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; the output is an ordinary file
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
