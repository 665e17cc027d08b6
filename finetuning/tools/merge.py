"""``merge_adapter``: merge a PEFT adapter into its base model and save the result as one ordinary model.

An adapter trained on a grown vocabulary (a chat template that added tokens) only fits a base with as many
embedding rows. The SFT run saves that grown base as ``<output_dir>/checkpoint-new-basemodel`` beside the adapter;
it is used automatically when present. Otherwise the base is resized to the adapter's size before the adapter is
attached (PEFT cannot load a larger embedding onto a smaller base).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.models import NEW_BASEMODEL_NAME, check_model_reference, config_vocab_size, load_model, looks_local
from finetuning.settings import get_engine_settings
from finetuning.storage.places import readable_beside, writable
from finetuning.storage.uri import is_remote
from finetuning.tools.adapter_files import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    read_safetensors_header,
    saved_embedding_rows,
)
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

TOOL_NAME = "merge_adapter"
# The folder name SFT saves a grown base under (sft_args.save_name_if_new_basemodel's default).
_DEVICE_NAMES = ("auto", "cpu", "cuda", "balanced", "balanced_low_0", "sequential")
_DEVICE_PATTERN = re.compile(r"(cuda|xpu|npu|mps):\d+")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# What makes a folder "contain a model" that merging would clobber.
_MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "adapter_config.json")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL_NAME, description="Merges adapters into a base model and saves the output as a single model"
    )
    parser.add_argument("basemodel", help="Name (e.g. HuggingFace Hub id) or Path of Base Model")
    parser.add_argument("peftmodel", help="Name or Path of Peft adapter")
    parser.add_argument("outpath", help="Where to save the merged model (a folder or s3://bucket/prefix)")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="Name or Path to tokenizer to save with the model. If not specified, will use the adapter model "
        "tokenizer.",
    )
    parser.add_argument(
        "--device_map",
        default="auto",
        help="Device map for loading the model. Can be 'auto', 'cpu', 'cuda' or a JSON string.",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace the model files already in outpath (default: refuse)."
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
                "basemodel": args.basemodel,
                "peftmodel": args.peftmodel,
                "outpath": str(args.outpath),
                "tokenizer": args.tokenizer,
                "device_map": args.device_map,
                "overwrite": args.overwrite,
            },
        )
        settings = get_engine_settings()

        def local(value: str) -> str:  # a bucket input: its local copy, with a grown base saved beside it
            return readable_beside(value, NEW_BASEMODEL_NAME, settings=settings, events=events)

        with writable(args.outpath, settings, events) as place:
            result = merge_adapter(
                local(args.basemodel),
                local(args.peftmodel),
                place.local,
                tokenizer=None if args.tokenizer is None else local(args.tokenizer),
                device_map=args.device_map,
                overwrite=args.overwrite,
                events=events,
            )
        events.phase("done")
        base_model = _public_base(result.base_model, args.basemodel, args.peftmodel, local)
        return {
            "artifacts": {"model_path": place.public(result.model_path), "base_model": base_model},
            "metrics": {
                "vocab_size": result.vocab_size,
                "vocab_grew": result.vocab_grew,
                "used_grown_base": result.used_grown_base,
            },
        }

    return run_with_events(args, body)


@dataclass(frozen=True)
class MergeResult:
    model_path: Path
    base_model: str  # the base actually used: the given one, or the grown base found beside the adapter
    vocab_size: int
    vocab_grew: bool
    used_grown_base: bool


def parse_device_map(value: str | dict[str, Any]) -> str | dict[str, Any]:
    """``auto``, ``cpu``, ``cuda`` (and accelerate's other names), ``cuda:N``, or a JSON object string
    such as ``{"": "cpu"}`` (module name -> device)."""
    if isinstance(value, dict):
        return value
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FinetuningError(
                f"not valid JSON ({exc.msg} at character {exc.pos}): {text!r}; "
                'give e.g. \'{"": "cpu"}\' or auto, cpu, cuda',
                "invalid_request",
                "--device_map",
            ) from None
        if not isinstance(parsed, dict):
            raise FinetuningError(
                "the JSON must be an object (module name -> device)", "invalid_request", "--device_map"
            )
        return parsed
    if text in _DEVICE_NAMES or _DEVICE_PATTERN.fullmatch(text):
        return text
    raise FinetuningError(
        f"{text!r} is neither one of {', '.join(_DEVICE_NAMES)}, a device such as cuda:0, nor a JSON object",
        "invalid_request",
        "--device_map",
    )


def merge_adapter(
    basemodel: str,
    peftmodel: str,
    outpath: str | Path,
    *,
    tokenizer: str | None = None,
    device_map: str | dict[str, Any] = "auto",
    overwrite: bool = False,
    events: EventWriter | None = None,
) -> MergeResult:
    """Load ``basemodel`` (dtype auto), attach ``peftmodel``, merge safely and save model and tokenizer to
    ``outpath`` (safetensors). The tokenizer comes from ``tokenizer``, else from the adapter folder."""
    from finetuning.config.model import ModelArgs

    device = parse_device_map(device_map)
    check_model_reference(basemodel, "basemodel")
    _check_adapter(peftmodel)
    if tokenizer is not None:
        check_model_reference(tokenizer, "--tokenizer")
    out = Path(outpath).expanduser()
    _check_outpath(out, [basemodel, peftmodel, tokenizer], overwrite=overwrite)
    _check_mergeable(peftmodel)

    _phase(events, "loading_tokenizer")
    tok = _load_tokenizer(tokenizer, peftmodel, basemodel)

    base_size = _vocab_size(basemodel, "basemodel")
    needed = _adapter_vocab_size(peftmodel, len(tok), base_size)
    base, used_grown = basemodel, False
    if needed > base_size:
        grown = find_grown_base(peftmodel, basemodel, needed)
        if grown is not None:
            base, used_grown = str(grown), True
            logger.info(
                "the adapter was trained on a grown vocabulary (%d -> %d tokens): using the grown base saved by "
                "the SFT run, %s, instead of %s",
                base_size,
                needed,
                grown,
                basemodel,
            )

    _phase(events, "loading_model")
    model = load_model(base, ModelArgs(dtype="auto"), device_map=device, param="basemodel")
    vocab_grew = needed > base_size
    if vocab_grew and not used_grown:
        # PEFT cannot load the adapter's larger embeddings onto a smaller base (size mismatch): grow it first
        logger.info("resizing the base's embeddings from %d to %d rows for the adapter", base_size, needed)
        model.resize_token_embeddings(needed, mean_resizing=True)

    _phase(events, "merging")
    merged = _merge(model, peftmodel)
    _sync_generation_eos(merged, tok)

    _phase(events, "saving")
    _save(merged, tok, out)
    vocab_size = int(cast("torch.Tensor", merged.get_input_embeddings().weight).shape[0])
    logger.info("merged %s into %s: saved to %s", peftmodel, base, out)
    return MergeResult(out, base, vocab_size, vocab_grew, used_grown)


def _public_base(used: str, basemodel: str, peftmodel: str, local: Any) -> str:
    """The base the merge used, named as the user named it: a bucket URI rather than the local copy of one."""
    for given in (basemodel, peftmodel):
        if not is_remote(given):
            continue
        if used == local(given):
            return given
        if Path(used) == Path(local(given)).parent / NEW_BASEMODEL_NAME:
            return f"{given.rstrip('/').rpartition('/')[0]}/{NEW_BASEMODEL_NAME}"
    return used


def find_grown_base(peftmodel: str, basemodel: str, vocab_size: int) -> Path | None:
    """The grown base the SFT run saved beside the adapter (``<output_dir>/checkpoint-new-basemodel``), or beside
    the given base, if it has exactly ``vocab_size`` tokens."""
    candidates = [Path(ref).expanduser().parent / NEW_BASEMODEL_NAME for ref in (peftmodel, basemodel)]
    for candidate in dict.fromkeys(candidates):
        if not (candidate / "config.json").is_file():
            continue
        size = _vocab_size(str(candidate), "basemodel")
        if size == vocab_size:
            return candidate
        logger.warning("%s has %d tokens, the adapter needs %d: not using it as the base", candidate, size, vocab_size)
    return None


def _phase(events: EventWriter | None, phase: str) -> None:
    if events is not None:
        events.phase(phase)


def _check_adapter(peftmodel: str) -> None:
    check_model_reference(peftmodel, "peftmodel")
    folder = Path(peftmodel).expanduser()
    if looks_local(peftmodel) and not (folder / ADAPTER_CONFIG_FILE).is_file():
        raise ModelNotFoundError(
            f"'{peftmodel}' has no {ADAPTER_CONFIG_FILE}: give the folder of a PEFT adapter "
            "(e.g. <output_dir>/checkpoint-final)",
            "peftmodel",
        )


def _check_mergeable(peftmodel: str) -> None:
    """Prompt-learning adapters (prompt/prefix tuning...) add virtual tokens rather than weight deltas."""
    from peft import PeftConfig

    try:
        config = PeftConfig.from_pretrained(peftmodel)
    except Exception as exc:  # a missing hub id, an unreadable config
        raise ModelNotFoundError(f"cannot read the adapter config of '{peftmodel}': {exc}", "peftmodel") from exc
    if config.is_prompt_learning:
        raise FinetuningError(
            f"{config.peft_type} adapters cannot be merged into the weights; use the adapter with its base instead",
            "invalid_request",
            "peftmodel",
        )


def _check_outpath(out: Path, inputs: Sequence[str | None], *, overwrite: bool) -> None:
    resolved = out.resolve()
    for reference in inputs:
        if reference and looks_local(reference) and Path(reference).expanduser().resolve() == resolved:
            raise FinetuningError(
                f"'{out}' is one of the inputs ({reference}); save the merged model elsewhere",
                "invalid_request",
                "outpath",
            )
    if out.exists() and not out.is_dir():
        raise FinetuningError(f"'{out}' exists and is not a folder", "invalid_request", "outpath")
    found = _model_files(out)
    if found and not overwrite:
        raise FinetuningError(
            f"'{out}' already contains a model ({', '.join(sorted(p.name for p in found)[:4])}); "
            "choose another folder or pass --overwrite",
            "invalid_request",
            "outpath",
        )


def _model_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted({path for pattern in _MODEL_FILE_PATTERNS for path in folder.glob(pattern) if path.is_file()})


def _load_tokenizer(tokenizer: str | None, peftmodel: str, basemodel: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    reference, param = tokenizer, "--tokenizer"
    if reference is None:
        reference, param = peftmodel, "peftmodel"
        folder = Path(peftmodel).expanduser()
        if looks_local(peftmodel) and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            logger.warning("no tokenizer in the adapter folder %s: saving the base model's tokenizer", peftmodel)
            reference, param = basemodel, "basemodel"
    try:
        return AutoTokenizer.from_pretrained(reference, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"could not load a tokenizer from '{reference}': {exc}", param) from exc


def _vocab_size(reference: str, param: str) -> int:
    size = config_vocab_size(reference)
    if size is None:
        raise ModelNotFoundError(f"could not read the model config (vocab_size) of '{reference}'", param)
    return size


def _adapter_vocab_size(peftmodel: str, tokenizer_size: int, base_size: int) -> int:
    """The embedding rows the adapter needs: the rows of the embeddings it saved, else the tokenizer's length
    when that is larger than the base (its new tokens need rows)."""
    adapter_file = Path(peftmodel).expanduser() / ADAPTER_FILE
    rows = saved_embedding_rows(read_safetensors_header(adapter_file)) if adapter_file.is_file() else {}
    if rows:
        needed = max(rows.values())
        if needed < base_size:
            raise FinetuningError(
                f"the adapter's saved embeddings have {needed} rows, but basemodel has {base_size}: "
                "was it trained on another base?",
                "invalid_request",
                "basemodel",
            )
        if tokenizer_size > needed:
            logger.warning(
                "the tokenizer has %d tokens but the adapter's embeddings only %d rows", tokenizer_size, needed
            )
        return needed
    if tokenizer_size > base_size:
        logger.warning(
            "the tokenizer (%d tokens) outgrew the base (%d), but the adapter saved no embeddings: the new "
            "tokens get untrained rows; pass the grown base (%s) as basemodel if the training run saved one",
            tokenizer_size,
            base_size,
            NEW_BASEMODEL_NAME,
        )
        return tokenizer_size
    return base_size


def _merge(model: PreTrainedModel, peftmodel: str) -> PreTrainedModel:
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, peftmodel)
    except RuntimeError as exc:  # "size mismatch for ...": the adapter belongs to another base
        raise FinetuningError(
            f"the adapter does not fit the base model: {str(exc).splitlines()[0]}", "invalid_request", "peftmodel"
        ) from exc
    try:
        return peft_model.merge_and_unload(safe_merge=True)
    except ValueError as exc:  # safe_merge found NaNs: a broken adapter
        raise FinetuningError(f"merging failed: {exc}", "invalid_request", "peftmodel") from exc


def _sync_generation_eos(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make generation stop at the tokenizer's EOS (an SFT tokenizer's is the template's end of turn)."""
    config = model.generation_config
    eos_id = tokenizer.eos_token_id
    if config is None or eos_id is None:
        return
    current = config.eos_token_id
    ids = [] if current is None else [current] if isinstance(current, int) else list(current)
    if eos_id not in ids:
        config.eos_token_id = [eos_id, *ids] if ids else eos_id
        logger.info("generation stops at %r (id %d) as well", tokenizer.eos_token, eos_id)
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Save into a fresh folder beside ``out``, then move the files in: a failed save leaves ``out`` as it was,
    and weights of an overwritten model (other shard names) do not linger."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.merging-", dir=out.parent))
    try:
        model.save_pretrained(staging)  # safetensors: transformers 5 writes nothing else
        tokenizer.save_pretrained(staging)
        out.mkdir(exist_ok=True)
        for stale in _model_files(out):
            stale.unlink()
        for path in staging.iterdir():
            target = out / path.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
