"""``finetuning upgrade-config cfg.yaml ...``: configs written for the original engine, rewritten in today's spelling.

The engine reads such configs unchanged (:mod:`finetuning.config.legacy` translates them at validation, with a
warning per field); this tool writes the translation down, so that a team can migrate a shelf of recipes in one pass
and the warnings stop. The YAML goes through a round-trip parser: comments, key order, quoting and indentation
stay as the user wrote them; only the retired fields change.
"""

from __future__ import annotations

import argparse
import difflib
import io
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from finetuning.config import CONFIG_CLASSES, ConfigError
from finetuning.config.legacy import DPO_ARGS, ConfigKind, Upgrade, upgrade_document

EXIT_OK = 0
EXIT_CHANGES = 1  # --check: some file would change
EXIT_INVALID = 2

# training_args keys only a preference config has: they tell a DPO config without `method` from an SFT one
_PREFERENCE_KEYS = frozenset({"beta", "loss_type", "label_smoothing", "max_prompt_length", *DPO_ARGS})


def detect_kind(doc: Mapping[str, Any]) -> ConfigKind | None:
    """sft, dpo or generate, from ``method`` or the sections present; None when the file does not say."""
    method = doc.get("method")
    if method in ("sft", "dpo"):
        return "sft" if method == "sft" else "dpo"
    if "model_conf" in doc or "prompt_conf" in doc:
        return "generate"
    if "sft_args" in doc:
        return "sft"
    training_args = doc.get("training_args")
    if isinstance(training_args, Mapping) and _PREFERENCE_KEYS & set(training_args):
        return "dpo"
    return None


@dataclass
class UpgradeResult:
    """One file upgraded: the new text, what changed, and what validation still refuses."""

    text: str
    kind: ConfigKind
    notes: list[Upgrade]
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.notes)


def _round_trip_yaml(text: str) -> tuple[Any, Any]:
    """A ruamel round-trip loader/dumper set to the file's own indentation, and the document."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence_indent, dash_offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one
    yaml.indent(mapping=_mapping_indent(text), sequence=sequence_indent or 2, offset=dash_offset or 0)
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml, yaml.load(text)


def _mapping_indent(text: str) -> int:
    """The indentation of the first nested key (ruamel guesses only the sequences' own)."""
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if indent and stripped[:1] not in ("", "#", "-") and ":" in stripped:
            return indent
    return 2


def _dump(yaml: Any, doc: Any) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _keep_untouched_lines(original: str, before: str, after: str) -> str:
    """``after`` with every line the upgrade did not touch taken from ``original`` as the user wrote it.

    ``before`` and ``after`` are the dumps of the document before and after the upgrade: where they agree, the line
    is the user's (ruamel would otherwise normalise e.g. ``False`` to ``false`` and re-space flow maps). This holds
    only when the dump kept the original's line structure; otherwise ``after`` is returned as it is.
    """
    lines = original.splitlines(keepends=True)
    head = 0
    while head < len(lines) and not lines[head].strip():
        head += 1  # ruamel drops leading blank lines
    body = lines[head:]
    before_lines, after_lines = before.splitlines(keepends=True), after.splitlines(keepends=True)
    if len(before_lines) != len(body):
        return after
    out = lines[:head]
    matcher = difflib.SequenceMatcher(None, before_lines, after_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        out.extend(body[i1:i2] if tag == "equal" else after_lines[j1:j2])
    text = "".join(out)
    # ruamel may add a blank line after a comment at the very end
    return text.rstrip("\n") + "\n" if original.endswith("\n") and not original.endswith("\n\n") else text


def upgrade_text(text: str, kind: ConfigKind | None = None) -> UpgradeResult:
    """``text`` (a YAML config) in today's spelling; raises ValueError when it is no config or its kind is unclear."""
    yaml, doc = _round_trip_yaml(text)
    if not isinstance(doc, MutableMapping):
        raise ValueError("the file is not a mapping of config sections")
    kind = kind or detect_kind(doc)
    if kind is None:
        raise ValueError("cannot tell whether this is an sft, dpo or generate config: give --kind")
    before = _dump(yaml, doc)
    notes = upgrade_document(kind, doc)
    upgraded = _keep_untouched_lines(text, before, _dump(yaml, doc)) if notes else text
    result = UpgradeResult(upgraded, kind, notes)
    try:
        CONFIG_CLASSES[kind].from_yaml(upgraded)
    except ConfigError as exc:
        result.problems = [str(issue) for issue in exc.issues]
    return result


def make_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="finetuning upgrade-config")
    parser.description = (
        "Rewrite configs of the original engine (transformers 4 / TRL 0 field names) in today's spelling, keeping "
        "comments and key order. One file: the result goes to standard output. What changed, and anything still "
        "refused, goes to standard error."
    )
    parser.add_argument("configs", nargs="+", type=Path, help="YAML config files")
    parser.add_argument("--kind", choices=get_args(ConfigKind), help="the config's kind when the file does not say")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--in-place", "-i", action="store_true", help="rewrite each file that is valid once upgraded")
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    return parser


def run(args: argparse.Namespace) -> int:
    if len(args.configs) > 1 and not (args.in_place or args.check):
        print("error: give --in-place or --check to upgrade several files", file=sys.stderr)
        return EXIT_INVALID
    status = EXIT_OK
    for path in args.configs:
        try:
            result = upgrade_text(path.read_text(encoding="utf-8"), args.kind)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        except Exception as exc:  # ruamel's parser errors: the file is not YAML
            print(f"{path}: error: not valid YAML: {exc}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        for note in result.notes:
            print(f"{path}: {note}", file=sys.stderr)
        for problem in result.problems:
            print(f"{path}: still refused: {problem}", file=sys.stderr)
        if result.problems:
            status = EXIT_INVALID
        elif args.check:
            status = max(status, EXIT_CHANGES if result.changed else EXIT_OK)
        elif args.in_place:
            if result.changed:
                path.write_text(result.text, encoding="utf-8")
            print(
                f"{path}: {len(result.notes)} field(s) upgraded" if result.changed else f"{path}: up to date",
                file=sys.stderr,
            )
        if not (args.in_place or args.check):
            sys.stdout.write(result.text)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
