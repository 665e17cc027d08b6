"""The fields of transformers 4.x ``TrainingArguments`` (4.49 to 4.57) that transformers 5 renamed or removed, and
the ``optim`` values it dropped."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from finetuning.config.legacy.rules import Edit, Retired, Rule, drop_if_unset, is_unset, no_effect, renamed, switch_to

# transformers 5 reads a warmup_steps below 1 as a fraction of the training steps; exactly 1.0 would be one step
_LARGEST_RATIO = 0.999999


def _warmup_ratio(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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


def _include_inputs_for_metrics(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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

    def rule(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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


def _half_precision_backend(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if value in (None, "auto", "cpu_amp", "cuda_amp", "amp"):
        edit.drop(key)
        return None, f"transformers 5 removed the choice: {_AMP}"
    if value == "apex":
        edit.drop(key)
        return None, f"transformers 5 removed apex: {_AMP}, which is what apex's O1 level does"
    return None


def _fp16_opt_level(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    apex = "apex" in (edit.original.get("half_precision_backend"), edit.original.get("fp16_backend"))
    if value == "O1" or not apex:
        edit.drop(key)
        return None, f"{_AMP} (apex's O1); the level only applied with apex"
    return None


def _push_to_hub_organization(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
    if is_unset(value):
        edit.drop(key)
        return None, "it was unset"
    model_id = edit.original.get("hub_model_id") or edit.original.get("push_to_hub_model_id")
    if not isinstance(value, str) or (isinstance(model_id, str) and "/" in model_id):
        return None
    name = model_id or PurePosixPath(str(edit.original.get("output_dir") or "checkpoints")).name
    edit.section.pop("push_to_hub_model_id", None)
    edit.rename(key, "hub_model_id", f"{value}/{name}")
    return f"{edit.loc('hub_model_id')}: {value}/{name}", "transformers 5 takes the organization in hub_model_id"


def _optim(edit: Edit, key: str, value: Any) -> tuple[str | None, str] | None:
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
        switch_to("optim", "adafactor", "transformers 5 removed the adafactor flag"),
        "removed in transformers 5; use optim: adafactor (and give only one optimizer)",
    ),
    "group_by_length": Retired(
        switch_to(
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
        unless=lambda value: not is_unset(value),
        refusal="removed in transformers 5 with SageMaker model parallelism; use DeepSpeed or FSDP instead",
    ),
    "per_gpu_train_batch_size": Retired(
        lambda edit, key, value: drop_if_unset(edit, key, value, "it was unset"), COMPUTED_BY_ENGINE
    ),
    "per_gpu_eval_batch_size": Retired(
        lambda edit, key, value: drop_if_unset(edit, key, value, "it was unset"), COMPUTED_BY_ENGINE
    ),
}

# Fields that still exist but lost some values.
TRAINING_ARG_VALUES: dict[str, Rule] = {"optim": _optim}
