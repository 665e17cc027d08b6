"""Write ``tests/assets/legacy-fields.json``: the fields of the libraries the original engine ran on, with their
literal defaults, read from the released wheels (not imported: they need other versions of torch and huggingface_hub).

    pip download --no-deps -d /tmp/wheels transformers==4.57.3 trl==0.13.0
    pip download --no-deps -d /tmp/wheels transformers==4.49.0
    python scripts/legacy_fields.py /tmp/wheels

``tests/unit/test_legacy_config.py`` checks that every one of them is accepted today or has a rule in
``finetuning.config.legacy``.
"""

from __future__ import annotations

import ast
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "assets" / "legacy-fields.json"
SOURCES = (
    ("transformers-4.57.3", "transformers/training_args.py", "TrainingArguments"),
    ("transformers-4.49.0", "transformers/training_args.py", "TrainingArguments"),
    ("trl-0.13.0", "trl/trainer/dpo_config.py", "DPOConfig"),
)
_NOT_LITERAL = object()


def _default(value: ast.expr | None) -> Any:
    if value is None:
        return _NOT_LITERAL
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
        for keyword in value.keywords:
            if keyword.arg == "default":
                return _default(keyword.value)
        return _NOT_LITERAL  # a default_factory
    try:
        return ast.literal_eval(value)
    except ValueError:
        return _NOT_LITERAL


def dataclass_fields(source: str, class_name: str) -> dict[str, Any]:
    """name -> literal default (None when the default is no literal) of a dataclass's own fields."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            fields: dict[str, Any] = {}
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    name = statement.target.id
                    if name.startswith("_"):
                        continue
                    default = _default(statement.value)
                    fields[name] = {
                        "default": None if default is _NOT_LITERAL else default,
                        "literal": default is not _NOT_LITERAL,
                    }
            return fields
    raise LookupError(f"no class {class_name}")


def main(wheel_dir: str) -> None:
    result: dict[str, dict[str, Any]] = {}
    for package, path, class_name in SOURCES:
        wheel = next(Path(wheel_dir).glob(f"{package}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read(path).decode("utf-8")
        result[f"{package} {class_name}"] = dataclass_fields(source, class_name)
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
