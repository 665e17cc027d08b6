"""Data preparation at scale: the engine's SFT preprocessing against stock TRL's, on the same generated files.

    python bench/data_throughput.py                       # `make bench-data`: 20k, 200k and 1M rows
    python bench/data_throughput.py --rows 10000000 --settings engine --no-warm   # a 10M-row file, once

For each size a chat JSONL file is generated (a user turn of 5-40 words, an answer of 10-120, ~640 bytes a row) and,
each in its own process tree, in one run:

- ``engine``: ``finetuning sft`` (the CLI, ``--num-preprocess-workers``) on the tiny model, ``max_seq_length: 512``,
  ``max_steps: 1``, its defaults otherwise (packing on), with an empty cache folder;
- ``engine_warm``: the same again on the same cache folder (a later job on the same inputs);
- ``trl``: stock ``trl.SFTTrainer`` (``load_dataset("json")``, ``dataset_num_proc``, ``max_length: 512``,
  ``max_steps: 1``) on the same file and model, with an empty datasets cache; ``trl_warm`` on the same cache.

Measured: the process's wall time; its preprocessing seconds (engine: the ``preprocessing`` phase plus the packing
stage, from its events; TRL: ``load_dataset`` plus the ``SFTTrainer`` constructor, which tokenizes) and the rows per
second of that; the peak of the summed resident memory of the whole process tree (sampled every 0.2 s: the engine's
and TRL's forked workers included) and of its proportional share (PSS, which counts pages shared between the forked
processes once). Prints a table and writes ``bench/results/data_cpu.md``. Run by hand; never asserted in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "data_cpu.md"
SEED = 11
WORDS = (
    "the a cat dog model river city answer question water book door window garden song problem apple number time "
    "sees likes finds builds reads writes follows helps carries watches learns opens closes quickly slowly today"
).split()

TRL_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
data, model_dir, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(model_dir)
tokenizer = AutoTokenizer.from_pretrained(model_dir)
start = time.perf_counter()
dataset = load_dataset("json", data_files=data, split="train")
args = SFTConfig(output_dir=out, max_steps=1, per_device_train_batch_size=8, max_length=512, use_cpu=True,
                 dataset_num_proc=workers, report_to=[], save_strategy="no", logging_steps=1)
trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
prep = time.perf_counter() - start
trainer.train()
print("BENCH " + json.dumps({"preprocess_s": prep, "rows": len(dataset)}))
"""


@dataclass
class Run:
    rows: int
    setting: str
    wall_s: float
    preprocess_s: float | None
    peak_rss: int
    peak_pss: int
    code: int

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.preprocess_s if self.preprocess_s else None


def generate(path: Path, rows: int) -> None:
    if path.exists():
        return
    rng = random.Random(SEED)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for index in range(rows):
            user = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 120)))
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            f.write(json.dumps({"id": f"r{index}", "messages": messages}) + "\n")
    tmp.rename(path)


def measure(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int, int, str]:
    """Run ``command``; its exit code, wall seconds, peak tree RSS and PSS (bytes) and its stdout."""
    start = time.perf_counter()
    with log.open("w") as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        root = psutil.Process(process.pid)
        peak_rss = peak_pss = 0
        while process.poll() is None:
            rss = pss = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        info = proc.memory_full_info()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
            except psutil.NoSuchProcess:
                pass
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.2)
        stdout = process.stdout.read() if process.stdout else ""
    return process.returncode, time.perf_counter() - start, peak_rss, peak_pss, stdout


def engine_run(rows: int, data: Path, model: Path, work: Path, cache: Path, workers: int, setting: str) -> Run:
    run_dir = work / f"{setting}-{rows}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(run_dir / "out"),
            "max_steps": 1,
            "save_strategy": "no",
            "use_cpu": True,
            "report_to": [],
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {"peft_type": "NO_PEFT"},  # full finetuning, as stock TRL's
        "run_conf": {"model": str(model)},
        "sft_args": {"max_seq_length": 512},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    events = run_dir / "events.jsonl"
    env = {**os.environ, "FINETUNING_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "finetuning.cli", "--num-preprocess-workers", str(workers)]
    command += ["--events-file", str(events), "sft", str(run_dir / "config.yaml")]
    code, wall, rss, pss, _ = measure(command, env, run_dir / "log.txt")
    return Run(rows, setting, wall, _engine_preprocess_s(events) if code == 0 else None, rss, pss, code)


def _engine_preprocess_s(events_file: Path) -> float | None:
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    times = {e["phase"]: datetime.fromisoformat(e["time"]) for e in events if e["type"] == "phase"}
    if "preprocessing" not in times or "loading_model" not in times:
        return None
    seconds = (times["loading_model"] - times["preprocessing"]).total_seconds()
    packing = [e for e in events if e["type"] == "preprocessing" and e["stage"] == "packing" and e["state"] == "done"]
    return seconds + sum(e["elapsed_s"] for e in packing)


def trl_run(rows: int, data: Path, model: Path, work: Path, hf_cache: Path, workers: int, setting: str) -> Run:
    run_dir = work / f"{setting}-{rows}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(hf_cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", TRL_CHILD, str(data), str(model), str(run_dir / "out"), str(workers)]
    code, wall, rss, pss, stdout = measure(command, env, run_dir / "log.txt")
    prep = None
    for line in stdout.splitlines():
        if line.startswith("BENCH "):
            prep = json.loads(line[6:])["preprocess_s"]
    return Run(rows, setting, wall, prep, rss, pss, code)


