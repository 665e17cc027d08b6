"""How a worker launches a job: the engine command line for its kind, the files it needs in the job folder, and the
config a run after the first uses (a training run continues from its newest checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobcore.models import TRAINING_KINDS, JobKind


@dataclass(frozen=True)
class EngineCommand:
    """What a worker runs for a job, from inside the job's folder."""

    argv: list[str]
    files: dict[str, str]  # file name (in the job folder) -> contents to write first


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def engine_command(
    kind: JobKind,
    config: dict[str, Any],
    job_dir: Path,
    *,
    outputs: str,
    python: str,
    num_processes: int = 1,
    events_file: Path,
    training_config: dict[str, Any] | None = None,
) -> EngineCommand:
    """The engine CLI invocation for a job whose resolved config (paths in force) is ``config``; ``outputs`` is where
    the job's outputs go (its folder, or its prefix in a bucket: the engine uploads them)."""
    common = ["--events-file", str(events_file)]
    if kind in TRAINING_KINDS:
        launcher = [python, "-m", "finetuning.cli"]
        if num_processes > 1:
            launcher = [
                python,
                "-m",
                "accelerate.commands.launch",
                "--num_processes",
                str(num_processes),
                "--multi_gpu",
                "-m",
                "finetuning.cli",
            ]
        argv = [*launcher, *common, "--num-preprocess-workers", "1", kind.value, "config.yaml"]
        return EngineCommand(argv, {"config.yaml": _yaml(config)})
    if kind == JobKind.GENERATE:
        argv = [python, "-m", "finetuning.tools.generate", *common, "config.yaml", f"{outputs}/output.yaml"]
        return EngineCommand(argv, {"config.yaml": _yaml(config)})
    if kind == JobKind.MERGE:
        device_map = config["device_map"]
        argv = [
            python,
            "-m",
            "finetuning.tools.merge",
            *common,
            config["base_model"],
            config["adapter"],
            f"{outputs}/merged",
            "--device_map",
            device_map if isinstance(device_map, str) else _json(device_map),
        ]
        if config.get("tokenizer"):
            argv += ["--tokenizer", config["tokenizer"]]
        return EngineCommand(argv, {})
    if kind == JobKind.ADAPTER_CONVERSION:
        # converted in a copy: the job that trained the adapter keeps its output as it was
        argv = [
            python,
            "-m",
            "finetuning.tools.vllm_adapter",
            *common,
            config["adapter"],
            "--output-dir",
            f"{outputs}/adapter",
        ]
        files: dict[str, str] = {}
        trained_with = config.get("training_config") or training_config
        if trained_with:
            files["training-config.yaml"] = _yaml(trained_with)
            argv += ["--training-config", "training-config.yaml"]
        return EngineCommand(argv, files)
    raise ValueError(f"unknown job kind {kind}")


def ray_command(
    kind: JobKind, config: dict[str, Any], *, job_id: str, world_size: int, max_failures: int, stop_file: str
) -> EngineCommand:
    """The entrypoint of the Ray job that trains ``kind`` on a Ray cluster over ``world_size`` ranks (Ray Train); it
    runs in a copy of the folder holding the command's files, with the cluster's own Python."""
    if kind not in TRAINING_KINDS:
        raise ValueError(f"{kind.value} jobs do not run on a Ray cluster")
    argv = ["python", "-m", "finetuning.ray_train", "--workers", str(world_size), "--job-id", job_id]
    argv += ["--max-failures", str(max_failures), "--stop-file", stop_file]
    argv += ["--", "--num-preprocess-workers", "1", kind.value, "config.yaml"]
    return EngineCommand(argv, {"config.yaml": _yaml(config)})


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def retry_config(kind: JobKind, config: dict[str, Any], attempt: int, checkpoint: str | None = None) -> dict[str, Any]:
    """A training job run again (its worker was lost or shut down, or it was resumed) continues from the newest
    checkpoint in its output folder (``auto``), unless the user named a checkpoint to resume from and this job never
    stopped with one of its own (``checkpoint``: a hand-back's or a cancel's, saved in that folder)."""
    if attempt <= 1 or kind not in TRAINING_KINDS:
        return config
    run_conf = dict(config.get("run_conf") or {})
    if run_conf.get("resume_from_checkpoint") in (None, False) or checkpoint:
        run_conf["resume_from_checkpoint"] = "auto"
    return {**config, "run_conf": run_conf}
