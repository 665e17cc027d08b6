"""Generate the static pydantic mirror of ``transformers.TrainingArguments``.

The API validates jobs without importing torch or transformers, so the ``training_args`` schema is generated code
(``finetuning/config/hf_training_args.py``), written from the installed transformers. A test fails when the file no
longer matches the installed version; regenerate it with::

    python -m finetuning.config.codegen
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

HERE = Path(__file__).parent

# Fields the engine computes or owns elsewhere; rejected with a message in the config layer.
EXCLUDED_FIELDS = frozenset(
    {
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "resume_from_checkpoint",
        "local_rank",
        # DPO: the model comes from run_conf, the worker count from --num-preprocess-workers
        "model_init_kwargs",
        "trust_remote_code",
        "dataset_num_proc",
    }
)

# Defaults the engine sets differently from transformers (None = resolved at run time from settings).
ENGINE_DEFAULTS: dict[str, Any] = {"output_dir": None, "max_length": 2048}

# Annotations wider than the dataclass's own, where the library coerces the narrower form itself.
TYPE_OVERRIDES: dict[str, str] = {"loss_type": "str | list[str]"}

# Fields that name files or folders: their ``str`` member becomes a path type of finetuning.config.paths, so the
# service finds and confines them like every other path field (the path types' own docs say what each means).
PATH_TYPES: dict[str, str] = {
    "output_dir": "OutputDir",
    "deepspeed": "ConfigFile",
    "fsdp_config": "ConfigFile",
    "accelerator_config": "ConfigFile",
}

# Descriptions rewritten where the engine widens a field's meaning.
DESCRIPTION_OVERRIDES: dict[str, str] = {
    "loss_type": "The preference loss. Any DPO loss of TRL (sigmoid, hinge, ipo, exo_pair, nca_pair, robust, "
    "bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm; a list combines them "
    "with loss_weights), or one of the related methods run by their own TRL trainer: kto or apo_zero_unpaired "
    "(KTO; paired data is unpaired, or give UnpairedPreference records), orpo (ORPO), simpo or cpo (CPO).",
}


def _annotation(tp: Any) -> str:
    if tp is type(None) or tp is None:
        return "None"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "Literal[" + ", ".join(repr(m.value) for m in tp) + "]"
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = list(get_args(tp))
        if any(isinstance(m, type) and issubclass(m, enum.Enum) for m in members):
            members = [m for m in members if m is not str]  # `Enum | str`: the enum's values are the valid strings
        rendered: list[str] = []
        for member in members:
            text = _annotation(member)
            if text not in rendered:
                rendered.append(text)
        # keep None last for readability
        rendered.sort(key=lambda t: t == "None")
        return " | ".join(rendered)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in get_args(tp)) + "]"
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list[{_annotation(args[0])}]" if args else "list[Any]"
    if origin is dict or tp is dict:
        args = get_args(tp)
        return f"dict[{_annotation(args[0])}, {_annotation(args[1])}]" if args else "dict[str, Any]"
    if tp is typing.Any:
        return "Any"
    if tp in (int, float, bool, str):
        return tp.__name__
    # library objects (e.g. accelerate's ParallelismConfig) are given as their keyword dict
    return "dict[str, Any]"


def _default(field: dataclasses.Field[Any]) -> str:
    if field.name in ENGINE_DEFAULTS:
        return repr(ENGINE_DEFAULTS[field.name])
    if field.default is not dataclasses.MISSING:
        value = field.default
        return repr(value.value if isinstance(value, enum.Enum) else value)
    if field.default_factory is not dataclasses.MISSING:
        return f"default_factory=lambda: {field.default_factory()!r}"
    raise ValueError(f"field {field.name} has no default")


def _default_value(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _render_fields(
    cls: type,
    skip: set[str],
    *,
    only: set[str] | None = None,
    help_prefix: str = "",
    retyped: frozenset[str] = frozenset(),
) -> list[str]:
    lines: list[str] = []
    for field in dataclasses.fields(cls):
        if not field.init or field.name in EXCLUDED_FIELDS or field.name in skip or field.name.startswith("_"):
            continue
        if only is not None and field.name not in only:
            continue
        help_text = DESCRIPTION_OVERRIDES.get(field.name) or help_prefix + " ".join(
            str(field.metadata.get("help", "")).split()
        )
        default = _default(field)
        default_arg = default if default.startswith("default_factory=") else f"default={default}"
        annotation = TYPE_OVERRIDES.get(field.name) or _annotation(field.type)
        if field.name in PATH_TYPES:
            annotation = _path_annotation(field.name, annotation)
        # a subclass may widen a base field's type (e.g. TRL's bf16: bool | None); pydantic allows it, mypy not
        ignore = "  # type: ignore[assignment]" if field.name in retyped else ""
        lines.append(f"    {field.name}: {annotation} = Field({ignore}")
        lines.append(f"        {default_arg},")
        if help_text:
            lines.append(f"        description={help_text!r},")
        lines.append("    )")
    return lines


def _path_annotation(name: str, annotation: str) -> str:
    members = annotation.split(" | ")
    if "str" not in members:
        raise ValueError(f"{name} ({annotation}) no longer takes a str: update PATH_TYPES")
    return " | ".join(PATH_TYPES[name] if member == "str" else member for member in members)


def _path_imports(lines: list[str]) -> list[str]:
    """The import of the path types the rendered fields use (none when they use none)."""
    words = {word for line in lines if " = Field(" in line for word in line.split(" = Field(", 1)[0].split()}
    used = sorted(set(PATH_TYPES.values()) & words)
    return [f"from finetuning.config.paths import {', '.join(used)}"] if used else []


def _header(source: str) -> list[str]:
    return [
        f'"""Generated by ``python -m finetuning.config.codegen`` from {source}.',
        "",
        "Do not edit by hand; regenerate after upgrading the library.",
        '"""',
        "",
        "from typing import Any, Literal",
        "",
        "from pydantic import Field",
        "",
    ]


