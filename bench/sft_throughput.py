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
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Dense bf16 peak (no sparsity) per card, by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12))


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str  # "llama" or "qwen2"
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool


@dataclass(frozen=True)
class DataPlan:
    examples: int
    median_tokens: int
    max_length: int  # max_seq_length / max_length for every setting; no example is longer
    sigma: float = 0.7


@dataclass(frozen=True)
class Plan:
    shapes: tuple[Shape, ...]
    data: DataPlan
    settings: tuple[str, ...]
    warmup: int
    steps: int


CPU_PLAN = Plan(
    shapes=(Shape("llama-256x4", "llama", 256, 4, 8, 4, 688, 32000, tied=False),),
    data=DataPlan(examples=400, median_tokens=120, max_length=512),
    settings=("baseline", "trl_best", "engine", "engine_unpacked"),
    warmup=2,  # a CPU step takes seconds (4k tokens, a 32k vocabulary on one thread) and is steady from the 2nd
    steps=3,
)
GPU_PLAN = Plan(
    shapes=(
        Shape("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, tied=True),
        Shape("llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, tied=True),
    ),
    data=DataPlan(examples=600, median_tokens=400, max_length=2048),
    settings=("baseline", "trl_no_ckpt", "trl_best", "trl_liger", "engine", "engine_unpacked"),
    warmup=5,
    steps=20,
)
SMOKE_SHAPES = {
    "cpu": (Shape("tiny-llama", "llama", 64, 2, 4, 2, 128, 4096, tied=False),),
    "gpu": (
        Shape("tiny-qwen2", "qwen2", 64, 2, 4, 2, 128, 4096, tied=True),
        Shape("tiny-llama", "llama", 64, 2, 4, 2, 128, 4096, tied=True),
    ),
}
ALL_SETTINGS = ("baseline", "trl_no_ckpt", "trl_best", "trl_liger", "engine", "engine_unpacked")
SMOKE_DATA = DataPlan(examples=48, median_tokens=60, max_length=256)

BATCH = 8
LEARNING_RATE = 1e-4
SEED = 1234
LOSS_WINDOW = 3

# Words for the synthetic conversations (what they say does not matter, only how many tokens they take).
_WORDS = (
    "the a cat dog model river city answer question water book door window garden song problem apple number time "
    "sees likes finds builds reads writes follows helps carries watches learns opens closes quickly slowly today "
    "again every day night with care morning what is of and to in how many why does it yes no because there are "
    "color sky blue sum capital training data token batch memory kernel layer vector matrix gradient loss value "
    "first second third small large long short red green yellow black white orange purple seven eleven forty"
).split()


# --------------------------------------------------------------------------------------------------- the parent


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
                _say(f"  {setting}: {_brief(results[setting])}")
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


def prepare(folder: Path, shape: Shape, data: DataPlan, bf16: bool) -> tuple[Path, Path, dict[str, Any], int, int]:
    """The model folder (random weights from ``shape``, the tiny BPE tokenizer with a dedicated pad token), the data
    JSONL, its token-length statistics, the parameter count and the pad id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config
    from transformers.utils import logging as hf_logging

    from finetuning.tiny import build_tiny_model

    hf_logging.disable_progress_bar()

    model_dir = folder / "model"
    build_tiny_model(model_dir, vocab_size=min(shape.vocab, 8000), seed=SEED, with_pad_token=True)  # the tokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if len(tokenizer) > shape.vocab:
        raise SystemExit(f"{shape.name}: the tokenizer has {len(tokenizer)} tokens, more than the vocab {shape.vocab}")
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[shape.arch]
    config = config_class(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=max(4096, data.max_length),
        tie_word_embeddings=shape.tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if bf16 else torch.float32)
    n_params = sum(p.numel() for p in model.parameters())  # shared (tied) tensors once
    model.save_pretrained(model_dir)  # replaces the tiny model's weights and config; the tokenizer stays
    del model

    records = synthetic_conversations(tokenizer, data, seed=SEED)
    lengths = sorted(conversation_tokens(tokenizer, r["messages"]) for r in records)
    if lengths[-1] > data.max_length:
        raise SystemExit(f"a conversation has {lengths[-1]} tokens, over max_length {data.max_length}")
    data_path = folder / "train.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    stats = {
        "examples": len(records),
        "median": lengths[len(lengths) // 2],
        "mean": round(sum(lengths) / len(lengths), 1),
        "max": lengths[-1],
        "total_tokens": sum(lengths),
        "tokenizer_size": len(tokenizer),
    }
    return model_dir, data_path, stats, n_params, int(tokenizer.pad_token_id)


def synthetic_conversations(tokenizer: Any, data: DataPlan, *, seed: int) -> list[dict[str, Any]]:
    """``data.examples`` conversations (one or two user/assistant turns) whose token lengths are log-normal around
    ``data.median_tokens``, none over ``data.max_length``."""
    rng = random.Random(seed)
    records = []
    cap = data.max_length - 24  # room for the template's scaffolding and BOS/EOS
    for index in range(data.examples):
        target = min(cap, max(24, round(rng.lognormvariate(math.log(data.median_tokens), data.sigma))))
        turns = 1 if target < 80 or rng.random() < 0.5 else 2
        budget = max(8, target - 6 * turns)  # about three tokens of scaffolding per message
        messages = []
        for _ in range(turns):
            share = budget // turns
            user = max(2, share * rng.randint(15, 45) // 100)
            messages.append({"role": "user", "content": _text(tokenizer, rng, user)})
            messages.append({"role": "assistant", "content": _text(tokenizer, rng, max(2, share - user))})
        records.append({"id": f"bench-{index}", "messages": messages})
    return records


def _text(tokenizer: Any, rng: random.Random, n_tokens: int) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(n_tokens + 8))
    ids = tokenizer(words, add_special_tokens=False)["input_ids"][:n_tokens]
    return str(tokenizer.decode(ids)).strip()


def conversation_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of a conversation as the engine counts them (rendered, then BOS ... EOS around it)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 2


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


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """engine / baseline and engine / the fastest TRL setting, for throughput and peak memory."""
    ok = {name: r for name, r in results.items() if "error" not in r}
    engine = ok.get("engine")
    if engine is None:
        return {}
    found: dict[str, Any] = {}
    trl = {name: r for name, r in ok.items() if name == "baseline" or name.startswith("trl_")}
    best = max(trl, key=lambda name: trl[name]["real_tokens_per_s"], default=None)
    for label, other in (("baseline", "baseline"), ("trl_best", "trl_best"), ("fastest_trl", best)):
        if other in ok:
            found[f"engine/{label}"] = {
                "against": other,
                "real_tokens_per_s": round(engine["real_tokens_per_s"] / ok[other]["real_tokens_per_s"], 2),
                "peak_mem": round(engine["peak_mem_bytes"] / ok[other]["peak_mem_bytes"], 2),
            }
    return found


def render(report: dict[str, Any]) -> str:
    gpu = report["meta"]["device"] == "cuda"
    lines = []
    for shape_name, shape in report["shapes"].items():
        head = ["setting", "real tok/s", "real fraction", "peak mem", "s/step", "examples/step", "final loss"]
        if gpu:
            head.append("MFU")
        lines += [f"### {shape_name}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for name, r in shape["settings"].items():
            if "error" in r:
                lines.append(f"| {name} | failed: {r['error']} |" + " |" * (len(head) - 2))
                continue
            cells = [
                name,
                f"{r['real_tokens_per_s']:,.0f}",
                f"{r['real_token_fraction']:.3f}",
                _bytes(r["peak_mem_bytes"]),
                f"{r['s_per_step']:.3f}",
                f"{r['examples_per_step']:.1f}",
                f"{r['final_loss']:.3f}" if r["final_loss"] is not None else "-",
            ]
            if gpu:
                cells.append(f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for label, ratio in shape["ratios"].items():
            lines.append(
                f"{label} ({ratio['against']}): real tok/s x{ratio['real_tokens_per_s']}, peak mem x{ratio['peak_mem']}"
            )
        devices = {r.get("device_name") for r in shape["settings"].values() if r.get("device_name")}
        if devices:
            lines.append(f"device: {', '.join(sorted(devices))}")
        lines.append("")
    return "\n".join(lines)


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"failed ({result['error']})"
    return (
        f"{result['real_tokens_per_s']:,.0f} real tok/s, {result['s_per_step']:.3f} s/step, "
        f"peak {_bytes(result['peak_mem_bytes'])} ({result['process_wall_s']} s in all)"
    )


def _bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


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


# ---------------------------------------------------------------------------------------------------- the child


def run_child(spec: dict[str, Any]) -> int:
    import torch

    if spec["device"] == "cpu":
        torch.set_num_threads(int(spec["threads"]))
    elif not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no GPU")
    meter = _meter_class()(spec)
    setting = spec["setting"]
    if setting.startswith("engine"):
        train_engine(spec, meter, packing=setting == "engine")
    else:
        train_trl(spec, meter, setting)
    result = meter.result()
    Path(spec["run_dir"], "result.json").write_text(json.dumps(result))
    return 0


def _meter_class() -> type:
    """The measuring callback (defined here so the parent never imports transformers before it needs to)."""
    import resource

    import torch
    from transformers import TrainerCallback

    class Meter(TrainerCallback):  # type: ignore[misc]
        """Token counts from a forward pre-hook (device tensors, read once), step times from ``on_step_end``."""

        def __init__(self, spec: dict[str, Any]) -> None:
            self.spec = spec
            self.cuda = spec["device"] == "cuda"
            self.pad_id = int(spec["pad_id"])
            self.step = 0
            self.times: list[float] = []
            self.counts: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []  # step, computed, real, examples
            self.losses: list[float] = []
            self.hooked = False

        def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                return
            mask = kwargs.get("attention_mask")
            real_mask = mask.bool() if mask is not None and mask.dim() == 2 else ids != self.pad_id
            positions = kwargs.get("position_ids")
            if positions is not None and positions.shape == ids.shape:
                examples = ((positions == 0) & real_mask).sum()  # packed rows: each example restarts at 0
            else:
                examples = torch.tensor(ids.shape[0], device=ids.device)
            self.counts.append((self.step, ids.numel(), real_mask.sum(), examples))

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if model is not None and not self.hooked:
                model.register_forward_pre_hook(self._hook, with_kwargs=True)
                self.hooked = True
            if self.cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.step += 1

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def result(self) -> dict[str, Any]:
            warmup, steps = int(self.spec["warmup"]), int(self.spec["steps"])
            if not self.hooked or len(self.times) < warmup + steps + 1:
                raise RuntimeError(f"expected {warmup + steps} steps, timed {len(self.times) - 1}")
            seconds = self.times[warmup + steps] - self.times[warmup]
            window = [c for c in self.counts if warmup <= c[0] < warmup + steps]
            computed = sum(c[1] for c in window)
            real = int(torch.stack([c[2] for c in window]).sum().item())
            examples = int(torch.stack([c[3] for c in window]).sum().item())
            tokens_per_s = real / seconds
            result: dict[str, Any] = {
                "real_tokens_per_s": round(tokens_per_s, 1),
                "real_token_fraction": round(real / computed, 4),
                "s_per_step": round(seconds / steps, 4),
                "final_loss": round(sum(self.losses[-LOSS_WINDOW:]) / len(self.losses[-LOSS_WINDOW:]), 4)
                if self.losses
                else None,
                "real_tokens_per_step": round(real / steps, 1),
                "computed_tokens_per_step": round(computed / steps, 1),
                "examples_per_step": round(examples / steps, 2),
                "timed_steps": steps,
            }
            if self.cuda:
                name = torch.cuda.get_device_name()
                peak = next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)
                result["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
                result["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
                result["device_name"] = name
                result["mfu"] = round(6 * self.spec["n_params"] * tokens_per_s / peak, 4) if peak else None
            else:
                result["peak_mem_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
            return result

    return Meter


def train_trl(spec: dict[str, Any], meter: Any, setting: str) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = [json.loads(line) for line in Path(spec["data_path"]).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"messages": r["messages"]} for r in records])
    cpu = spec["device"] == "cpu"
    options: dict[str, Any] = {
        "baseline": {},
        "trl_no_ckpt": {"gradient_checkpointing": False},
        "trl_best": {"packing": True, "packing_strategy": "bfd", "gradient_checkpointing": False},
        "trl_liger": {
            "packing": True,
            "packing_strategy": "bfd",
            "gradient_checkpointing": False,
            "use_liger_kernel": True,
        },
    }[setting]
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


if __name__ == "__main__":
    sys.exit(main())
