"""The throughputs the pre-flight plan's time estimate starts from (:mod:`finetuning.plan`), each with its source.

Two kinds of numbers, never mixed up in the report:

- **measured**: the CPU entry, from ``bench/results/cpu.json`` (``bench/sft_throughput.py --device cpu``, the
  ``engine`` setting: ``run_sft`` with its defaults, packing on, full finetuning, fp32, one thread). The plan turns it
  into an achieved FLOP rate (model FLOPs per token x real tokens per second) and divides the planned run's FLOPs by
  it, so a model of another size gets the same achieved rate.
- **assumed**: every GPU. No GPU throughput has been measured for this engine yet (``bench/results/gpu.json`` does
  not exist); a GPU estimate is the run's model FLOPs divided by the card's dense bf16 peak (its data sheet) times an
  assumed model-FLOPs utilisation (:data:`ASSUMED_MFU`). Replace it with a measured entry once
  ``python bench/sft_throughput.py --device cuda`` has been run on the card.

Memory figures are the usable device memory as the driver reports it (``nvidia-smi``/``rocm-smi``), in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class MeasuredThroughput:
    """A measured training throughput: ``real_tokens_per_s`` of a model of ``parameters`` (shape below) trained on
    examples of ``mean_tokens`` tokens."""

    device: str
    parameters: int
    hidden: int
    layers: int
    mean_tokens: float
    real_tokens_per_s: float
    threads: int
    source: str


@dataclass(frozen=True)
class Accelerator:
    """A GPU the plan knows: usable memory and dense bf16 peak (no sparsity), from the vendor's data sheet."""

    name: str
    memory_bytes: int
    peak_bf16_flops: float
    source: str
    memory_bandwidth: float  # bytes/s, the data sheet's: decoding (GRPO's sampling) is bound by it


# bench/results/cpu.json, shapes["llama-256x4"]: model (parameters, hidden, layers), data.mean, and
# settings["engine"].real_tokens_per_s; meta.threads. Measured 2026-11-28 on the 2-core development machine.
CPU_MEASURED = MeasuredThroughput(
    device="cpu",
    parameters=19_286_272,
    hidden=256,
    layers=4,
    mean_tokens=150.7,
    real_tokens_per_s=891.6,
    threads=1,
    source="measured: bench/results/cpu.json (bench/sft_throughput.py --device cpu, setting 'engine', llama-256x4, "
    "fp32, 1 thread, 2026-11-28)",
)

ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator(
            "H100-80GB", 81_559 * MiB, 989e12, "NVIDIA H100 SXM data sheet: 989 TFLOPS dense BF16, 3.35 TB/s", 3.35e12
        ),
        Accelerator(
            "H200-141GB", 143_771 * MiB, 989e12, "NVIDIA H200 SXM data sheet: 989 TFLOPS dense BF16, 4.8 TB/s", 4.8e12
        ),
        Accelerator(
            "A100-80GB", 81_920 * MiB, 312e12, "NVIDIA A100 data sheet: 312 TFLOPS dense BF16, 2.0 TB/s", 2.039e12
        ),
        Accelerator(
            "A100-40GB", 40_960 * MiB, 312e12, "NVIDIA A100 data sheet: 312 TFLOPS dense BF16, 1.6 TB/s", 1.555e12
        ),
        Accelerator(
            "L40S-48GB", 46_068 * MiB, 362e12, "NVIDIA L40S data sheet: 362 TFLOPS dense BF16, 864 GB/s", 864e9
        ),
        Accelerator(
            "RTX4090-24GB",
            24_564 * MiB,
            165e12,
            "NVIDIA RTX 4090: 165 TFLOPS dense BF16 (FP32 accumulate), 1.0 TB/s",
            1.008e12,
        ),
        Accelerator(
            "MI300X-192GB",
            196_592 * MiB,
            1307e12,
            "AMD Instinct MI300X data sheet: 1307 TFLOPS dense BF16, 5.3 TB/s",
            5.3e12,
        ),
        Accelerator(
            "MI250X-128GB",
            131_072 * MiB,
            383e12,
            "AMD Instinct MI250X data sheet: 383 TFLOPS dense BF16, 3.2 TB/s",
            3.2768e12,
        ),
    )
}

# Model-FLOPs utilisation assumed for a GPU: a packed, padding-free run without activation checkpointing. Public
# reports for 1-10B decoder finetuning with fused kernels land between 0.3 and 0.5; 0.35 is the cautious end.
# ASSUMED, not measured here.
ASSUMED_MFU = 0.35
# Share of the data-sheet memory bandwidth a decoding step achieves reading the weights (GRPO's sampling). ASSUMED.
ASSUMED_BANDWIDTH_USE = 0.6


def accelerator(name: str) -> Accelerator:
    """The accelerator called ``name`` (case and ``-``/``_`` ignored); ValueError listing the known ones."""
    wanted = name.replace("_", "-").upper()
    for known, entry in ACCELERATORS.items():
        if known.upper() == wanted or known.split("-")[0].upper() == wanted:
            return entry
    raise ValueError(f"unknown GPU {name!r}: known are {', '.join(ACCELERATORS)}")
