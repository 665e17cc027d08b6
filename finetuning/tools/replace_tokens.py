"""``replace_tokens``: copy a tokenizer and rename some of its added (special) tokens, keeping their ids.

Typical use: give a base model's unused reserved tokens the names a chat template needs
(``--from '<|reserved_special_token_0|>' --to '<|im_start|>'``), so that training needs no new embeddings.

The files are rewritten structurally, not with text substitution: JSON is parsed and a value is replaced only where
it is a token string equal to a ``--from`` token (added tokens, the model's vocabulary, the post-processor, the
special-token fields), so tokens with ``/``, quotes or regex characters are safe and a token that merely contains
another is left alone. Chat templates are text, and there the literal token strings are replaced.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetuning.errors import FinetuningError, ModelNotFoundError
from finetuning.tools.common import add_common_arguments, run_with_events, setup_logging

if TYPE_CHECKING:
    from finetuning.events import EventWriter

logger = logging.getLogger(__name__)

TOOL_NAME = "replace_tokens"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# A tokenizer folder is often a model folder: its weights are not the tokenizer's and are not copied.
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.h5", "*.msgpack", "*.onnx", "*.ckpt")
# tokenizer_config.json keys whose values are token strings (or AddedToken dicts, lists of them).
_TOKEN_LIST_KEYS = ("additional_special_tokens", "extra_special_tokens")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL_NAME,
        description="Copy a tokenizer and rename special tokens in it; each renamed token keeps its id.",
    )
    parser.add_argument("tokenizer", type=Path, help="Path to the tokenizer folder to copy")
    parser.add_argument("out", type=Path, help="Where to write the modified tokenizer (must not exist yet)")
    parser.add_argument(
        "--from", dest="from_tokens", action="append", default=[], metavar="TOKEN", help="A token to replace"
    )
    parser.add_argument(
        "--to",
        dest="to_tokens",
        action="append",
        default=[],
        metavar="TOKEN",
        help="Its replacement; the n-th --to replaces the n-th --from",
    )
    add_common_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not args.from_tokens:
        parser.error("give at least one --from TOKEN --to TOKEN pair")
    if len(args.from_tokens) != len(args.to_tokens):
        parser.error(
            f"--from and --to pair up in order: got {len(args.from_tokens)} --from and {len(args.to_tokens)} --to"
        )
    setup_logging(args.logging_level)
    pairs = list(zip(args.from_tokens, args.to_tokens, strict=True))

    def body(events: EventWriter) -> dict[str, Any]:
        events.run_started(
            TOOL_NAME,
            config={"tokenizer": str(args.tokenizer), "out": str(args.out), "replacements": [list(p) for p in pairs]},
        )
        events.phase("converting")
        result = replace_tokens(args.tokenizer, args.out, pairs)
        events.phase("done")
        return {
            "artifacts": {"tokenizer_path": str(args.out)},
            "metrics": {
                "replaced": len(pairs),
                "token_ids": result.token_ids,
                "files_rewritten": result.files_rewritten,
            },
        }

    return run_with_events(args, body)


@dataclass(frozen=True)
class ReplaceResult:
    token_ids: dict[str, int]  # new token -> its id (the old token's)
    files_rewritten: list[str]


def replace_tokens(tokenizer: str | Path, out: str | Path, pairs: Sequence[tuple[str, str]]) -> ReplaceResult:
    """Copy the tokenizer folder ``tokenizer`` to ``out`` with each ``(old, new)`` token renamed.

    Every ``old`` must be an added token of the tokenizer, and no ``new`` may exist in it already (two tokens
    would share a text). The copy is checked by loading it with ``AutoTokenizer``: each ``new`` must encode to the
    single id ``old`` had. ``out`` appears only when everything succeeded.
    """
    src, dst = Path(tokenizer).expanduser(), Path(out).expanduser()
    mapping = _check_pairs(pairs)
    if not src.is_dir():
        raise ModelNotFoundError(f"no tokenizer folder at '{src}'", "tokenizer")
    present = [name for name in TOKENIZER_FILES if (src / name).is_file()]
    if not present:
        raise ModelNotFoundError(f"none of the tokenizer files {', '.join(TOKENIZER_FILES)} is in '{src}'", "tokenizer")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        # inside the source, the copy would contain itself
        raise FinetuningError("must be outside the tokenizer folder (the original is kept)", "invalid_request", "out")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FinetuningError(f"'{dst}' already exists; give a new folder", "invalid_request", "out")

    ids = _check_tokens(src, mapping)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.replacing-", dir=dst.parent))
    try:
        copy = staging / "tokenizer"
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns(*_WEIGHT_PATTERNS))
        rewritten = rewrite_tokenizer_files(copy, mapping)
        _verify(copy, mapping, ids)
        if dst.exists():
            dst.rmdir()  # empty, checked above
        os.replace(copy, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old, new in mapping.items():
        logger.info("%r -> %r (id %d)", old, new, ids[old])
    logger.info("rewrote %s in %s", ", ".join(rewritten), dst)
    return ReplaceResult({new: ids[old] for old, new in mapping.items()}, rewritten)


def rewrite_tokenizer_files(folder: Path, mapping: Mapping[str, str]) -> list[str]:
    """Rename the tokens in ``mapping`` in every tokenizer file of ``folder``, in place; return the files changed."""
    swap_text = _substring_replacer(mapping)
    rewriters: dict[str, Callable[[Any], Any]] = {
        "tokenizer.json": lambda data: _rewrite_tokenizer_json(data, mapping),
        "tokenizer_config.json": lambda data: _rewrite_tokenizer_config(data, mapping, swap_text),
        "special_tokens_map.json": lambda data: _swap_values(data, mapping),
        "added_tokens.json": lambda data: _swap_keys(data, mapping),
        "vocab.json": lambda data: _swap_keys(data, mapping) if isinstance(data, dict) else data,
        "chat_template.json": lambda data: _rewrite_templates(data, swap_text),
    }
    changed = []
    for name, rewrite in rewriters.items():
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        new = rewrite(data)
        if new != data:
            path.write_text(json.dumps(new, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(name)
    templates = [folder / "chat_template.jinja", *sorted((folder / "additional_chat_templates").glob("*.jinja"))]
    for path in templates:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            new_text = swap_text(text)
            if new_text != text:
                path.write_text(new_text, encoding="utf-8")
                changed.append(str(path.relative_to(folder)))
    if (folder / "tokenizer.model").is_file() and not (folder / "tokenizer.json").is_file():
        logger.warning("tokenizer.model (sentencepiece) is binary and was not rewritten; its pieces keep their names")
    return changed


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The replacements as one mapping, applied together: ``a -> b, b -> a`` swaps, it does not chain."""
    if not pairs:
        raise FinetuningError("give at least one --from/--to pair", "invalid_request", "--from")
    mapping: dict[str, str] = {}
    for old, new in pairs:
        if not old or not new:
            raise FinetuningError("tokens must not be empty", "invalid_request", "--from" if not old else "--to")
        if old == new:
            raise FinetuningError(f"{old!r} is replaced by itself", "invalid_request", "--to")
        if old in mapping:
            raise FinetuningError(f"{old!r} is given twice", "invalid_request", "--from")
        mapping[old] = new
    targets = list(mapping.values())
    duplicates = sorted({t for t in targets if targets.count(t) > 1})
    if duplicates:
        raise FinetuningError(
            f"{', '.join(map(repr, duplicates))} would replace several tokens", "invalid_request", "--to"
        )
    return mapping


