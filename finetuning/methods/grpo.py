"""Reinforcement finetuning with TRL's GRPO: prompts -> sampled completions -> built-in graders -> policy update.

Each top-level grader is one TRL reward function (named after the grader, weighted by its ``weight``), so TRL's own
logs carry ``rewards/<grader>/mean`` and ``/std`` beside ``reward``, ``kl`` and ``completions/mean_length``: the
events' metrics pass them on. A ``multi`` grader adds each sub-grader's mean (``rewards/<grader>/<sub>/mean``). At
every log a ``samples`` event shows a few of the latest completions with their rewards.

Generation uses TRL's vLLM path where vLLM is installed and the run trains on a CUDA GPU (``grpo_args.use_vllm:
auto``), and transformers' ``generate`` elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetuning.config.graders import MultiGrader
from finetuning.config.jobs import GRPOConfig
from finetuning.data.prompts import ITEM_COLUMN
from finetuning.events import EventsCallback, EventWriter
from finetuning.graders import AnyGrader, completion_text, grade
from finetuning.methods.common import (
    TrainOutcome,
    load_trainable_model,
    load_training_tokenizer,
    prepare_run,
    preprocessing_cache,
    record_manifest,
    start_input_hashing,
    train_and_save,
    training_arguments,
    trim_preprocessing_cache,
)
from finetuning.preflight import preflight_training
from finetuning.runtime import RunOptions, accelerator_available

if TYPE_CHECKING:
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLGRPOConfig

    from finetuning.methods.common import RunSetup

logger = logging.getLogger(__name__)

# grpo_args fields that are the engine's, not trl.GRPOConfig's
ENGINE_GRPO_FIELDS = frozenset({"use_vllm", "samples_per_log", "save_name_if_new_basemodel"})
SAMPLE_PROMPT_CHARS = 1000
SAMPLE_COMPLETION_CHARS = 2000


@dataclass(frozen=True)
class GRPOResult:
    outcome: TrainOutcome
    train_examples: int
    eval_examples: int
    generation: str  # "vllm" or "transformers"


def vllm_chosen(config: GRPOConfig) -> bool:
    """Whether completions are generated with vLLM: as set, or (``auto``) where vLLM is installed and the run
    trains on a CUDA GPU."""
    wanted = config.grpo_args.use_vllm
    if wanted != "auto":
        return bool(wanted)
    if config.training_args.use_cpu or importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def grpo_arguments(config: GRPOConfig, setup: RunSetup, *, use_vllm: bool) -> TRLGRPOConfig:
    """``trl.GRPOConfig``: the training arguments, the computed batch sizes, ``grpo_args`` and the graders' weights."""
    import torch
    from trl import GRPOConfig as TRLGRPOConfig

    args_conf = config.training_args
    grpo = config.grpo_args.model_dump(exclude=set(ENGINE_GRPO_FIELDS))
    extra: dict[str, Any] = {
        **grpo,
        "use_vllm": use_vllm,
        # in the training processes: a vLLM server (TRL's server mode) would be a URL the run connects to
        "vllm_mode": "colocate",
        "reward_weights": [grader.weight for grader in config.graders],
        # completions reach the user as samples events; TRL's own table would go to parquet files and rich
        "log_completions": False,
        # GRPO's batches hold prompt ids, not input_ids: the Trainer cannot count tokens (TRL logs num_tokens)
        "include_num_input_tokens_seen": "no",
    }
    if args_conf.bf16 is None:
        extra["bf16"] = bool(
            not args_conf.use_cpu
            and accelerator_available()
            and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()
            and not args_conf.fp16
        )
    extra["remove_unused_columns"] = False  # the graders read the item column (validation refuses true)
    arguments = training_arguments(
        setup, args_conf, config.run_conf.determinism, arguments_class=TRLGRPOConfig, extra=extra
    )
    assert isinstance(arguments, TRLGRPOConfig)
    return arguments


class SampleRecorder:
    """Keeps the latest batch of completions with each grader's rewards, for the ``samples`` event at the next log.

    Every reward function of a batch gets the same ``completions`` list: a new list starts a new batch."""

    def __init__(self, graders: Sequence[AnyGrader | MultiGrader], per_log: int) -> None:
        self.weights = {grader.name: grader.weight for grader in graders}
        self.per_log = per_log
        self._completions: list[Any] | None = None
        self._prompts: list[Any] = []
        self._rewards: dict[str, list[float]] = {}

    def record(self, name: str, prompts: list[Any], completions: list[Any], rewards: list[float]) -> None:
        if completions is not self._completions:
            self._completions, self._prompts, self._rewards = completions, prompts, {}
        self._rewards[name] = rewards

    def take(self) -> list[dict[str, Any]]:
        """Up to ``per_log`` samples spread over the latest batch (one per prompt where there are enough); the
        batch is then forgotten, so each is reported once."""
        completions, self._completions = self._completions or [], None
        n = len(completions)
        if not n or not self.per_log:
            return []
        picks = sorted({i * n // min(self.per_log, n) for i in range(min(self.per_log, n))})
        samples = []
        for i in picks:
            rewards = {name: values[i] for name, values in self._rewards.items()}
            samples.append(
                {
                    "prompt": _prompt_text(self._prompts[i])[-SAMPLE_PROMPT_CHARS:],
                    "completion": completion_text(completions[i])[:SAMPLE_COMPLETION_CHARS],
                    "rewards": rewards,
                    "reward": sum(self.weights.get(name, 1.0) * value for name, value in rewards.items()),
                }
            )
        return samples


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        return str(prompt[-1].get("content", ""))
    return str(prompt)


class GraderReward:
    """A grader as a TRL reward function: ``(prompts, completions, completion_ids, item=[...]) -> rewards``."""

    def __init__(self, grader: AnyGrader | MultiGrader, recorder: SampleRecorder | None = None) -> None:
        self.grader = grader
        self.recorder = recorder
        self.__name__ = grader.name  # TRL names the reward's metrics after it

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]] | None = None,
        **columns: Any,
    ) -> list[float]:
        items = [json.loads(text) for text in columns[ITEM_COLUMN]]
        lengths: list[int | None] = (
            [len(ids) for ids in completion_ids] if completion_ids is not None else [None] * len(completions)
        )
        grades = [
            grade(self.grader, completion_text(completion), item, length)
            for completion, item, length in zip(completions, items, lengths, strict=True)
        ]
        rewards = [g.reward for g in grades]
        log_metric = columns.get("log_metric")
        if isinstance(self.grader, MultiGrader) and callable(log_metric) and grades:
            for sub in self.grader.graders:
                values = [g.parts[sub.name] for g in grades]
                log_metric(f"rewards/{self.grader.name}/{sub.name}/mean", sum(values) / len(values))
        if self.recorder is not None:
            self.recorder.record(self.grader.name, prompts, completions, rewards)
        return rewards