def render_training_args() -> str:
    """The mirror of the installed ``transformers.TrainingArguments``."""
    import transformers

    fields = _render_fields(transformers.TrainingArguments, skip=set())
    lines = _header(f"transformers {transformers.__version__}")
    lines += [
        "from finetuning.config.base import StrictModel",
        *_path_imports(fields),
        "",
        f"TRANSFORMERS_VERSION = {transformers.__version__!r}",
        "",
        "",
        "class HFTrainingArguments(StrictModel):",
        '    """Fields of ``transformers.TrainingArguments``; batch sizes and accumulation are computed."""',
        "",
    ]
    lines += fields
    return "\n".join(lines) + "\n"


# Trainers of the preference family, chosen by ``loss_type``; their own fields join the DPO mirror.
PREFERENCE_EXTRA_FIELDS = {
    "KTOConfig": ("trl", {"desirable_weight", "undesirable_weight"}),
    "CPOConfig": ("trl.experimental.cpo", {"cpo_alpha", "simpo_gamma", "alpha", "max_completion_length"}),
}


def render_dpo_args() -> str:
    """TRL's ``DPOConfig`` as a pydantic model (its changed defaults included), plus the few fields of the related
    trainers (KTO, CPO/SimPO, ORPO) that ``finetuning dpo`` selects through ``loss_type``."""
    import importlib

    import transformers
    import trl

    base = {f.name: f for f in dataclasses.fields(transformers.TrainingArguments)}
    changed = {
        f.name
        for f in dataclasses.fields(trl.DPOConfig)
        if f.name in base and (_default_value(f) != _default_value(base[f.name]) or f.type != base[f.name].type)
    }
    retyped = frozenset(  # widened to accept None
        f.name
        for f in dataclasses.fields(trl.DPOConfig)
        if f.name in base and "None" in _annotation(f.type) and "None" not in _annotation(base[f.name].type)
    )
    fields = _render_fields(trl.DPOConfig, skip=set(base) - changed, retyped=retyped)
    seen = {f.name for f in dataclasses.fields(trl.DPOConfig)}
    for class_name, (module_name, names) in PREFERENCE_EXTRA_FIELDS.items():
        cls = getattr(importlib.import_module(module_name), class_name)
        prefix = f"[{class_name.removesuffix('Config')} only] "
        fields += _render_fields(cls, skip=set(base) | seen, only=names, help_prefix=prefix)
        seen |= names
    lines = _header(f"trl {trl.__version__}")
    lines += [
        "from finetuning.config.hf_training_args import HFTrainingArguments",
        *_path_imports(fields),
        "",
        f"TRL_VERSION = {trl.__version__!r}",
        "",
        "",
        "class HFDPOArguments(HFTrainingArguments):",
        '    """Fields of ``trl.DPOConfig`` (with its defaults), and of the KTO and CPO/SimPO trainers."""',
        "",
    ]
    lines += fields
    return "\n".join(lines) + "\n"


GENERATED = {
    "hf_training_args.py": render_training_args,
    "hf_dpo_args.py": render_dpo_args,
}


def main() -> None:
    for name, render in GENERATED.items():
        (HERE / name).write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
