"""Configs written for the original engine, read in today's spelling.

The original engine handed ``training_args`` to transformers 4.57's ``TrainingArguments`` (SFT) or TRL 0.13's
``DPOConfig`` (DPO), and ``model_args`` to transformers 4.57's ``from_pretrained``. Every field those versions had
(and transformers 4.49's, the first version's) that today's libraries renamed or removed has a rule here: it either
rewrites the field to what means the same today and leaves one :class:`Upgrade` note naming the new spelling, or
leaves the field in place, and validation then refuses it with the rule's ``refusal`` (the reason, and what to do).

The rules rewrite any mutable mapping in place, so the same code serves validation (plain dicts, copied first) and
``finetuning upgrade-config`` (ruamel's round-trip maps, which keep the user's comments and key order).

The rules come one table per library: :mod:`~finetuning.config.legacy.training_args`,
:mod:`~finetuning.config.legacy.dpo_args` and :mod:`~finetuning.config.legacy.model_args`, built from the parts in
:mod:`~finetuning.config.legacy.rules`; :mod:`~finetuning.config.legacy.upgrade` applies them to a document.
"""

from finetuning.config.legacy.dpo_args import DPO_ARGS
from finetuning.config.legacy.model_args import MODEL_ARGS
from finetuning.config.legacy.rules import Upgrade
from finetuning.config.legacy.training_args import COMPUTED_BY_ENGINE, TRAINING_ARGS
from finetuning.config.legacy.upgrade import ConfigKind, collect_upgrades, refusals, upgrade_document, upgraded

__all__ = [
    "COMPUTED_BY_ENGINE",
    "DPO_ARGS",
    "MODEL_ARGS",
    "TRAINING_ARGS",
    "ConfigKind",
    "Upgrade",
    "collect_upgrades",
    "refusals",
    "upgrade_document",
    "upgraded",
]
