"""`finetuning grpo` end to end on the CPU with the tiny model: the mean reward rises, the events carry each grader's
reward, the KL and sampled completions, an interrupted run resumes from its checkpoint, and bad rows are named."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from sft_helpers import run_cli
from transformers import TrainerCallback

from finetuning.tiny import write_jsonl

pytestmark = pytest.mark.slow

_WORDS = "what is the of and to in how many why does it no because there are color sky blue sum number".split()


def prompt_records(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Questions whose reference answer is "yes": a task the tiny random model learns in a few dozen steps (say yes)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6))).capitalize() + "?"
        records.append({"messages": [{"role": "user", "content": question}], "answer": "yes"})
    return records


def grpo_config(model: Path, data: Path, out: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(out),
            "max_steps": 30,
            "learning_rate": 2e-2,
            "logging_steps": 1,
            "save_strategy": "no",
            "gradient_checkpointing": False,
            "use_cpu": True,
            "report_to": [],
            "seed": 7,
        },
        "batchsize_conf": {"total_train_batch_size": 32, "max_per_device_train_batch_size": 32},
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}},
        "run_conf": {"model": str(model)},
        "grpo_args": {"num_generations": 8, "max_completion_length": 8, "beta": 0.01, "samples_per_log": 2},
        "graders": [
            {
                "name": "says_yes",
                "type": "string_check",
                "operation": "contains",
                "reference": "{{item.answer}}",
                "case_sensitive": False,
            }
        ],
    }
    for name, values in sections.items():
        config[name] = values if isinstance(values, list) else {**config.get(name, {}), **values}
    return config


def metric(events: list[dict[str, Any]], key: str) -> list[float]:
    return [e["extra"][key] for e in events if e["type"] == "metrics" and key in e.get("extra", {})]


def test_mean_reward_rises_and_events_show_rewards_kl_and_samples(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(prompt_records(64), tmp_path / "prompts.jsonl")
    out = tmp_path / "out"
    config = grpo_config(tiny_model_dir, data, out)
    # a second grader, combined: its sub-graders' means are reported too
    config["graders"].append(
        {
            "name": "shape",
            "type": "multi",
            "weight": 0.0,  # watched, not trained on
            "aggregate": "min",
            "graders": [
                {"name": "short", "type": "length", "unit": "tokens", "max_length": 8},
                {"name": "no_json", "type": "json_schema", "schema": {"type": "object"}},
            ],
        }
    )
    code, events = run_cli(tmp_path, config, command="grpo")
    assert code == 0, events[-1]
    rewards = metric(events, "rewards/says_yes/mean")
    print("mean reward per step:", [round(r, 3) for r in rewards])
    assert len(rewards) == 30
    first, last = statistics.mean(rewards[:5]), statistics.mean(rewards[-5:])
    assert first < 0.3
    assert last > first + 0.4, (first, last)
    assert metric(events, "reward") == pytest.approx(rewards)  # the shape grader weighs 0
    assert len(metric(events, "rewards/says_yes/std")) == 30
    assert metric(events, "kl")[-1] > 0  # beta > 0: the policy moved away from the reference
    assert all(0 < length <= 8 for length in metric(events, "completions/mean_length"))
    assert metric(events, "rewards/shape/short/mean") == pytest.approx([1.0] * 30)
    assert metric(events, "rewards/shape/mean") == pytest.approx([0.0] * 30)  # min with "not JSON"

    samples = [e for e in events if e["type"] == "samples"]
    assert [e["step"] for e in samples] == list(range(1, 31))
    sample = samples[-1]["samples"][0]
    assert set(sample) == {"prompt", "completion", "rewards", "reward"}
    assert set(sample["rewards"]) == {"says_yes", "shape"}
    assert sample["reward"] == sample["rewards"]["says_yes"]
    assert sample["prompt"].endswith("?")

    started = next(e for e in events if e["type"] == "run_started")
    assert started["method"] == "grpo"
    assert started["config"]["resolved"]["prompts_per_step"] == 4
    assert started["config"]["resolved"]["generation"] == "transformers"
    final = events[-1]
    assert final["status"] == "succeeded"
    assert final["artifacts"]["final_checkpoint"] == str(out / "checkpoint-final")
    assert (out / "checkpoint-final" / "adapter_model.safetensors").is_file()
    assert not (out / "completions").exists()  # TRL's completion tables stay off: samples events instead


class CrashAfterSave(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from finetuning.config import GRPOConfig
    from finetuning.events import EventWriter
    from finetuning.methods.grpo import run_grpo
    from finetuning.runtime import RunOptions
    from finetuning.settings import EngineSettings

    data = write_jsonl(prompt_records(16), tmp_path / "prompts.jsonl")
    out = tmp_path / "out"
    config = grpo_config(
        tiny_model_dir,
        data,
        out,
        training_args={"max_steps": 6, "save_strategy": "steps", "save_steps": 3},
        batchsize_conf={"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
        grpo_args={"num_generations": 4, "max_completion_length": 4},
        run_conf={"model": str(tiny_model_dir), "resume_from_checkpoint": "auto"},
    )
    options = RunOptions(settings=EngineSettings(cache_dir=tmp_path / "cache"), num_preprocess_workers=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_grpo(GRPOConfig.validate_config(config), options, EventWriter(None), callbacks=[CrashAfterSave(3)])
    assert (out / "checkpoint-3" / "adapter_model.safetensors").is_file()

    code, events = run_cli(tmp_path, config, command="grpo")
    assert code == 0, events[-1]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["config"]["resolved"]["resume_from_checkpoint"].endswith("checkpoint-3")
    assert started["config"]["resolved"]["gradient_accumulation_steps"] == 2
    assert [e["step"] for e in events if e["type"] == "metrics" and "reward" in e["extra"]] == [4, 5, 6]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [6]
    assert events[-1]["metrics"]["global_step"] == 6


def test_rows_the_graders_cannot_read_are_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    records = prompt_records(8)
    records[2] = {"messages": records[2]["messages"]}  # no answer
    records[5]["messages"].append({"role": "assistant", "content": "yes"})
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = grpo_config(tiny_model_dir, data, tmp_path / "out")
    code, events = run_cli(tmp_path, config, command="grpo")
    assert code != 0
    error = events[-1]["error"]
    assert f"{data} line 3" in error["message"]
    assert "grader 'says_yes'" in error["message"]
    assert "no field 'answer'" in error["message"]

    config["data_conf"]["max_bad_rows"] = 1
    code, events = run_cli(tmp_path, config, command="grpo")
    assert code != 0
    assert f"{data} line 6" in events[-1]["error"]["message"]
    assert "ends with an assistant message" in events[-1]["error"]["message"]


def test_vllm_is_chosen_only_where_it_can_run(tmp_path: Path) -> None:
    import importlib.util

    from finetuning.config import GRPOConfig
    from finetuning.methods.grpo import vllm_chosen

    def chosen(use_vllm: Any, use_cpu: bool) -> bool:
        config = grpo_config(Path("model"), Path("data.jsonl"), tmp_path, grpo_args={"use_vllm": use_vllm})
        config["training_args"]["use_cpu"] = use_cpu
        return vllm_chosen(GRPOConfig.validate_config(config))

    assert not chosen("auto", True)
    assert not chosen(False, False)
    assert chosen(True, False)  # asked for: TRL says so if vLLM is missing
    import torch

    expected = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    assert chosen("auto", False) == expected


def test_plan_names_bad_prompts_and_counts_the_steps_the_run_takes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``finetuning plan grpo``: the rows the run would skip, named; the prompts' tokens as TRL renders them; and the
    number of steps equal to what the real run then takes (TRL's repeat sampler: whole steps of prompts per epoch)."""
    from finetuning.config import GRPOConfig
    from finetuning.methods.common import load_training_tokenizer
    from finetuning.plan import PlanOptions, plan_training, summary

    records = prompt_records(20, seed=3)
    records[2] = {"messages": records[2]["messages"]}  # no answer for the grader
    records[5]["messages"].append({"role": "assistant", "content": "yes"})
    lines = [json.dumps(r) for r in records]
    lines[8] = "{not json"
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(lines) + "\n")
    config = grpo_config(
        tiny_model_dir,
        data,
        tmp_path / "out",
        data_conf={"max_bad_rows": 3},
        training_args={"max_steps": -1, "num_train_epochs": 1, "logging_steps": 1},
        batchsize_conf={"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        grpo_args={"num_generations": 4, "max_completion_length": 4, "beta": 0.0},
    )
    validated = GRPOConfig.validate_config(config)
    report = plan_training(validated, PlanOptions(gpu="H100-80GB"))

    problems = {(row["line"], row["kind"]) for row in report["problems"]["rows"]}
    assert problems == {(3, "grader_cannot_read"), (6, "prompt_ends_with_answer"), (9, "not_json")}
    assert all(row["file"] == str(data) for row in report["problems"]["rows"])
    assert report["verdicts"] == ["3 bad rows will be skipped (data_conf.max_bad_rows=3)"]

    # prompt tokens: each good prompt rendered on its own with the generation prompt, as a single conversation
    tokenizer, _ = load_training_tokenizer(validated.data_conf, validated.run_conf, "sft")
    good = [r for i, r in enumerate(records) if i not in (2, 5, 8)]
    one_by_one = [
        len(tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=True, return_dict=False))
        for r in good
    ]
    train = report["statistics"]["train"]
    assert train["rows"] == 17
    assert train["tokens"] == sum(one_by_one)
    assert train["max"] == max(one_by_one)

    steps = report["steps"]
    assert (steps["prompts_per_step"], steps["completions_per_step"]) == (2, 8)
    assert (steps["steps_per_epoch"], steps["total"], steps["prompts_left_out_per_epoch"]) == (8, 8, 1)
    generation = report["generation"]
    assert generation["generated_tokens_at_most"] == 8 * 8 * 4
    assert report["resolved"]["prompts_per_step"] == 2
    [h100] = report["time"]["gpus"]
    assert h100["gpu"] == "H100-80GB"
    assert h100["generation_seconds_per_step"] > 0
    assert h100["seconds"] > 0
    assert "training prompts: 17 rows" in summary(report)

    code, events = run_cli(tmp_path / "run", config, command="grpo")
    assert code == 0, events[-1]
    assert events[-1]["metrics"]["global_step"] == steps["total"]