def _check_tokens(folder: Path, mapping: Mapping[str, str]) -> dict[str, int]:
    """The id of each token to replace; refuses tokens that are not added tokens and targets that exist."""
    added, vocab, merges = _known_tokens(folder)
    ids = {}
    for old in mapping:
        if old in added:
            ids[old] = added[old]
        elif old in vocab:
            raise FinetuningError(
                f"{old!r} is an ordinary vocabulary token, not an added (special) token: it is built from merges "
                "and split by the pre-tokenizer, so a renamed copy would not encode as one token",
                "invalid_request",
                "--from",
            )
        else:
            raise FinetuningError(f"{old!r} is not a token of this tokenizer", "invalid_request", "--from")
        if old in merges:
            raise FinetuningError(
                f"{old!r} takes part in the BPE merges; renaming it would break them", "invalid_request", "--from"
            )
    for new in mapping.values():
        existing = added.get(new, vocab.get(new))
        if existing is not None and new not in mapping:
            raise FinetuningError(
                f"{new!r} already exists in the vocabulary (id {existing}): renaming onto it would make two "
                "tokens with the same text",
                "invalid_request",
                "--to",
            )
    return ids


def _known_tokens(folder: Path) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """Added tokens (text -> id), the model's vocabulary (text -> id) and the pieces used in BPE merges."""
    added: dict[str, int] = {}
    vocab: dict[str, int] = {}
    merges: set[str] = set()
    tokenizer_json = _load_json(folder / "tokenizer.json")
    if isinstance(tokenizer_json, dict):
        for entry in tokenizer_json.get("added_tokens") or []:
            added[entry["content"]] = int(entry["id"])
        model = tokenizer_json.get("model") or {}
        model_vocab = model.get("vocab")
        if isinstance(model_vocab, dict):
            vocab.update({str(k): int(v) for k, v in model_vocab.items()})
        elif isinstance(model_vocab, list):  # Unigram: [piece, score] in id order
            vocab.update({str(entry[0]): i for i, entry in enumerate(model_vocab)})
        for merge in model.get("merges") or []:
            merges.update(merge.split(" ") if isinstance(merge, str) else merge)
    config = _load_json(folder / "tokenizer_config.json")
    if isinstance(config, dict):
        for token_id, entry in (config.get("added_tokens_decoder") or {}).items():
            content = entry.get("content") if isinstance(entry, dict) else None
            if content is not None:
                added.setdefault(content, int(token_id))
    added_json = _load_json(folder / "added_tokens.json")
    if isinstance(added_json, dict):
        for content, token_id in added_json.items():
            added.setdefault(content, int(token_id))
    vocab_json = _load_json(folder / "vocab.json")
    if isinstance(vocab_json, dict):
        for content, token_id in vocab_json.items():
            if isinstance(token_id, int):
                vocab.setdefault(content, token_id)
    return added, vocab, merges