def samples_callback(recorder: SampleRecorder, events: EventWriter) -> TrainerCallback:
    """A Trainer callback writing a ``samples`` event after each training log (on the main process)."""
    from transformers import TrainerCallback

    class SamplesCallback(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if not state.is_world_process_zero or not logs or any(key.startswith("eval_") for key in logs):
                return
            samples = recorder.take()
            if samples:
                events.samples(step=state.global_step, samples=samples)

    return SamplesCallback()


def run_grpo(
    config: GRPOConfig,
    options: RunOptions,
    events: EventWriter,
    callbacks: Sequence[TrainerCallback] = (),
) -> GRPOResult:
    """Run one GRPO experiment; ``callbacks`` are extra Trainer callbacks."""
    from trl import GRPOTrainer

    from finetuning.data.prompts import prepare_prompt_datasets

    preflight_training(config)
    args_conf, run_conf, grpo = config.training_args, config.run_conf, config.grpo_args
    setup = prepare_run(args_conf, config.batchsize_conf, config.overrides, run_conf, config.tracking, options, events)
    use_vllm = vllm_chosen(config)
    training_args = grpo_arguments(config, setup, use_vllm=use_vllm)
    generation = "vllm" if use_vllm else "transformers"
    resolved = {
        **setup.describe(),
        "prompts_per_step": config.batchsize_conf.total_train_batch_size // grpo.num_generations,
        "generation": generation,
    }
    events.run_started("grpo", config={**config.model_dump(mode="json", by_alias=True), "resolved": resolved})
    logger.info(
        "GRPO: %s prompts x %d completions per step, generated with %s",
        resolved["prompts_per_step"],
        grpo.num_generations,
        generation,
    )

    events.phase("loading_tokenizer")
    tokenizer, tokenizer_setup = load_training_tokenizer(config.data_conf, run_conf, "sft")
    if tokenizer_setup.new_tokens:
        events.log(
            "warning",
            f"the {config.data_conf.chat_template_name.value} chat template added tokens the model has never seen "
            f"({', '.join(tokenizer_setup.new_tokens)}); GRPO usually starts from a model finetuned (SFT) with the "
            "same template",
        )

    events.phase("preprocessing")
    # the main process of each node writes the rows; the others (and later jobs on the same volume) reuse them
    with setup.state.local_main_process_first():
        train_dataset, eval_dataset = prepare_prompt_datasets(
            config.data_conf, config.graders, cache_dir=preprocessing_cache(options)
        )
    trim_preprocessing_cache(setup, options, events)
    logger.info("training on %d prompts, validating on %d", len(train_dataset), len(eval_dataset or []))

    hashing = start_input_hashing(config, options, events)
    events.phase("loading_model")
    loaded = load_trainable_model(
        run_conf,
        config.peft_conf,
        config.quant_conf,
        args_conf,
        training_args,
        setup,
        tokenizer,
        tokenizer_setup.assistant_end,
        new_basemodel_name=grpo.save_name_if_new_basemodel,
        defer_new_adapter=True,  # TRL attaches it, and uses the adapter-disabled model as the KL reference
        tokens_per_micro_batch=setup.plan.per_device_train_batch_size * (grpo.max_completion_length + 512),
    )
    record_manifest(events, "grpo", config, setup, training_args, loaded.model, hashing, options, resolved)
    recorder = SampleRecorder(config.graders, grpo.samples_per_log)
    reward_funcs: list[Any] = [GraderReward(grader, recorder) for grader in config.graders]
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=[EventsCallback(events), samples_callback(recorder, events), *callbacks],
        peft_config=loaded.peft_config,
    )
    outcome = train_and_save(
        trainer,
        setup,
        events,
        evaluate_at_end=eval_dataset is not None and training_args.eval_strategy == "no",
        final_checkpoint_name=run_conf.final_checkpoint_name,
    )
    return GRPOResult(outcome, len(train_dataset), len(eval_dataset or []), generation)