def table(runs: list[Run]) -> str:
    lines = [
        "| rows | setting | wall s | preprocessing s | rows/s | peak RSS, tree (GB) | peak PSS, tree (GB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        prep = "failed" if run.code else (f"{run.preprocess_s:.1f}" if run.preprocess_s is not None else "?")
        rate = f"{run.rows_per_s:,.0f}" if run.rows_per_s and not run.code else ""
        lines.append(
            f"| {run.rows:,} | {run.setting} | {run.wall_s:.1f} | {prep} | {rate} | {run.peak_rss / 1e9:.2f} "
            f"| {run.peak_pss / 1e9:.2f} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> list[str]:
    by = {(run.setting, run.rows): run for run in runs if run.code == 0}
    sizes = sorted({run.rows for run in runs})
    out = []
    if len(sizes) > 1 and ("engine", sizes[0]) in by and ("engine", sizes[-1]) in by:
        small, big = by[("engine", sizes[0])], by[("engine", sizes[-1])]
        out.append(
            f"- engine peak RSS at {sizes[-1]:,} rows / at {sizes[0]:,}: {big.peak_rss / small.peak_rss:.2f}x "
            f"(PSS {big.peak_pss / small.peak_pss:.2f}x); target <= 1.5x"
        )
    for size in sizes:
        engine, trl = by.get(("engine", size)), by.get(("trl", size))
        if engine and trl:
            line = f"- {size:,} rows: engine / TRL peak RSS {engine.peak_rss / trl.peak_rss:.2f}x"
            line += f" (PSS {engine.peak_pss / trl.peak_pss:.2f}x; target <= 1.2x)"
            if engine.rows_per_s and trl.rows_per_s:
                line += f", preprocessing rows/s {engine.rows_per_s / trl.rows_per_s:.2f}x (target >= 1x)"
            out.append(line)
        warm = by.get(("engine_warm", size))
        if warm and warm.preprocess_s is not None:
            out.append(f"- {size:,} rows: a second engine run spends {warm.preprocess_s:.1f} s preprocessing (<= 5 s)")
    return out


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="20000,200000,1000000", help="comma-separated row counts")
    parser.add_argument("--settings", default="engine,trl", help="engine and/or trl")
    parser.add_argument("--workers", type=int, default=2, help="--num-preprocess-workers / dataset_num_proc")
    parser.add_argument("--no-warm", action="store_true", help="skip the second (warm cache) runs")
    parser.add_argument("--workdir", type=Path, help="keep data, caches and logs here (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table goes (markdown)")
    args = parser.parse_args(argv)
    settings = set(args.settings.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from finetuning.tiny import build_tiny_model

    model = work / "model"
    if not (model / "config.json").exists():
        build_tiny_model(model, with_pad_token=True)
    runs: list[Run] = []
    try:
        for rows in [int(n) for n in args.rows.split(",")]:
            data = work / f"chat-{rows}.jsonl"
            generate(data, rows)
            if "engine" in settings:
                cache = work / f"engine-cache-{rows}"
                shutil.rmtree(cache, ignore_errors=True)
                for setting in ("engine",) if args.no_warm else ("engine", "engine_warm"):
                    runs.append(engine_run(rows, data, model, work, cache, args.workers, setting))
                    print(table(runs[-1:]).splitlines()[-1], flush=True)
                shutil.rmtree(cache, ignore_errors=True)
            if "trl" in settings:
                hf_cache = work / f"hf-cache-{rows}"
                shutil.rmtree(hf_cache, ignore_errors=True)
                for setting in ("trl",) if args.no_warm else ("trl", "trl_warm"):
                    runs.append(trl_run(rows, data, model, work, hf_cache, args.workers, setting))
                    print(table(runs[-1:]).splitlines()[-1], flush=True)
                shutil.rmtree(hf_cache, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report = "\n".join(
        [
            "# Data preparation: the engine against stock TRL (`make bench-data`)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; `--num-preprocess-workers {args.workers}` / "
            f"`dataset_num_proc={args.workers}`; the tiny model, `max_seq_length` 512, `max_steps` 1.",
            "",
            table(runs),
            "",
            *ratios(runs),
            "",
        ]
    )
    print("\n" + report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return 0 if all(run.code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