def _rewrite_tokenizer_json(data: Any, mapping: Mapping[str, str]) -> Any:
    if not isinstance(data, dict):
        return data
    data = dict(data)
    data["added_tokens"] = [_swap_added_token(entry, mapping) for entry in data.get("added_tokens") or []]
    model = data.get("model")
    if isinstance(model, dict):
        model = dict(model)
        if isinstance(model.get("vocab"), dict):
            model["vocab"] = _swap_keys(model["vocab"], mapping)
        elif isinstance(model.get("vocab"), list):
            model["vocab"] = [[mapping.get(entry[0], entry[0]), *entry[1:]] for entry in model["vocab"]]
        if isinstance(model.get("unk_token"), str):
            model["unk_token"] = mapping.get(model["unk_token"], model["unk_token"])
        data["model"] = model
    if data.get("post_processor") is not None:
        data["post_processor"] = _swap_post_processor(data["post_processor"], mapping)
    return data


def _rewrite_tokenizer_config(data: Any, mapping: Mapping[str, str], swap_text: Callable[[str], str]) -> Any:
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key == "chat_template":
            out[key] = _rewrite_templates(value, swap_text)
        elif key == "added_tokens_decoder" and isinstance(value, dict):
            out[key] = {token_id: _swap_added_token(entry, mapping) for token_id, entry in value.items()}
        elif key.endswith("_token") or key in _TOKEN_LIST_KEYS:
            # bos_token, eos_token, pad_token... are a string or an AddedToken dict; the lists hold either
            out[key] = _swap_values(value, mapping)
        else:
            out[key] = value
    return out


