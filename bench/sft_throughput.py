"""SFT throughput: the engine against stock TRL, on the same data, device, model and seed, in one run.

    python bench/sft_throughput.py --device cpu    # `make bench`: a small Llama, a few minutes on two cores
    python bench/sft_throughput.py --device cuda   # one GPU: Qwen2.5-0.5B and Llama-3.2-1B shapes, bf16, <= 8 min
                                                   # on an H100; writes bench/results/gpu.json
    python bench/sft_throughput.py --device cpu --plan gpu --smoke   # the GPU plan's code path, tiny, on the CPU

Settings, each in its own subprocess (a clean peak memory, no state shared between them):

- ``baseline``: ``trl.SFTTrainer`` with its defaults (gradient checkpointing on, batches padded to the longest
  example, bf16 on a GPU; fp32 on the CPU), conversational ``messages`` data.
- ``trl_no_ckpt`` (GPU plan): the baseline without gradient checkpointing.
- ``trl_best``: TRL's fastest setting: BFD packing (padding-free) without gradient checkpointing.
- ``trl_liger`` (GPU plan, when ``liger_kernel`` imports): ``trl_best`` with ``use_liger_kernel``.
- ``engine``: ``finetuning.methods.sft.run_sft`` with its defaults (packing and the chunked loss on; Liger kernels
  on a GPU when installed), full finetuning (``NO_PEFT``).
- ``engine_unpacked``: the engine with ``sft_args.packing: false``, for reference.

Every setting trains the same random-initialised model (built from a config, no download; saved once, loaded by
each run: TRL from the path, the engine through ``run_conf.model``; on a GPU in bf16 for both) on the same
conversations (written as JSONL for the engine, given to TRL as a ``datasets.Dataset``), with the same learning rate,
seed, ``max_length`` and a batch of 8 per optimizer step. A packed setting's batch counts packed rows (of up to
``max_length`` tokens), an unpacked one's counts examples: real tokens per second is the comparable figure, and the
table also shows the examples per step.

Measured after ``--warmup`` steps over ``--steps`` steps, the same way for every setting: a forward pre-hook on the
model counts computed tokens (``input_ids.numel()``) and real ones (the attention mask's sum, else the tokens that
are not the pad token, which never occurs in the data), accumulated on the device and read once at the end; step
times come from ``on_step_end`` (the only place that synchronizes with a GPU). Peak memory is the child's peak RSS
on the CPU and ``torch.cuda.max_memory_allocated`` on a GPU. MFU = 6 x parameters x real tokens/s / the card's dense
bf16 peak. The final loss is the mean of the last three logged losses (one per step); packed settings see more
examples per step, so their loss after the same number of steps is lower.

Benchmarks are run by hand (or on a GPU machine) and never asserted in CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the repository root is not

from bench.sft_child import run_child  # noqa: E402
from bench.sft_data import prepare  # noqa: E402
from bench.sft_plans import (  # noqa: E402
    ALL_SETTINGS,
    BATCH,
    CPU_PLAN,
    GPU_PLAN,
    LEARNING_RATE,
    SEED,
    SMOKE_DATA,
    SMOKE_SHAPES,
    Plan,
)
from bench.sft_report import brief, ratios, render  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--plan", choices=("cpu", "gpu"), help="sizes and settings (default: by --device)")
    parser.add_argument("--smoke", action="store_true", help="tiny model and data, 1 + 2 steps: checks the code path")
    parser.add_argument("--settings", help=f"comma-separated, of {', '.join(ALL_SETTINGS)} (default: the plan's)")
    parser.add_argument("--shapes", help="comma-separated subset of the plan's model shapes")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: by plan)")
    parser.add_argument("--steps", type=int, help="timed steps (default: by plan)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run (default 1)")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/<plan>.json; none with --smoke)")
    parser.add_argument("--workdir", type=Path, help="models, data and run folders (default: a temporary folder)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(json.loads(args.child.read_text()))

    plan_name = args.plan or ("gpu" if args.device == "cuda" else "cpu")
    plan = GPU_PLAN if plan_name == "gpu" else CPU_PLAN
    if args.smoke:
        plan = Plan(SMOKE_SHAPES[plan_name], SMOKE_DATA, plan.settings, warmup=1, steps=2)
    shapes = _subset(plan.shapes, args.shapes, lambda s: s.name)
    settings = _subset(ALL_SETTINGS, args.settings, lambda s: s) if args.settings else plan.settings
    if "trl_liger" in settings and importlib.util.find_spec("liger_kernel") is None:
        settings = tuple(s for s in settings if s != "trl_liger")
        _say("liger_kernel does not import here: trl_liger skipped")
    warmup = plan.warmup if args.warmup is None else args.warmup
    steps = plan.steps if args.steps is None else args.steps
    bf16 = args.device == "cuda"
    out = args.out or (None if args.smoke else RESULTS_DIR / f"{plan_name}.json")

    started = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sft-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "meta": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "device": args.device,
            "plan": plan_name + (" (smoke)" if args.smoke else ""),
            "batch": BATCH,
            "learning_rate": LEARNING_RATE,
            "seed": SEED,
            "warmup_steps": warmup,
            "timed_steps": steps,
            "threads": args.threads if args.device == "cpu" else None,
            "dtype": "bfloat16" if bf16 else "float32",
            "versions": _versions(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "shapes": {},
    }
    try:
        for shape in shapes:
            model_dir, data_path, data_stats, n_params, pad_id = prepare(workdir / shape.name, shape, plan.data, bf16)
            _say(
                f"\n## {shape.name}: {n_params / 1e6:.1f}M parameters; {data_stats['examples']} conversations, "
                f"tokens median {data_stats['median']}, mean {data_stats['mean']}, max {data_stats['max']} "
                f"(max_length {plan.data.max_length})"
            )
            results: dict[str, Any] = {}
            for setting in settings:
                spec = {
                    "setting": setting,
                    "device": args.device,
                    "bf16": bf16,
                    "model_dir": str(model_dir),
                    "data_path": str(data_path),
                    "run_dir": str(workdir / shape.name / setting),
                    "max_length": plan.data.max_length,
                    "warmup": warmup,
                    "steps": steps,
                    "threads": args.threads,
                    "pad_id": pad_id,
                    "n_params": n_params,
                }
                results[setting] = run_setting(spec)
                _say(f"  {setting}: {brief(results[setting])}")
            report["shapes"][shape.name] = {
                "model": {**asdict(shape), "parameters": n_params},
                "data": data_stats,
                "settings": results,
                "ratios": ratios(results),
            }
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    report["meta"]["wall_s"] = round(wall, 1)
    _say("")
    _say(render(report))
    _say(f"wall time {wall:.0f} s")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        _say(f"results: {_display_path(out)}")
    failed = [f"{s}/{k}" for s, r in report["shapes"].items() for k, v in r["settings"].items() if "error" in v]
    return 1 if failed else 0


def _subset(items: tuple[Any, ...], wanted: str | None, name: Any) -> tuple[Any, ...]:
    if not wanted:
        return items
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [n for n in names if n not in {name(i) for i in items}]
    if unknown:
        raise SystemExit(f"unknown {', '.join(unknown)}; choose from {', '.join(name(i) for i in items)}")
    return tuple(i for i in items if name(i) in names)


def run_setting(spec: dict[str, Any]) -> dict[str, Any]:
    """One setting in a fresh Python process; its log goes to ``run_dir/log.txt``."""
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    threads = str(spec["threads"])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_path = run_dir / "log.txt"
    started = time.perf_counter()
    with log_path.open("w") as log:
        code = subprocess.call(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=run_dir,
        )
    result_path = run_dir / "result.json"
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        _say(f"  {spec['setting']} failed (exit {code}); the end of {log_path}:\n    " + "\n    ".join(tail))
        return {"error": f"exit {code}", "log_tail": tail[-5:]}
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["process_wall_s"] = round(time.perf_counter() - started, 1)
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "accelerate", "datasets", "liger-kernel"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
