"""Configs written for the original engine, read in today's spelling.

The original engine handed ``training_args`` to transformers 4.57's ``TrainingArguments`` (SFT) or TRL 0.13's
``DPOConfig`` (DPO), and ``model_args`` to transformers 4.57's ``from_pretrained``. Every field those versions had
(and transformers 4.49's, the first version's) that today's libraries renamed or removed has a rule here: it either
rewrites the field to what means the same today and leaves one :class:`Upgrade` note naming the new spelling, or
leaves the field in place, and validation then refuses it with the rule's ``refusal`` (the reason, and what to do).

The rules rewrite any mutable mapping in place, so the same code serves validation (plain dicts, copied first) and
``finetuning upgrade-config`` (ruamel's round-trip maps, which keep the user's comments and key order).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

logger = logging.getLogger(__name__)

ConfigKind = Literal["sft", "dpo", "generate"]
Section = MutableMapping[str, Any]


@dataclass(frozen=True)
class Upgrade:
    """One retired field translated: where it was, what replaced it (None: removed), and why."""

    path: str
    replacement: str | None
    reason: str

    def __str__(self) -> str:
        if self.replacement is None:
            return f"{self.path} is no longer needed and was removed: {self.reason}"
        return f"{self.path} is now {self.replacement}: {self.reason}"

    def as_dict(self) -> dict[str, str | None]:
        return {"param": self.path, "replacement": self.replacement, "reason": self.reason}


class _Edit:
    """The section being upgraded, with the document around it (some fields move to another section)."""

    def __init__(self, doc: Section, section: Section, path: str) -> None:
        self.doc = doc
        self.section = section
        self.path = path
        self.original = dict(section)  # as the user wrote it: a rule may look at a sibling another rule removed

    def loc(self, key: str) -> str:
        return f"{self.path}.{key}"

    def set(self, key: str, value: Any) -> None:
        self.section[key] = value

    def drop(self, key: str) -> None:
        del self.section[key]

    def rename(self, key: str, new_key: str, value: Any) -> None:
        """Replace ``key`` by ``new_key`` at the same position (with its comment, in a round-trip map)."""
        section = self.section
        if new_key in section:
            del section[key]
            section[new_key] = value
            return
        index = list(section).index(key)
        insert = getattr(section, "insert", None)
        if insert is not None:  # ruamel's CommentedMap
            comments = getattr(section, "ca", None)
            comment = comments.items.pop(key, None) if comments is not None else None
            del section[key]
            insert(index, new_key, value)
            if comment is not None and comments is not None:
                comments.items[new_key] = comment
            return
        items = list(section.items())
        section.clear()
        for old_key, old_value in items:
            if old_key == key:
                section[new_key] = value
            else:
                section[old_key] = old_value

    def subsection(self, dotted: str) -> Section | None:
        """The mapping at ``dotted`` (from the document's root), created when missing; None if a value is there."""
        current: Any = self.doc
        for part in dotted.split("."):
            child = current.get(part)
            if child is None:
                child = type(self.section)()  # a round-trip map for a round-trip document
                current[part] = child
            if not isinstance(child, MutableMapping):
                return None
            current = child
        return current


# A rule translates ``section[key]`` (it may edit the document) and returns the note's (replacement, reason), or
# None to leave the field to be refused.
Rule = Callable[[_Edit, str, Any], tuple[str | None, str] | None]


@dataclass(frozen=True)
class Retired:
    """A field an older library had. ``refusal``: why a value the rule does not translate is refused."""

    rule: Rule
    refusal: str


def _is_unset(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or value == {}


def renamed(new_key: str, reason: str) -> Retired:
    """Same meaning, new name. Both names with different values: refused, there is no telling which was meant."""

    def rule(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if value is None:
            edit.drop(key)
            return None, "it was unset"
        if new_key in edit.original and edit.original[new_key] != value:
            return None
        edit.rename(key, new_key, value)
        return edit.loc(new_key), reason

    return Retired(rule, f"renamed to {new_key} ({reason}); give only {new_key}")


def no_effect(reason: str, *, unless: Callable[[Any], bool] | None = None, refusal: str = "") -> Retired:
    """Removed, and nothing the run does depends on it (for the values ``unless`` does not pick out)."""

    def rule(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if unless is not None and unless(value):
            return None
        edit.drop(key)
        return None, reason

    return Retired(rule, refusal or reason)


def _drop_if_unset(edit: _Edit, key: str, value: Any, reason: str) -> tuple[str | None, str] | None:
    if _is_unset(value):
        edit.drop(key)
        return None, reason
    return None


# -- transformers 4.x TrainingArguments -------------------------------------------------------------------------------

# transformers 5 reads a warmup_steps below 1 as a fraction of the training steps; exactly 1.0 would be one step
_LARGEST_RATIO = 0.999999


def _warmup_ratio(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None
    steps = edit.original.get("warmup_steps")
    if steps not in (None, 0):
        edit.drop(key)
        return None, f"warmup_steps ({steps}) is also set, and it took precedence over warmup_ratio in transformers 4"
    if value == 0:
        edit.drop(key)
        return None, "0 means no warmup, the default"
    ratio = min(float(value), _LARGEST_RATIO)
    edit.rename(key, "warmup_steps", ratio)
    return (
        f"{edit.loc('warmup_steps')}: {ratio}",
        "transformers 5 removed warmup_ratio; a warmup_steps below 1 is the same fraction of the training steps",
    )


def _switch_to(target: str, target_value: Any, reason: str) -> Rule:
    """A boolean flag that became a value of another field."""

    def rule(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if value is False or value is None:
            edit.drop(key)
            return None, "false was the default"
        if value is not True:
            return None
        current = edit.original.get(target)
        if current is not None and current != target_value:
            return None
        edit.rename(key, target, target_value)
        return f"{edit.loc(target)}: {target_value}", reason

    return rule


def _include_inputs_for_metrics(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if value is False or value is None:
        edit.drop(key)
        return None, "false was the default"
    if value is not True:
        return None
    included = edit.section.get("include_for_metrics") or []
    if not isinstance(included, list):
        return None
    edit.rename(key, "include_for_metrics", [*included, "inputs"] if "inputs" not in included else included)
    return f"{edit.loc('include_for_metrics')}: [inputs]", "transformers 5 removed include_inputs_for_metrics"


def _into_mapping(field: str, subkey: str, *, as_list: bool = False, unset: tuple[Any, ...] = (None,)) -> Rule:
    """A flat field that moved into a dict field (``fsdp_config``, ``accelerator_config``); ``unset``: the values
    that meant "not set"."""

    def rule(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
        if any(value == u and type(value) is type(u) for u in unset):
            edit.drop(key)
            return None, "it was unset"
        target = edit.section.get(field)
        if isinstance(target, str):
            return None  # a file: we cannot add to it
        target = edit.subsection(f"{edit.path}.{field}")
        if target is None or (subkey in target and target[subkey] != value):
            return None
        target[subkey] = [value] if as_list and isinstance(value, str) else value
        edit.drop(key)
        return f"{edit.loc(field)}.{subkey}", f"transformers 5 reads it only from {field}"

    return rule


_AMP = "mixed precision runs on torch's automatic mixed precision (AMP)"


def _half_precision_backend(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if value in (None, "auto", "cpu_amp", "cuda_amp", "amp"):
        edit.drop(key)
        return None, f"transformers 5 removed the choice: {_AMP}"
    if value == "apex":
        edit.drop(key)
        return None, f"transformers 5 removed apex: {_AMP}, which is what apex's O1 level does"
    return None


def _fp16_opt_level(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    apex = "apex" in (edit.original.get("half_precision_backend"), edit.original.get("fp16_backend"))
    if value == "O1" or not apex:
        edit.drop(key)
        return None, f"{_AMP} (apex's O1); the level only applied with apex"
    return None


def _push_to_hub_organization(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if _is_unset(value):
        edit.drop(key)
        return None, "it was unset"
    model_id = edit.original.get("hub_model_id") or edit.original.get("push_to_hub_model_id")
    if not isinstance(value, str) or (isinstance(model_id, str) and "/" in model_id):
        return None
    name = model_id or PurePosixPath(str(edit.original.get("output_dir") or "checkpoints")).name
    edit.section.pop("push_to_hub_model_id", None)
    edit.rename(key, "hub_model_id", f"{value}/{name}")
    return f"{edit.loc('hub_model_id')}: {value}/{name}", "transformers 5 takes the organization in hub_model_id"


def _optim(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if not isinstance(value, str):
        return None
    replacement = {"adamw_hf": "adamw_torch", "adamw_apex_fused": "adamw_torch_fused"}.get(value)
    if replacement is None:
        return None
    edit.set(key, replacement)
    return f"{edit.loc(key)}: {replacement}", f"transformers 5 removed {value}; {replacement} is the same algorithm"


COMPUTED_BY_ENGINE = (
    "computed by the engine from batchsize_conf; set batchsize_conf.total_train_batch_size and "
    "batchsize_conf.max_per_device_train_batch_size (and batchsize_conf.per_device_eval_batch_size) instead"
)

TRAINING_ARGS: dict[str, Retired] = {
    "evaluation_strategy": renamed("eval_strategy", "renamed in transformers 4.46"),
    "no_cuda": renamed("use_cpu", "renamed in transformers 4.34"),
    "push_to_hub_model_id": renamed("hub_model_id", "transformers 5 removed push_to_hub_model_id"),
    "push_to_hub_token": renamed("hub_token", "transformers 5 removed push_to_hub_token"),
    "push_to_hub_organization": Retired(
        _push_to_hub_organization, "removed in transformers 5; give hub_model_id: <organization>/<name>"
    ),
    "torchdynamo": renamed(
        "torch_compile_backend", "transformers 5 removed torchdynamo; a backend turns torch_compile on, as it did"
    ),
    "warmup_ratio": Retired(
        _warmup_ratio, "removed in transformers 5; give warmup_steps a number in [0, 1) (e.g. warmup_steps: 0.1)"
    ),
    "adafactor": Retired(
        _switch_to("optim", "adafactor", "transformers 5 removed the adafactor flag"),
        "removed in transformers 5; use optim: adafactor (and give only one optimizer)",
    ),
    "group_by_length": Retired(
        _switch_to(
            "train_sampling_strategy", "group_by_length", "transformers 5 made it a value of train_sampling_strategy"
        ),
        "removed in transformers 5; use train_sampling_strategy: group_by_length",
    ),
    "include_inputs_for_metrics": Retired(
        _include_inputs_for_metrics, "removed in transformers 5; use include_for_metrics: [inputs]"
    ),
    "fsdp_min_num_params": Retired(
        _into_mapping("fsdp_config", "min_num_params", unset=(None, 0)),
        "removed in transformers 5; set fsdp_config.min_num_params (inside the file when fsdp_config names one)",
    ),
    "fsdp_transformer_layer_cls_to_wrap": Retired(
        _into_mapping("fsdp_config", "transformer_layer_cls_to_wrap", as_list=True, unset=(None, "", [])),
        "removed in transformers 5; set fsdp_config.transformer_layer_cls_to_wrap (inside the file when fsdp_config "
        "names one)",
    ),
    "dispatch_batches": Retired(
        _into_mapping("accelerator_config", "dispatch_batches"),
        "removed in transformers 4.49; set accelerator_config.dispatch_batches",
    ),
    "split_batches": Retired(
        _into_mapping("accelerator_config", "split_batches"),
        "removed in transformers 4.49; set accelerator_config.split_batches",
    ),
    "half_precision_backend": Retired(
        _half_precision_backend, "removed in transformers 5: mixed precision (fp16 or bf16: true) runs on torch AMP"
    ),
    "fp16_backend": Retired(
        _half_precision_backend, "removed in transformers 5: mixed precision (fp16 or bf16: true) runs on torch AMP"
    ),
    "fp16_opt_level": Retired(
        _fp16_opt_level,
        "removed with apex in transformers 5: torch AMP is apex's O1; levels O2 and O3 (fp16 weights) have no "
        "counterpart: remove it, and load the model in float16 (run_conf.model_args.dtype) if that was the aim",
    ),
    "overwrite_output_dir": no_effect(
        "the trainer never read it (only transformers' example scripts did): the run writes into output_dir as it "
        "is, and run_conf.resume_from_checkpoint decides whether a run found there is continued (false, the "
        "default: start afresh; auto: continue from its last checkpoint)"
    ),
    "logging_dir": no_effect(
        "transformers 5 writes TensorBoard logs (report_to: tensorboard) to <output_dir>/runs, or to the "
        "TENSORBOARD_LOGGING_DIR environment variable"
    ),
    "save_safetensors": no_effect(
        "checkpoints are always safetensors now",
        unless=lambda value: value is False,
        refusal="removed in transformers 5: checkpoints are always safetensors, and the engine reads and writes "
        "safetensors only; remove save_safetensors: false",
    ),
    "jit_mode_eval": no_effect("evaluation runs without TorchScript tracing; the metrics are the same"),
    "use_ipex": no_effect("Intel's extension for PyTorch only made CPU runs faster; the results are the same"),
    "use_mps_device": no_effect("an Apple GPU (MPS) is used when present; use_cpu: true turns it off"),
    "include_tokens_per_second": no_effect("the engine reports tokens per second at every logging step"),
    "use_legacy_prediction_loop": no_effect("one evaluation loop remains; the metrics are the same"),
    "ray_scope": no_effect("it only applied to hyperparameter search with Ray Tune, which the engine does not run"),
    "tpu_num_cores": no_effect("TPUs are not supported; the launcher sets the number of processes"),
    "tpu_metrics_debug": no_effect("TPUs are not supported"),
    "past_index": no_effect("it only applied to models with memory states (Transformer-XL, XLNet), not causal LMs"),
    "mp_parameters": no_effect(
        "it was empty",
        unless=lambda value: not _is_unset(value),
        refusal="removed in transformers 5 with SageMaker model parallelism; use DeepSpeed or FSDP instead",
    ),
    "per_gpu_train_batch_size": Retired(
        lambda edit, key, value: _drop_if_unset(edit, key, value, "it was unset"), COMPUTED_BY_ENGINE
    ),
    "per_gpu_eval_batch_size": Retired(
        lambda edit, key, value: _drop_if_unset(edit, key, value, "it was unset"), COMPUTED_BY_ENGINE
    ),
}

# Fields that still exist but lost some values.
TRAINING_ARG_VALUES: dict[str, Rule] = {"optim": _optim}


# -- TRL 0.13 DPOConfig ------------------------------------------------------------------------------------------------


def _rpo_alpha(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if value is None:
        edit.drop(key)
        return None, "it was unset"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    loss_type = edit.section.get("loss_type", "sigmoid")
    if not isinstance(loss_type, str | list):
        return None
    losses = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    if "sft" in losses:
        return None
    weights = edit.section.get("loss_weights") or [1.0] * len(losses)
    if not isinstance(weights, list) or len(weights) != len(losses):
        return None
    edit.set("loss_type", [*losses, "sft"])
    edit.set("loss_weights", [*weights, float(value)])
    edit.drop(key)
    return (
        f"{edit.loc('loss_type')}: {_flow([*losses, 'sft'])} with {edit.loc('loss_weights')}: "
        f"{_flow([*weights, float(value)])}",
        "TRL 1 writes RPO as the DPO loss plus a weighted SFT loss on the chosen answers, which is what rpo_alpha "
        "added",
    )


def _flow(items: list[Any]) -> str:
    return "[" + ", ".join(str(item) for item in items) + "]"


def _loss_type(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if value == "aot_pair":
        new: Any = "aot_unpaired"
    elif isinstance(value, list) and "aot_pair" in value:
        new = ["aot_unpaired" if v == "aot_pair" else v for v in value]
    else:
        return None
    edit.set(key, new)
    return (
        f"{edit.loc(key)}: {_flow(new) if isinstance(new, list) else new}",
        "TRL renamed the loss aot_pair to aot_unpaired",
    )


def _adapter_name(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    return _drop_if_unset(edit, key, value, "it was unset")


DPO_ARGS: dict[str, Retired] = {
    "max_target_length": no_effect("it only applied to encoder-decoder models; the engine trains causal LMs"),
    "is_encoder_decoder": no_effect(
        "the engine trains causal LMs",
        unless=lambda value: value is True,
        refusal="removed in TRL 1; the engine trains causal (decoder-only) LMs",
    ),
    "label_pad_token_id": no_effect("the positions it marked are left out of the loss whatever the id"),
    "padding_value": no_effect(
        "padding is masked out of the loss; the pad token comes from data_conf.missing_pad_token_strategy"
    ),
    "force_use_ref_model": no_effect("the engine always derives the reference model itself"),
    "generate_during_eval": no_effect("sample answers are no longer logged at evaluation; training is the same"),
    "use_num_logits_to_keep": no_effect("it only saved memory; the loss is the same"),
    "ref_model_init_kwargs": no_effect(
        "it had no effect in the original engine either: the reference model is derived from the loaded model"
    ),
    "model_init_kwargs": no_effect(
        "it had no effect in the original engine either, which loaded the model itself; from_pretrained keyword "
        "arguments go in run_conf.model_args"
    ),
    "dataset_num_proc": no_effect(
        "the original engine took it from the --num-preprocess-workers command-line flag, as the engine does"
    ),
    "model_adapter_name": Retired(
        _adapter_name, "removed in TRL 1: the engine trains one adapter and takes the reference with it disabled"
    ),
    "ref_adapter_name": Retired(
        _adapter_name, "removed in TRL 1: the engine trains one adapter and takes the reference with it disabled"
    ),
    "rpo_alpha": Retired(
        _rpo_alpha,
        "removed in TRL 1; RPO is loss_type: [sigmoid, sft] with loss_weights: [1.0, <rpo_alpha>] (give those "
        "instead when loss_type is a list)",
    ),
    "reference_free": no_effect(
        "false was the default",
        unless=lambda value: value is True,
        refusal="removed in TRL 1, which always compares with a reference model; loss_type: simpo (or cpo) trains "
        "without one",
    ),
}

DPO_ARG_VALUES: dict[str, Rule] = {"loss_type": _loss_type}


# -- from_pretrained keyword arguments (transformers 4.57) -------------------------------------------------------------

_BNB_KEYS = (
    "load_in_4bit",
    "load_in_8bit",
    "llm_int8_threshold",
    "llm_int8_skip_modules",
    "llm_int8_enable_fp32_cpu_offload",
    "llm_int8_has_fp16_weight",
    "bnb_4bit_compute_dtype",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
    "bnb_4bit_quant_storage",
)


def _bnb_to_quant_conf(edit: _Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    """``load_in_4bit`` and the other bitsandbytes settings in model_args move to quant_conf, all at once."""
    if not (edit.original.get("load_in_4bit") or edit.original.get("load_in_8bit")):
        if key in ("load_in_4bit", "load_in_8bit") and value is False:
            edit.drop(key)
            return None, "false was the default"
        return None
    quant_conf = edit.doc.get("quant_conf")
    if isinstance(quant_conf, Mapping) and quant_conf.get("quantization_type", "no-quantization") != (
        "no-quantization"
    ):
        return None
    target = edit.subsection("quant_conf")
    if target is None:
        return None
    target.clear()
    target["quantization_type"] = "bits-and-bytes"
    for name in _BNB_KEYS:
        if name in edit.section:
            target[name] = edit.section.pop(name)
    return "quant_conf", "transformers 5 quantizes only through a quantization config"


MODEL_ARGS: dict[str, Retired] = {
    "torch_dtype": renamed("dtype", "transformers 5 renamed torch_dtype"),
    "use_auth_token": renamed("token", "transformers 5 removed use_auth_token"),
    "use_flash_attention_2": Retired(
        _switch_to("attn_implementation", "flash_attention_2", "transformers 5 removed use_flash_attention_2"),
        "removed in transformers 5; use attn_implementation: flash_attention_2",
    ),
    "from_tf": no_effect(
        "false was the default",
        unless=lambda value: value is True,
        refusal="removed in transformers 5; the engine loads safetensors weights only: convert the checkpoint",
    ),
    "from_flax": no_effect(
        "false was the default",
        unless=lambda value: value is True,
        refusal="removed in transformers 5; the engine loads safetensors weights only: convert the checkpoint",
    ),
    "low_cpu_mem_usage": no_effect("transformers 5 always loads with low memory use"),
    "resume_download": no_effect("downloads always resume now"),
    "offload_state_dict": no_effect("transformers 5 decides this itself"),
    "mirror": no_effect("transformers 5 ignores it; set HF_ENDPOINT for a mirror"),
    "_fast_init": no_effect("transformers 5 always initializes this way"),
    **{
        name: Retired(
            _bnb_to_quant_conf,
            "transformers 5 quantizes only through a quantization config: move the bitsandbytes settings to "
            "quant_conf (quantization_type: bits-and-bytes), and give them in one place",
        )
        for name in _BNB_KEYS
    },
}

# -- the rest ----------------------------------------------------------------------------------------------------------

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
        edit = _Edit(doc, section, path)
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
