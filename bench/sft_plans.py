"""The SFT benchmark's plans: the model shapes, data sizes, settings and step counts per plan, and the constants every
setting shares (batch, learning rate, seed)."""

from __future__ import annotations

from dataclasses import dataclass

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
