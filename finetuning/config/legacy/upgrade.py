"""Which tables apply to which section of each kind of config, the pass that rewrites a document with them, and
where its notes go: collected by validation, logged otherwise."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, Literal

from finetuning.config.legacy.dpo_args import DPO_ARG_VALUES, DPO_ARGS
from finetuning.config.legacy.model_args import MODEL_ARGS
from finetuning.config.legacy.rules import Edit, Retired, Rule, Section, Upgrade, no_effect
from finetuning.config.legacy.training_args import TRAINING_ARG_VALUES, TRAINING_ARGS

logger = logging.getLogger(__name__)

ConfigKind = Literal["sft", "dpo", "grpo", "generate"]

# -- the sections besides training_args and model_args -----------------------------------------------------------------

TRACKING: dict[str, Retired] = {
    "run_id": no_effect("the original engine never used it"),
    "run_name": no_effect("the original engine never used it; the engine names each MLflow run itself"),
}

GENERATION_PARAMS: dict[str, Retired] = {
    "return_legacy_cache": no_effect("transformers 5 has one cache format; the answers are the same"),
}

_TRAINING_SECTIONS: tuple[tuple[str, Mapping[str, Retired], Mapping[str, Rule]], ...] = (
    ("run_conf.model_args", MODEL_ARGS, {}),
    ("tracking", TRACKING, {}),
)
SECTIONS: dict[ConfigKind, tuple[tuple[str, Mapping[str, Retired], Mapping[str, Rule]], ...]] = {
    "sft": (("training_args", TRAINING_ARGS, TRAINING_ARG_VALUES), *_TRAINING_SECTIONS),
    "dpo": (
        ("training_args", {**TRAINING_ARGS, **DPO_ARGS}, {**TRAINING_ARG_VALUES, **DPO_ARG_VALUES}),
        *_TRAINING_SECTIONS,
    ),
    "grpo": (("training_args", TRAINING_ARGS, TRAINING_ARG_VALUES), *_TRAINING_SECTIONS),
    "generate": (("model_conf.model_args", MODEL_ARGS, {}), ("hf_gen_params", GENERATION_PARAMS, {})),
}


def refusals(fields: Mapping[str, Retired]) -> dict[str, str]:
    """Why each retired field is refused when its rule cannot translate the value given."""
    return {name: retired.refusal for name, retired in fields.items()}


def _section(doc: Section, dotted: str) -> Section | None:
    current: Any = doc
    for part in dotted.split("."):
        if not isinstance(current, MutableMapping):
            return None
        current = current.get(part)
    return current if isinstance(current, MutableMapping) else None


def upgrade_document(kind: ConfigKind, doc: Section) -> list[Upgrade]:
    """Rewrite the retired fields of a ``kind`` config in place; one note per field translated or removed."""
    notes: list[Upgrade] = []
    for path, retired, values in SECTIONS[kind]:
        section = _section(doc, path)
        if section is None:
            continue
        edit = Edit(doc, section, path)
        for key in list(section):
            if not isinstance(key, str):
                continue
            rule = retired[key].rule if key in retired else values.get(key)
            if rule is None or key not in section:  # not retired, or moved along with an earlier field
                continue
            outcome = rule(edit, key, section[key])
            if outcome is not None:
                notes.append(Upgrade(edit.loc(key), outcome[0], outcome[1]))
    return notes


# -- reporting: validation collects the notes; without a collector they are logged ------------------------------------

_COLLECTED: ContextVar[list[Upgrade] | None] = ContextVar("finetuning_config_upgrades", default=None)


@contextlib.contextmanager
def collect_upgrades() -> Iterator[list[Upgrade]]:
    """The notes of every config validated inside the block (each once)."""
    notes: list[Upgrade] = []
    token = _COLLECTED.set(notes)
    try:
        yield notes
    finally:
        _COLLECTED.reset(token)


def upgraded(data: Any, kind: ConfigKind) -> Any:
    """For a ``mode="before"`` validator: a copy of ``data`` in today's spelling; the caller's data is left alone."""
    if not isinstance(data, Mapping):
        return data
    doc = copy.deepcopy(dict(data))
    notes = upgrade_document(kind, doc)
    collected = _COLLECTED.get()
    for note in notes:
        if collected is None:
            logger.warning("%s", note)
        elif note not in collected:
            collected.append(note)
    return doc
