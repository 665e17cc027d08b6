"""`make demo-engine`: finetune a tiny model end to end with the engine alone (no service) and show what happened.

Builds a tiny random model and tokenizer locally, writes a small memorisable chat data set, runs
`finetuning sft` (LoRA, chat-ml, completions-only) as a user would, then prints the loss curve from the
machine-readable events and the adapter's answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-output"


def main() -> int:
    from finetuning.events import read_events
    from finetuning.tiny import cached_tiny_model, tiny_chat_records, write_jsonl

    model = cached_tiny_model(ROOT / ".cache" / "tiny-models")
    records = tiny_chat_records(48)
    data = write_jsonl(records, OUT / "data" / "colors.jsonl")
    config = {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.125},
        },
        "training_args": {
            "output_dir": str(OUT / "run"),
            "max_steps": 200,
            "learning_rate": 1e-2,
            "logging_steps": 20,
            "save_steps": 100,
            "eval_strategy": "steps",
            "eval_steps": 100,
            "use_cpu": True,
            "report_to": [],
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {
            "peft_type": "LORA",
            "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
        },
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 128, "train_on_completions_only": True},
        "tracking": {"mlflow_server_uri": f"sqlite:///{OUT / 'mlflow.db'}", "experiment_name": "demo"},
    }
    config_path = OUT / "sft.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    events_path = OUT / "events.jsonl"
    events_path.unlink(missing_ok=True)
    print(f"tiny model: {model}\nconfig:     {config_path}\n", flush=True)
    command = [
        sys.executable,
        "-m",
        "finetuning.cli",
        "--num-preprocess-workers",
        "1",
        "--events-file",
        str(events_path),
        "sft",
        str(config_path),
    ]
    print("$ finetuning " + " ".join(command[3:]), flush=True)
    completed = subprocess.run(command, check=False)
    events = read_events(events_path)
    losses = [(e["step"], e["loss"]) for e in events if e["type"] == "metrics" and e.get("loss") is not None]
    print("\nstep  loss")
    for step, loss in losses:
        print(f"{step:4d}  {loss:.3f}  " + "#" * max(1, int(loss * 8)))
    final = events[-1] if events else {}
    print(f"\nfinal status: {final.get('status')}  ({events_path})")
    if completed.returncode != 0 or final.get("status") != "succeeded":
        return 1
    artifacts = final["artifacts"]
    trained = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in records}
    _show_answers(Path(artifacts["final_checkpoint"]), Path(artifacts.get("new_basemodel") or model), trained)
    return 0


def _show_answers(adapter: Path, base: Path, answers: dict[str, str]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    print("\nthe finetuned adapter answers:")
    for thing in ("sky", "grass", "snow"):
        messages = [{"role": "user", "content": f"What color is the {thing}?"}]
        # tokenize the rendered prompt as training did: with the tokenizer's BOS
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        answer = str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
        expected = answers.get(f"What color is the {thing}?")
        print(f"  What color is the {thing}?  ->  {answer.strip()!r}   (trained on {expected!r})")


if __name__ == "__main__":
    sys.exit(main())
