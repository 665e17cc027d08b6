"""The fields of TRL 0.13's ``DPOConfig`` that TRL 1 removed, and the ``loss_type`` value it renamed."""

from __future__ import annotations

from typing import Any

from finetuning.config.legacy.rules import Edit, Retired, Rule, drop_if_unset, no_effect


def _rpo_alpha(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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


def _loss_type(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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


def _adapter_name(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    return drop_if_unset(edit, key, value, "it was unset")


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
