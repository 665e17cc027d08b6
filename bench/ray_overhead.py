"""What running on a Ray cluster costs per training step: the same SFT run by the local executor (1 process, and
``accelerate launch`` with 2) and as a Ray job under Ray Train (1 and 2 workers), in one run on one machine.

    .venv/bin/python bench/ray_overhead.py                       # CPU: the tiny model, a local Ray head started here
    .venv/bin/python bench/ray_overhead.py --device cuda --model /models/llama-1b --ray-address http://head:8265 \
        --workers 1 2 4 8 --steps 60 --seq-len 2048                # GPUs: an existing cluster, a real model

Steady state is read from the engine's own metrics events (tokens and time between the 3rd logged step and the
last), so start-up (Ray Train's worker group, model loading) is reported apart, as ``start-up s``. Prints a table,
writes ``bench/results/ray_<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT)]

from finetuning.contract import RAY_EVENT_MARKER  # noqa: E402
from finetuning.tiny import build_tiny_model, tiny_chat_records, write_jsonl  # noqa: E402


def config(model: str, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data_conf": {
            "chat_template_name": "chat-ml",
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {
            "output_dir": str(out),
            "max_steps": args.steps,
            "learning_rate": 1e-4,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": [],
            "seed": 7,
            "ddp_find_unused_parameters": False,
            **({"use_cpu": True} if args.device == "cpu" else {"bf16": True}),
        },
        "batchsize_conf": {
            "total_train_batch_size": args.total_batch,
            "max_per_device_train_batch_size": args.total_batch,
        },
        "peft_conf": {"peft_type": "LORA", "peft_kwargs": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}},
        "run_conf": {"model": model},
        "sft_args": {"max_seq_length": args.seq_len},
    }


def steady(events: list[dict[str, Any]]) -> tuple[float, float]:
    """Tokens per second and seconds per step between the 3rd logged step and the last."""
    points = [
        (datetime.fromisoformat(e["time"]).timestamp(), e["step"], (e.get("extra") or {}).get("num_input_tokens_seen"))
        for e in events
        if e.get("type") == "metrics" and e.get("loss") is not None
    ]
    if len(points) < 4:
        raise RuntimeError(f"only {len(points)} logged steps: raise --steps")
    (t0, s0, n0), (t1, s1, n1) = points[2], points[-1]
    seconds_per_step = (t1 - t0) / (s1 - s0)
    tokens = (n1 - n0) if isinstance(n0, int | float) and isinstance(n1, int | float) else float("nan")
    return tokens / (t1 - t0), seconds_per_step


RAY_ENV = {"RAY_DEDUP_LOGS": "0", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def local_run(work: Path, cfg: dict[str, Any], processes: int) -> tuple[list[dict[str, Any]], float]:
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    launcher = [sys.executable, "-m", "finetuning.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes"]
        launcher += [str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        launcher += ["-m", "finetuning.cli"]
    started = time.monotonic()
    subprocess.run(
        [*launcher, "--num-preprocess-workers", "1", "--events-file", str(work / "events.jsonl"), "sft", "config.yaml"],
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.monotonic() - started
    lines = (work / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()], wall


def ray_run(address: str, work: Path, cfg: dict[str, Any], workers: int) -> tuple[list[dict[str, Any]], float]:
    from ray.job_submission import JobSubmissionClient

    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    client = JobSubmissionClient(address)
    entry = f"python -m finetuning.ray_train --workers {workers} --job-id bench-{work.name} --max-failures 0"
    started = time.monotonic()
    submission = client.submit_job(
        entrypoint=f"{entry} -- --num-preprocess-workers 1 sft config.yaml",
        runtime_env={"working_dir": str(work), "env_vars": RAY_ENV},
    )
    while not (status := client.get_job_status(submission)).is_terminal():
        time.sleep(0.5)
    wall = time.monotonic() - started
    logs = client.get_job_logs(submission)
    if str(status) != "SUCCEEDED":
        raise RuntimeError(f"Ray job {submission} {status}:\n{logs[-3000:]}")
    events = [
        json.loads(line[line.index(RAY_EVENT_MARKER) + len(RAY_EVENT_MARKER) :])
        for line in logs.splitlines()
        if RAY_EVENT_MARKER in line
    ]
    return events, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", default=None, help="A model folder (default: the tiny model, built here)")
    parser.add_argument("--ray-address", default=None, help="An existing cluster (default: a local head started here)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--total-batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    scratch = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    model = args.model or str(build_tiny_model(scratch / "model"))
    data = write_jsonl(tiny_chat_records(args.rows), scratch / "data.jsonl")
    cluster = None
    address = args.ray_address
    if address is None:
        from tests.ray_cluster import RayCluster

        cluster = RayCluster(scratch / "ray-logs", num_cpus=max(4, max(args.workers) * 2))
        cluster.start()
        address = cluster.address
    rows: list[tuple[str, int, float, float, float]] = []  # name, world size, tokens/s, s/step, wall
    try:
        local_sizes = [1, 2] if args.device == "cpu" else sorted({1, *[w for w in args.workers if w <= 8]})
        for processes in local_sizes:
            name = "local, 1 process" if processes == 1 else f"local, accelerate {processes} processes"
            cfg = config(model, data, scratch / f"local-out-{processes}", args)
            events, wall = local_run(scratch / f"local-{processes}", cfg, processes)
            rows.append((name, processes, *steady(events), wall))
            print(rows[-1], flush=True)
        for workers in args.workers:
            cfg = config(model, data, scratch / f"ray-out-{workers}", args)
            events, wall = ray_run(address, scratch / f"ray-{workers}", cfg, workers)
            rows.append((f"Ray Train, {workers} worker{'s' if workers > 1 else ''}", workers, *steady(events), wall))
            print(rows[-1], flush=True)
    finally:
        if cluster is not None:
            cluster.stop()

    local = {size: tps for name, size, tps, _, _ in rows if name.startswith("local")}
    lines = [
        f"# Ray overhead ({args.device}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "",
        f"SFT of `{Path(model).name}`, LoRA r=16, total batch {args.total_batch}, max_seq_length {args.seq_len}, "
        f"{args.steps} steps; steady state from the engine's metrics events (3rd logged step to the last).",
        "",
        "| run | tokens/s | s/step | vs local (same world size) | wall s (with start-up) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, size, tps, sps, wall in rows:
        ratio = f"{tps / local[size]:.2f}" if size in local and not name.startswith("local") else "-"
        lines.append(f"| {name} | {tps:,.0f} | {sps:.3f} | {ratio} | {wall:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    out = args.out or REPO_ROOT / "bench" / "results" / f"ray_{args.device}.md"
    out.write_text(table)


if __name__ == "__main__":
    main()
