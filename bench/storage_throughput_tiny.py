"""Bucket storage against a local S3 server (moto's server mode, as the tests use it) on this machine, in one run:

1. transfers: a large file (``--size-mb``, default 1024) up through the engine's ``finetuning.storage.transfer.
   upload_file`` and down through a cold ``DownloadCache(...).file(uri)``, next to boto3's own ``client.upload_file``
   / ``client.download_file`` (a plain ``boto3.client("s3")``, default ``TransferConfig``), each ``--repeats`` times
   (the order alternates between repeats; the object is deleted after each repeat, moto holds it in memory); median
   MB/s and ours / raw; then a second ``DownloadCache.file`` call on the warm cache (a hit: a HEAD request, no data);
2. what background checkpoint uploads cost training: the engine's SFT CLI (``python -m finetuning.cli sft``, one
   subprocess per run, ``OMP_NUM_THREADS=1``) on the tiny model of the tests (``finetuning.tiny``), full-parameter
   (``NO_PEFT``: a checkpoint holds the weights and the optimizer state), ``max_steps`` 40, a checkpoint every 5
   steps, one metrics event per step; the same config with a local ``output_dir`` and with ``s3://bench/bench-run``.
   Step times are the gaps between consecutive per-step ``metrics`` events (the first one, warm-up, left out); a gap
   that holds a save is reported apart. Overhead = s3 / local - 1 on the median step (target: < 5%).

moto is a single Python process on the same two cores as the client and the trainer: it is the bottleneck of the
transfers and competes with training for CPU, so compare the columns of one run, not runs or stores.

    .venv/bin/python bench/storage_throughput_tiny.py                  # ~5 min on 2 cores
    .venv/bin/python bench/storage_throughput_tiny.py --size-mb 256    # quicker

Prints a markdown table and writes it to ``bench/results/storage_throughput_cpu.md``. Never asserted in CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: bench/ is sys.path[0], the repository root is not

from tests.s3server import S3Server, aws_environment  # noqa: E402

MiB = 2**20
BUCKET = "bench"
RESULT = REPO_ROOT / "bench" / "results" / "storage_throughput_cpu.md"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_random(path: Path, size: int) -> None:
    """``size`` incompressible bytes, written in 16 MiB chunks of ``os.urandom``."""
    chunk = 16 * MiB
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(os.urandom(min(chunk, left)))
            left -= chunk


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# -- 1. transfers -----------------------------------------------------------------------------------------------------


def transfers(work: Path, size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per repeat for each of: ours_up, raw_up, ours_down, raw_down, hit."""
    import boto3

    from finetuning.storage.cache import DownloadCache, release_all
    from finetuning.storage.transfer import upload_file
    from finetuning.storage.uri import S3Uri

    raw = boto3.client("s3")  # boto3's defaults: virtual-host addressing falls back to path for an IP endpoint
    source = work / "big.bin"
    write_random(source, size)
    key = "big.bin"
    uri = S3Uri(BUCKET, key)
    times: dict[str, list[float]] = {"ours_up": [], "raw_up": [], "ours_down": [], "raw_down": [], "hit": []}

    def delete() -> None:
        raw.delete_object(Bucket=BUCKET, Key=key)

    def ours_up() -> None:
        times["ours_up"].append(timed(lambda: upload_file(source, uri)))
        delete()

    def raw_up() -> None:
        times["raw_up"].append(timed(lambda: raw.upload_file(str(source), BUCKET, key)))
        delete()

    def ours_down(run: int) -> None:
        cache_dir = work / f"cache-{run}"
        cache = DownloadCache(cache_dir, 4 * size)
        times["ours_down"].append(timed(lambda: cache.file(uri)))
        release_all()  # the second call as a new process makes it: flock, not this process's own shared lock
        times["hit"].append(timed(lambda: cache.file(uri)))
        release_all()
        shutil.rmtree(cache_dir)

    def raw_down(run: int) -> None:
        target = work / f"raw-{run}.bin"
        times["raw_down"].append(timed(lambda: raw.download_file(BUCKET, key, str(target))))
        target.unlink()

    for run in range(repeats):
        first_ours = run % 2 == 0
        for step in (ours_up, raw_up) if first_ours else (raw_up, ours_up):
            step()
        raw.upload_file(str(source), BUCKET, key)  # the object both downloads read
        for down in (ours_down, raw_down) if first_ours else (raw_down, ours_down):
            down(run)
        delete()
        print(
            f"transfers {run + 1}/{repeats}: "
            + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items()),
            file=sys.stderr,
        )
    source.unlink()
    return times


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def folder_uploads(folder: Path, repeats: int) -> dict[str, dict[str, float]]:
    """One checkpoint folder (many small files) up ``repeats`` times: ``transfer.upload_tree`` (what the background
    uploader calls) next to boto3's TransferManager given every file at once; median wall and client CPU seconds."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    from finetuning.storage.client import client
    from finetuning.storage.transfer import upload_tree
    from finetuning.storage.uri import S3Uri

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manager = create_transfer_manager(client(), TransferConfig())

    def ours(run: int) -> None:
        upload_tree(folder, S3Uri(BUCKET, f"tree-ours-{run}"), marker=True)

    def raw(run: int) -> None:
        futures = [manager.upload(str(p), BUCKET, f"tree-raw-{run}/{p.relative_to(folder).as_posix()}") for p in files]
        for future in futures:
            future.result()

    measured: dict[str, dict[str, list[float]]] = {"ours": {"wall": [], "cpu": []}, "raw": {"wall": [], "cpu": []}}
    for run in range(-1, repeats):  # run -1 warms both up
        for name, call in (("ours", ours), ("raw", raw)) if run % 2 == 0 else (("raw", raw), ("ours", ours)):
            wall, cpu = time.perf_counter(), client_cpu()
            call(run)
            if run >= 0:
                measured[name]["wall"].append(time.perf_counter() - wall)
                measured[name]["cpu"].append(client_cpu() - cpu)
    manager.shutdown()
    for name in measured:
        for run in range(-1, repeats):
            server_delete_prefix(f"tree-{name}-{run}")
    result = {name: {k: statistics.median(v) for k, v in values.items()} for name, values in measured.items()}
    result["files"] = {"count": len(files), "MB": sum(p.stat().st_size for p in files) / MiB}
    return result


# -- 2. the cost of background checkpoint uploads on training ---------------------------------------------------------


def training_config(model: Path, data: Path, output: str, args: argparse.Namespace) -> dict[str, Any]:
    from tests.engine.sft_helpers import sft_config

    config = sft_config(
        model,
        data,
        Path("unused"),
        training_args={
            "output_dir": output,
            "max_steps": args.steps,
            "logging_steps": 1,
            "save_strategy": "steps",
            "save_steps": args.save_steps,
        },
    )
    config["peft_conf"] = {"peft_type": "NO_PEFT"}  # full-parameter: the optimizer state makes checkpoints larger
    return config


def train(work: Path, name: str, config: dict[str, Any], cpus: set[int] | None) -> dict[str, Any]:
    """One engine run in a subprocess (on ``cpus`` when given), measured from its events file."""
    import yaml

    from finetuning.events import read_events

    folder = work / name
    folder.mkdir()
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    events_path = folder / "events.jsonl"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "FINETUNING_STAGING_DIR": str(folder / "staging"),
        "FINETUNING_STORAGE_CACHE_DIR": str(folder / "cache"),
    }
    command = [sys.executable, "-m", "finetuning.cli", "--num-preprocess-workers", "1"]
    command += ["--events-file", str(events_path), "sft", str(config_path)]
    started = time.perf_counter()
    with (folder / "log.txt").open("wb") as log:
        child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if cpus is not None:
            os.sched_setaffinity(child.pid, cpus)  # before it imports torch: every thread it starts inherits it
        code = child.wait()
    wall = time.perf_counter() - started
    if code != 0:
        tail = (folder / "log.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the {name} run exited with {code}; the end of its log:\n{tail}")
    events = read_events(events_path)

    def seconds(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(event["time"]).timestamp()

    stamp: dict[int, float] = {}  # the first metrics event of each step (the summary log repeats the last step)
    runtime = float("nan")
    for event in events:
        if event["type"] == "metrics":
            stamp.setdefault(int(event["step"]), seconds(event))
            runtime = float(event.get("extra", {}).get("train_runtime", runtime))
    saves = {int(e["step"]) for e in events if e["type"] == "checkpoint"}
    steps = sorted(stamp)
    plain: list[float] = []
    saving: list[float] = []
    for before, after in zip(steps[1:], steps[2:], strict=False):  # the gap up to steps[1] is warm-up
        gap = stamp[after] - stamp[before]
        (saving if before in saves else plain).append(gap)  # a save runs after the log of its step
    status = next(e for e in reversed(events) if e["type"] == "status")
    uploading = next((e for e in events if e["type"] == "phase" and e["phase"] == "uploading"), None)
    uploads = [e for e in events if e["type"] == "storage" and e.get("action") == "upload"]
    done = [e for e in uploads if e.get("state") == "uploaded"]
    return {
        "name": name,
        "status": status["status"],
        "steps": len(steps),
        "median_step_s": statistics.median(plain),
        "mean_step_s": statistics.fmean(plain),
        "save_gap_s": statistics.median(saving) if saving else float("nan"),
        "train_runtime_s": runtime,
        "wall_s": wall,
        "final_wait_s": seconds(status) - seconds(uploading) if uploading is not None else 0.0,
        "uploads": len(done),
        "uploaded_MB": sum(e.get("bytes", 0) for e in done) / MiB,
        "upload_s": sum(e.get("seconds", 0) for e in done),
        "upload_retries": sum(1 for e in uploads if e.get("state") == "retrying"),
        "upload_failures": sum(1 for e in uploads if e.get("state") == "failed"),
    }


def checkpoint_mb(output: Path) -> float:
    folders = sorted(p for p in output.glob("checkpoint-*") if p.is_dir())
    return sum(p.stat().st_size for p in folders[0].rglob("*") if p.is_file()) / MiB if folders else float("nan")


def bucket_checkpoints(prefix: str) -> tuple[int, int]:
    """(checkpoint folders, of which with their upload marker) below ``s3://bench/<prefix>``."""
    import boto3

    from finetuning.contract import UPLOAD_MARKER

    keys = []
    for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys += [item["Key"] for item in page.get("Contents", [])]
    folders = {key.split("/")[1] for key in keys if key.split("/")[1].startswith("checkpoint-")}
    marked = {folder for folder in folders if f"{prefix}/{folder}/{UPLOAD_MARKER}" in keys}
    return len(folders), len(marked)