def _rewrite_templates(value: Any, swap_text: Callable[[str], str]) -> Any:
    """A chat template is a string, a list of ``{"name", "template"}`` or a ``{"chat_template": ...}`` file."""
    if isinstance(value, str):
        return swap_text(value)
    if isinstance(value, list):
        return [{**t, "template": swap_text(t["template"])} if isinstance(t, dict) else t for t in value]
    if isinstance(value, dict) and "chat_template" in value:
        return {**value, "chat_template": _rewrite_templates(value["chat_template"], swap_text)}
    return value


def _swap_added_token(entry: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return {**entry, "content": mapping.get(entry["content"], entry["content"])}
    return entry


def _swap_values(value: Any, mapping: Mapping[str, str]) -> Any:
    """Replace every string in a JSON value that equals a token to rename (dict keys are left alone)."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_swap_values(item, mapping) for item in value]
    if isinstance(value, dict):
        return {key: _swap_values(item, mapping) for key, item in value.items()}
    return value


def _swap_keys(value: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Rename the keys that are tokens to rename, keeping the order (vocab and added_tokens.json map text -> id)."""
    return {mapping.get(key, key): item for key, item in value.items()}


def _swap_post_processor(value: Any, mapping: Mapping[str, str]) -> Any:
    """Rename tokens where post-processors name them: TemplateProcessing's ``SpecialToken.id`` and its
    ``special_tokens`` (keys, ``id``, ``tokens``), Bert/Roberta's ``sep``/``cls`` pairs; ``Sequence`` processors
    nest others. ``{"Sequence": {"id": "A"}}`` names an input sequence, not a token, and is left alone."""
    if isinstance(value, list):
        return [_swap_post_processor(item, mapping) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "special_tokens" and isinstance(item, dict):
            out[key] = {mapping.get(k, k): _swap_post_processor(v, mapping) for k, v in item.items()}
        elif key == "Sequence":
            out[key] = item
        elif key in ("id", "tokens", "sep", "cls"):
            out[key] = _swap_values(item, mapping)
        else:
            out[key] = _swap_post_processor(item, mapping)
    return out


def _substring_replacer(mapping: Mapping[str, str]) -> Callable[[str], str]:
    """Replace all tokens in one pass (so ``a -> b, b -> a`` swaps); longer tokens win where one contains another.
    The tokens are escaped: they are literal text, not patterns."""
    pattern = re.compile("|".join(re.escape(old) for old in sorted(mapping, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda match: mapping[match.group(0)], text)


def _verify(folder: Path, mapping: Mapping[str, str], ids: Mapping[str, int]) -> None:
    """Load the rewritten tokenizer: each new token must be one token with the old id, and the old text gone."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except Exception as exc:  # the copy must load like the original did; say why it does not
        raise FinetuningError(
            f"the rewritten tokenizer does not load: {type(exc).__name__}: {exc}", "invalid_request", "tokenizer"
        ) from exc
    vocab = tokenizer.get_vocab()
    for old, new in mapping.items():
        encoded = tokenizer.encode(new, add_special_tokens=False)
        if encoded != [ids[old]] or vocab.get(new) != ids[old]:
            raise FinetuningError(
                f"after renaming, {new!r} encodes to {encoded} instead of [{ids[old]}]: this tokenizer keeps the "
                "token somewhere this tool does not rewrite",
                "invalid_request",
                "tokenizer",
            )
        if old not in mapping.values() and old in vocab:
            raise FinetuningError(f"after renaming, {old!r} is still a token", "invalid_request", "tokenizer")


def _load_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FinetuningError(f"'{path}' is not valid JSON: {exc}", "invalid_request", "tokenizer") from exc


if __name__ == "__main__":
    sys.exit(main())
