"""``generate config.yaml output.yaml``: answers from a model (optionally with an adapter), written as a YAML list.

The prompts are either one open input repeated ``num_samples`` times or the ``prompt_messages`` of an eval-data
file (JSONL or a JSON array). Prompts are generated in left-padded batches; each output item holds the rendered
prompt, the answer (new tokens only), the reference answers and the generation parameters in force.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.config.jobs import EvalDataPrompt, GenerateConfig
from finetuning.errors import FinetuningError
from finetuning.models import model_reference_problem
from finetuning.redaction import redact
from finetuning.settings import get_engine_settings
from finetuning.storage.inputs import fetch_inputs, remote_inputs
from finetuning.storage.places import writable
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging
from finetuning.tools.generation_batches import generate_batches
from finetuning.tools.generation_model import load_generation_model, load_inference_tokenizer
from finetuning.tools.generation_output import output_gen_params, output_item, write_yaml_atomically
from finetuning.tools.generation_params import build_generation_config, prompt_budget, with_model_defaults
from finetuning.tools.generation_prompts import build_prompts, encode_prompt

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="generate", description="Generate answers with Hugging Face generate and write them as a YAML list."
    )
    add_common_arguments(parser)
    parser.add_argument("config", type=Path, help="The generation config (YAML).")
    parser.add_argument(
        "output", help="Where to write the answers (YAML list; a file or s3://bucket/key); replaced if it exists."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.logging_level)
    return run_with_events(args, lambda events: run_generate(args.config, args.output, events))


def run_generate(config_path: Path, output: Path | str, events: EventWriter) -> dict[str, Any]:
    """Validate, load, generate and write; returns the artifacts and metrics for the final status event. Inputs and
    the output may be bucket locations (``s3://``)."""
    settings = get_engine_settings()
    config = GenerateConfig.from_yaml_file(config_path)
    events.run_started("generate", config=config.model_dump(mode="json"))
    input_uris = {loc: uri for loc, (uri, _) in remote_inputs(config).items()}
    with writable(output, settings, events) as place:
        result = _generate(fetch_inputs(config, settings, events), place.local, events, input_uris)
    result["artifacts"]["output"] = place.public(place.local) if place.remote else str(place.local.absolute())
    return result


def _generate(
    config: GenerateConfig, output: Path, events: EventWriter, input_uris: dict[str, str] | None = None
) -> dict[str, Any]:
    import torch

    from finetuning.manifest import InputHashing, emit_manifest, generate_pins

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

    # the inputs are hashed while the model loads, for the run's manifest (docs/manifest.md)
    settings = get_engine_settings()
    hashing = InputHashing(
        config,
        input_uris or {},
        settings,
        enabled=events.enabled,
        revisions={"model_conf.model": config.model_conf.model_args.revision},
    )
    events.phase("loading_model")
    model = load_generation_model(config, tokenizer)
    generation_config = with_model_defaults(requested, model)
    if events.enabled:
        inputs = hashing.result()
        emit_manifest(
            events,
            method="generate",
            config=config,
            input_uris=input_uris or {},
            inputs=inputs,
            pins=generate_pins(config, model, inputs),
            resolved={"generation_config": generation_config.to_dict(), "prompts": len(prompts)},
            settings=settings,
        )

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
    write_yaml_atomically(redact(items), output)  # a secret the config referred to is not echoed
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


if __name__ == "__main__":
    sys.exit(main())
