"""One setting of the SFT benchmark, in its own process (``sft_throughput.py --child spec.json``): stock TRL or the
engine, training with the meter attached; the result goes to ``run_dir/result.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.sft_meter import meter_class
from bench.sft_plans import BATCH, LEARNING_RATE, SEED


def run_child(spec: dict[str, Any]) -> int:
    import torch

    if spec["device"] == "cpu":
        torch.set_num_threads(int(spec["threads"]))
    elif not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no GPU")
    meter = meter_class()(spec)
    setting = spec["setting"]
    if setting.startswith("engine"):
        train_engine(spec, meter, packing=setting == "engine")
    else:
        train_trl(spec, meter, setting)
    result = meter.result()
    Path(spec["run_dir"], "result.json").write_text(json.dumps(result))
    return 0


def train_trl(spec: dict[str, Any], meter: Any, setting: str) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = [json.loads(line) for line in Path(spec["data_path"]).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"messages": r["messages"]} for r in records])
    cpu = spec["device"] == "cpu"
    per_setting: dict[str, dict[str, Any]] = {
        "baseline": {},
        "trl_no_ckpt": {"gradient_checkpointing": False},
        "trl_best": {"packing": True, "packing_strategy": "bfd", "gradient_checkpointing": False},
        "trl_liger": {
            "packing": True,
            "packing_strategy": "bfd",
            "gradient_checkpointing": False,
            "use_liger_kernel": True,
        },
    }
    options = dict(per_setting[setting])
    if spec["bf16"]:
        # the checkpoint's dtype, as the engine loads it (TRL would otherwise load fp32 weights under bf16 autocast)
        options["model_init_kwargs"] = {"dtype": "bfloat16"}
    args = SFTConfig(
        output_dir=str(Path(spec["run_dir"]) / "out"),
        max_steps=spec["warmup"] + spec["steps"],
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LEARNING_RATE,
        max_length=spec["max_length"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=SEED,
        use_cpu=cpu,
        bf16=bool(spec["bf16"]),
        disable_tqdm=True,
        **options,
    )
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    trainer = SFTTrainer(
        model=spec["model_dir"], args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[meter]
    )
    trainer.train()


def train_engine(spec: dict[str, Any], meter: Any, *, packing: bool) -> None:
    from finetuning.config.jobs import SFTConfig
    from finetuning.events import EventWriter
    from finetuning.methods.sft import run_sft
    from finetuning.runtime import RunOptions
    from finetuning.settings import EngineSettings

    run_dir = Path(spec["run_dir"])
    config = SFTConfig.model_validate(
        {
            "data_conf": {
                # the tokenizer's own template, as TRL uses it; no tokens added, so both train the same vocabulary
                "chat_template_name": "keep-original",
                "training_data": {"type": "CONCATENATION", "datasets": [{"path": spec["data_path"]}]},
                "validation_data": {"type": "NONE"},
            },
            "training_args": {
                "output_dir": str(run_dir / "out"),
                "max_steps": spec["warmup"] + spec["steps"],
                "learning_rate": LEARNING_RATE,
                "logging_steps": 1,
                "save_strategy": "no",
                "report_to": [],
                "seed": SEED,
                "use_cpu": spec["device"] == "cpu",
                "bf16": bool(spec["bf16"]),
                "disable_tqdm": True,
            },
            "batchsize_conf": {"total_train_batch_size": BATCH, "max_per_device_train_batch_size": BATCH},
            "peft_conf": {"peft_type": "NO_PEFT"},
            "run_conf": {"model": spec["model_dir"]},
            "sft_args": {"max_seq_length": spec["max_length"], "packing": packing},
        }
    )
    settings = EngineSettings(cache_dir=run_dir / "cache", checkpoints_path=run_dir / "out")
    run_sft(config, RunOptions(settings=settings, num_preprocess_workers=1), EventWriter(None), callbacks=[meter])
    shutil.rmtree(run_dir / "out", ignore_errors=True)  # the final checkpoint: not measured, not kept
