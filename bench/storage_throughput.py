"""Bucket storage, measured against a local S3 server (moto's server mode) on this machine, in one run:

1. a large file (default 1 GiB) up and down through the engine's storage layer (``finetuning.storage``: the upload
   used for outputs, the download cache used for inputs) next to boto3's own ``upload_file`` / ``download_file``
   with their defaults, and a second fetch of the same object (a cache hit);
2. what uploading checkpoints in the background costs a training run: the same full-parameter SFT run (the CPU
   benchmark's 19.3M-parameter Llama shape, a checkpoint of ~230 MB with its optimizer state every few steps) with a
   local output folder and with an ``s3://`` output, step times from the events (target: < 5% slower).

Prints a markdown table and writes it to ``bench/results/storage_cpu.md``. Never asserted in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from tests.s3server import S3Server, aws_environment  # noqa: E402

MiB = 2**20


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(4 * MiB)  # incompressible, written fast: the same random block repeated
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def transfers(work: Path, bucket: str, size: int, repeats: int) -> list[dict[str, Any]]:
    import boto3

    from finetuning.storage import S3Uri
    from finetuning.storage.cache import DownloadCache, release_all
    from finetuning.storage.transfer import upload_file

    raw = boto3.client("s3")
    source = work / "big.bin"
    _write_file(source, size)
    uri = S3Uri(bucket, "big.bin")
    times: dict[str, list[float]] = {"ours_up": [], "raw_up": [], "ours_down": [], "raw_down": [], "hit": []}
    for run in range(repeats):
        times["raw_up"].append(_timed(lambda: raw.upload_file(str(source), bucket, "big.bin")))
        raw.delete_object(Bucket=bucket, Key="big.bin")
        times["ours_up"].append(_timed(lambda: upload_file(source, uri)))
        target = work / f"raw-{run}.bin"
        times["raw_down"].append(_timed(lambda target=target: raw.download_file(bucket, "big.bin", str(target))))
        target.unlink()
        cache = DownloadCache(work / f"cache-{run}", 4 * size)
        times["ours_down"].append(_timed(lambda cache=cache: cache.file(uri)))
        times["hit"].append(_timed(lambda cache=cache: cache.file(uri)))
        release_all()
        raw.delete_object(Bucket=bucket, Key="big.bin")
    mb = size / MiB
    median = {name: statistics.median(values) for name, values in times.items()}
    return [
        {"what": "upload", "ours_MBps": mb / median["ours_up"], "raw_MBps": mb / median["raw_up"]},
        {"what": "download (cold cache)", "ours_MBps": mb / median["ours_down"], "raw_MBps": mb / median["raw_down"]},
        {"what": "download (cache hit)", "ours_s": median["hit"]},
    ]


def training_cost(work: Path, bucket: str, steps: int, save_steps: int) -> list[dict[str, Any]]:
    from sft_data import prepare
    from sft_plans import CPU_PLAN, DataPlan

    model, data, _, n_params, _ = prepare(
        work / "sft", CPU_PLAN.shapes[0], DataPlan(examples=200, median_tokens=60, max_length=256), bf16=False
    )
    rows = []
    for where in ("local", "s3"):
        output = str(work / "out-local") if where == "local" else f"s3://{bucket}/bench-run"
        config = {
            "data_conf": {
                "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data)}]},
                "validation_data": {"type": "NONE"},
            },
            "training_args": {
                "output_dir": output,
                "max_steps": steps,
                "learning_rate": 1e-4,
                "logging_steps": 1,
                "save_strategy": "steps",
                "save_steps": save_steps,
                "save_total_limit": 2,
                "use_cpu": True,
                "report_to": [],
                "seed": 7,
            },
            "batchsize_conf": {"total_train_batch_size": 4, "max_per_device_train_batch_size": 4},
            "peft_conf": {"peft_type": "NO_PEFT"},
            "run_conf": {"model": str(model)},
            "sft_args": {"max_seq_length": 256},
        }
        folder = work / f"run-{where}"
        folder.mkdir()
        (folder / "config.yaml").write_text(json.dumps(config))
        events = folder / "events.jsonl"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "FINETUNING_STAGING_DIR": str(folder / "staging"),
            "FINETUNING_STORAGE_CACHE_DIR": str(folder / "cache"),
        }
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "finetuning.cli",
                "--num-preprocess-workers",
                "1",
                "--events-file",
                str(events),
                "sft",
                str(folder / "config.yaml"),
            ],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "log.txt").open("wb"),
        )
        wall = time.perf_counter() - started
        from finetuning.events import read_events

        all_events = read_events(events)
        stamps = [e["time"] for e in all_events if e["type"] == "metrics"]
        from datetime import datetime

        seconds = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in stamps]
        step_times = [b - a for a, b in zip(seconds, seconds[1:], strict=False)][1:]  # the first step warms up
        uploads = [e for e in all_events if e["type"] == "storage" and e.get("state") == "uploaded"]
        rows.append(
            {
                "output": where,
                "params": n_params,
                "median_step_s": statistics.median(step_times),
                "mean_step_s": statistics.fmean(step_times),
                "wall_s": wall,
                "uploaded_MB": sum(e.get("bytes", 0) for e in uploads) / MiB,
                "upload_s": sum(e.get("seconds", 0) for e in uploads),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--save-steps", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        work = Path(tmp)
        server = S3Server(work / "moto.log")
        server.start()
        try:
            with aws_environment(server.env):
                import boto3

                boto3.client("s3").create_bucket(Bucket="bench")
                moved = transfers(work, "bench", args.size_mb * MiB, args.repeats)
                cost = training_cost(work, "bench", args.steps, args.save_steps)
        finally:
            server.stop()

    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu()}), Python {platform.python_version()}; S3: moto server on localhost.",
        "",
        f"| transfer ({args.size_mb} MiB, median of {args.repeats}) | ours | boto3 raw | ours / raw |",
        "| --- | --- | --- | --- |",
    ]
    for row in moved:
        if "raw_MBps" in row:
            ratio = row["ours_MBps"] / row["raw_MBps"]
            lines.append(f"| {row['what']} | {row['ours_MBps']:.0f} MB/s | {row['raw_MBps']:.0f} MB/s | {ratio:.2f} |")
        else:
            lines.append(f"| {row['what']} | {row['ours_s'] * 1000:.0f} ms | - | - |")
    local, remote = cost
    overhead = 100 * (remote["median_step_s"] / local["median_step_s"] - 1)
    mean_overhead = 100 * (remote["mean_step_s"] / local["mean_step_s"] - 1)
    lines += [
        "",
        f"| SFT, {local['params'] / 1e6:.1f}M params full, {args.steps} steps, a checkpoint every {args.save_steps} "
        "| median step | mean step | wall | uploaded |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in cost:
        lines.append(
            f"| output {row['output']} | {row['median_step_s']:.3f} s | {row['mean_step_s']:.3f} s | "
            f"{row['wall_s']:.1f} s | {row['uploaded_MB']:.0f} MB in {row['upload_s']:.1f} s |"
        )
    lines += ["", f"Background uploads cost {overhead:+.1f}% on the median step ({mean_overhead:+.1f}% on the mean)."]
    table = "\n".join(lines)
    print(table)
    out = REPO_ROOT / "bench" / "results" / "storage_cpu.md"
    out.write_text(table + "\n")


if __name__ == "__main__":
    main()