# (label, the trainer's CPUs, moto's CPUs); None: every CPU
PLACEMENTS: list[tuple[str, set[int] | None, set[int] | None]] = [("shared cores", None, None)]
if len(os.sched_getaffinity(0)) >= 2:
    PLACEMENTS.append(("trainer on CPU 0, moto on CPU 1", {0}, {1}))


def training_cost(work: Path, server: S3Server, args: argparse.Namespace) -> dict[str, Any]:
    from finetuning.tiny import cached_tiny_model, tiny_chat_records, write_jsonl

    model = cached_tiny_model(REPO_ROOT / ".cache" / "tiny-models")
    data = write_jsonl(tiny_chat_records(256), work / "data.jsonl")
    assert server.process is not None
    everything = os.sched_getaffinity(0)
    runs: list[dict[str, Any]] = []
    checks = []
    size = float("nan")
    folder: dict[str, dict[str, float]] | None = None
    for label, trainer_cpus, server_cpus in PLACEMENTS:
        os.sched_setaffinity(server.process.pid, server_cpus or everything)
        for run in range(args.train_repeats):
            for where in ("local", "s3") if run % 2 == 0 else ("s3", "local"):
                name = f"{where}-{len(runs)}"
                local = work / f"out-{name}"
                output = str(local) if where == "local" else f"s3://{BUCKET}/{name}"
                row = train(work, name, training_config(model, data, output, args), trainer_cpus)
                row.update(where=where, placement=label)
                runs.append(row)
                if where == "s3":
                    checks.append(bucket_checkpoints(name))
                    server_delete_prefix(name)
                else:
                    size = checkpoint_mb(local)
                    if folder is None:  # with the server on every CPU, as in the transfers
                        folder = folder_uploads(local / f"checkpoint-{args.save_steps}", args.folder_repeats)
                    shutil.rmtree(local)
                print(
                    f"train {label}, {where} {run + 1}/{args.train_repeats}: median step "
                    f"{row['median_step_s'] * 1000:.1f} ms, wall {row['wall_s']:.1f} s",
                    file=sys.stderr,
                )
    os.sched_setaffinity(server.process.pid, everything)
    return {"runs": runs, "bucket": checks, "checkpoint_MB": size, "folder": folder}


