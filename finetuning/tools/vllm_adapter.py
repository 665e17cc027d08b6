"""``create_vllm_compatible_adapter``: strip a LoRA adapter down to the tensors vLLM accepts.

PEFT saves more than the LoRA matrices into ``adapter_model.safetensors``: the base embeddings when they are LoRA
targets (``embed_tokens.base_layer.weight``, ``lm_head.base_layer.weight``), whole trained copies of
``modules_to_save`` layers, and, after the vocabulary grew, three copies of each embedding matrix (``.weight``,
``.original_module.weight`` and ``.modules_to_save.weight``). This tool keeps only the ``.lora_`` ones
(``lora_A``/``lora_B``, ``lora_embedding_A``/``lora_embedding_B``, DoRA's ``lora_magnitude_vector``) and sets
``modules_to_save``/``trainable_token_indices`` in ``adapter_config.json`` to null.

Which vLLM versions need that, from their ``vllm/lora`` code (``LoRAModel.from_local_checkpoint`` and
``from_lora_tensors``, ``PEFTHelper.validate_legal``, ``utils.parse_fine_tuned_lora_name``; read in 0.8.5, 0.10.0,
0.11.0-0.11.2, 0.12.0, 0.14.0-0.18.0, 0.24.0, 0.32.0 and 0.33.0):

* up to 0.11.2 every tensor name must parse as a LoRA weight, so an adapter with embedding targets fails to load
  on its ``...embed_tokens.base_layer.weight`` ("... is unsupported LoRA weight"): the conversion is required.
* from 0.12.0 on, ``is_base_embedding_weights`` drops tensors whose names end in
  ``.embed_tokens.base_layer.weight`` or ``.lm_head.base_layer.weight`` before that check. Such an adapter loads
  unconverted and gives the same tokens as the converted one (vLLM 0.32, CPU build: ``make check-vllm``), so
  the conversion is harmless there. Only those two names are skipped; base-layer copies under other names
  (``wte``, ``embed_in``, ``embed_out``, ...) still fail the load.
* every version read, 0.33 included, refuses the other extras: ``modules_to_save`` other than a classification
  head (``classifier``/``score``, accepted since some release after 0.24) in ``adapter_config.json``, and whole
  embedding matrices (``embed_tokens.weight``, ``.original_module.weight``, ...) that do not parse as LoRA weights.
  Since 0.12.0 an embedding LoRA wider than the base vocabulary is refused too ("The embedding LoRA size(...)
  must be consistent with the base model's vocabulary size(...)"): a grown vocabulary cannot be served as a
  LoRA adapter even after conversion.

Some adapters must not be stripped, because the removed tensors carry what was trained: with a training config the
tool keeps them unchanged (byte for byte) when the run was full finetuning (NO_PEFT), when the vocabulary grew, or
when ``modules_to_save``/``trainable_token_indices`` were trained. Such models are served after ``merge_adapter``.

This module is the command line; the decision is :mod:`finetuning.tools.vllm_conversion`, the vocabulary evidence
:mod:`finetuning.tools.adapter_vocabulary` and the reading and rewriting of the adapter's files
:mod:`finetuning.tools.adapter_files`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.settings import get_engine_settings
from finetuning.storage.places import readable, writable
from finetuning.storage.uri import is_remote
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging
from finetuning.tools.vllm_conversion import VllmOutcome, make_vllm_compatible

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

TOOL_NAME = "create_vllm_compatible_adapter"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL_NAME,
        description="Take in a HuggingFace adapter's binary folder path and remove the embeddings layer weights "
        "required for vLLM compatibility",
    )
    parser.add_argument(
        "model_path",
        help="Path to the model folder (e.g. path to the folder containing the adapter) to be made compatible; "
        "s3://bucket/prefix with --output-dir",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Convert a copy here (a folder or s3://bucket/prefix), leaving model_path as it is (default: in place)",
    )
    parser.add_argument(
        "--training-config",
        type=Path,
        default=None,
        help="Path to training config to check and determine whether the layers should be removed or not.",
    )
    add_common_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    setup_logging(args.logging_level)

    def body(events: EventWriter) -> dict[str, Any]:
        events.run_started(
            TOOL_NAME,
            config={
                "model_path": str(args.model_path),
                "training_config": None if args.training_config is None else str(args.training_config),
            },
        )
        if args.output_dir is None:
            if is_remote(args.model_path):
                raise FinetuningError(
                    "an adapter in a bucket is converted into a copy: give --output-dir", "invalid_request"
                )
            return _convert(Path(args.model_path), args.training_config, events)
        settings = get_engine_settings()
        source = readable(args.model_path, folder=True, settings=settings, events=events)
        if not Path(source).is_dir():
            raise ModelNotFoundError(f"'{args.model_path}' does not exist (any more)", "model_path")
        with writable(args.output_dir, settings, events) as place:
            if place.local.exists():
                shutil.rmtree(place.local)  # left by an earlier attempt: convert a fresh copy
            shutil.copytree(source, place.local)
            result = _convert(place.local, args.training_config, events)
        result["artifacts"] = {name: place.public(path) for name, path in result["artifacts"].items()}
        return result

    return run_with_events(args, body)


def _convert(folder: Path, training_config: Path | None, events: EventWriter) -> dict[str, Any]:
    events.phase("converting")
    outcome = make_vllm_compatible(folder, training_config)
    for warning in outcome.warnings:
        events.log("warning", warning)
    _log_summary(outcome)
    events.phase("done")
    return {"artifacts": outcome.artifacts(), "metrics": outcome.metrics()}


def _log_summary(outcome: VllmOutcome) -> None:
    logger.info("%s: %s (%s)", outcome.adapter_dir, outcome.action, "; ".join(outcome.reasons))
    for warning in outcome.warnings:
        logger.warning("%s", warning)
    lora = outcome.lora
    if lora.get("peft_type") == "LORA":
        vocab = outcome.vocab
        logger.info(
            "for vLLM: r=%s lora_alpha=%s target_modules=%s extra vocab needed=%s; suggested: "
            "vllm serve %s --enable-lora --max-lora-rank %s --lora-modules adapter=%s",
            lora.get("r"),
            lora.get("lora_alpha"),
            lora.get("target_modules"),
            bool(vocab and vocab.grows),
            lora.get("base_model") or "<base model>",
            lora.get("max_lora_rank") or "<none fits>",
            outcome.adapter_dir,
        )


if __name__ == "__main__":
    sys.exit(main())