def server_delete_prefix(prefix: str) -> None:
    import boto3

    raw = boto3.client("s3")
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if batch:
            raw.delete_objects(Bucket=BUCKET, Delete={"Objects": batch, "Quiet": True})


# -- the table --------------------------------------------------------------------------------------------------------


def table(args: argparse.Namespace, moved: dict[str, list[float]] | None, cost: dict[str, Any]) -> str:
    import boto3
    import moto

    lines = [
        f"Machine: {len(os.sched_getaffinity(0))} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}, moto {moto.__version__} (server mode on 127.0.0.1, objects in memory); 1-minute "
        f"load average {args.load[0]:.2f} at the start, {args.load[1]:.2f} at the end (the bench itself adds ~1).",
        "",
    ]
    if moved is not None:
        mb = args.size_mb * MiB / 1e6  # MB/s in decimal megabytes
        med = {name: statistics.median(values) for name, values in moved.items()}
        lines += [
            f"| transfer, {args.size_mb} MiB file, median of {args.repeats} | ours | boto3 raw | ours / raw |",
            "| --- | --- | --- | --- |",
            f"| upload (`transfer.upload_file` / `client.upload_file`) | {mb / med['ours_up']:.0f} MB/s "
            f"| {mb / med['raw_up']:.0f} MB/s | {med['raw_up'] / med['ours_up']:.2f} |",
            f"| download, cold cache (`DownloadCache.file` / `client.download_file`) "
            f"| {mb / med['ours_down']:.0f} MB/s | {mb / med['raw_down']:.0f} MB/s "
            f"| {med['raw_down'] / med['ours_down']:.2f} |",
            f"| download, warm cache (second `DownloadCache.file`: a hit) | {med['hit'] * 1000:.1f} ms | - | - |",
            "",
        ]
    folder = cost["folder"]
    if folder is not None:
        ours, raw = folder["ours"], folder["raw"]
        lines += [
            f"| one checkpoint folder up ({folder['files']['count']:.0f} files, {folder['files']['MB']:.2f} MB), "
            f"median of {args.folder_repeats} | ours: `transfer.upload_tree` (+ marker) | boto3 raw: one "
            "TransferManager, every file at once | ours / raw (> 1: ours costs more) |",
            "| --- | --- | --- | --- |",
            f"| wall | {ours['wall'] * 1000:.0f} ms | {raw['wall'] * 1000:.0f} ms | {ours['wall'] / raw['wall']:.2f} |",
            f"| client CPU (the uploading process, all threads) | {ours['cpu'] * 1000:.0f} ms "
            f"| {raw['cpu'] * 1000:.0f} ms | {ours['cpu'] / raw['cpu']:.2f} |",
            "",
        ]
    runs = cost["runs"]
    lines += [
        f"| SFT, tiny Llama, full-parameter (`NO_PEFT`), {args.steps} steps, a checkpoint every {args.save_steps} "
        f"({cost['checkpoint_MB']:.2f} MB, 11 files) | median step | mean step | step with a save "
        "| train_runtime | wall | uploads |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in runs:
        uploads = "-"
        if row["where"] == "s3":
            uploads = (
                f"{row['uploads']} ({row['uploaded_MB']:.1f} MB) in {row['upload_s']:.2f} s, "
                f"{row['upload_retries']} retries, {row['upload_failures']} failed; {row['final_wait_s']:.2f} s "
                "waited at the end"
            )
        lines.append(
            f"| {row['placement']}: output {'s3://' if row['where'] == 's3' else 'local'} "
            f"| {row['median_step_s'] * 1000:.1f} ms | {row['mean_step_s'] * 1000:.1f} ms "
            f"| {row['save_gap_s'] * 1000:.1f} ms | {row['train_runtime_s']:.2f} s | {row['wall_s']:.1f} s "
            f"| {uploads} |"
        )
    lines += [
        "",
        "| overhead of an s3:// output (s3 / local - 1) | median step | mean step | train_runtime "
        "| train_runtime added per checkpoint |",
        "| --- | --- | --- | --- | --- |",
    ]
    saved = args.steps // args.save_steps  # checkpoints saved during training (the final one goes up after it)
    for label, _, _ in PLACEMENTS:

        def pooled(where: str, field: str, label: str = label) -> float:
            return statistics.median(r[field] for r in runs if r["placement"] == label and r["where"] == where)

        cells = [
            f"{100 * (pooled('s3', field) / pooled('local', field) - 1):+.1f}%"
            for field in ("median_step_s", "mean_step_s", "train_runtime_s")
        ]
        added = (pooled("s3", "train_runtime_s") - pooled("local", "train_runtime_s")) / saved
        cells.append(f"{added * 1000:.0f} ms")
        lines.append(f"| {label} (median of {args.train_repeats} runs each) | " + " | ".join(cells) + " |")
    complete = ", ".join(f"{marked}/{folders}" for folders, marked in cost["bucket"])
    lines += [
        "",
        "Target: < 5% on the median step. Steps are the gaps between consecutive per-step `metrics` events (ms "
        "resolution; the first gap left out); a gap that holds a save (the local write, plus the hard-linked "
        "snapshot for s3) is the 'step with a save' column, not in the median or mean step. An upload's CPU lands "
        "on the steps right after its save, which the median step mostly leaves out: train_runtime (the trainer's "
        "own, saves included, the final upload not) is the whole cost. 'trainer on CPU 0' confines the trainer "
        "process, its upload thread included, to one CPU and keeps moto off it: the client's cost alone. "
        f"Checkpoints in the bucket with their upload marker, per s3 run: {complete}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="the transferred file, MiB")
    parser.add_argument("--repeats", type=int, default=2, help="transfers of each kind")
    parser.add_argument("--steps", type=int, default=40, help="max_steps of each training run")
    parser.add_argument("--save-steps", type=int, default=5)
    parser.add_argument("--train-repeats", type=int, default=3, help="local + s3 run pairs per CPU placement")
    parser.add_argument("--folder-repeats", type=int, default=10, help="uploads of one checkpoint folder")
    parser.add_argument("--skip-transfers", action="store_true", help="only the training runs (a quick look)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        work = Path(tmp)
        server = S3Server(work / "moto.log")
        server.start()
        try:
            with aws_environment(server.env):
                import boto3

                boto3.client("s3").create_bucket(Bucket=BUCKET)
                moved = None if args.skip_transfers else transfers(work, args.size_mb * MiB, args.repeats)
                cost = training_cost(work, server, args)
        finally:
            server.stop()

    args.load = (load_before, os.getloadavg()[0])
    text = table(args, moved, cost)
    print(text)
    if moved is not None:
        RESULT.write_text(text + "\n")


if __name__ == "__main__":
    main()
