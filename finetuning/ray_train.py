"""A training run on a Ray cluster: the entrypoint of the Ray job the service's worker submits for a multi-node job.

Ray Train's ``TorchTrainer`` starts one Ray worker per rank (``ScalingConfig(num_workers=world_size)``, GPUs when the
cluster has them) and restarts the whole group from the last complete checkpoint when a worker or a node is lost
(``FailureConfig``). Each Ray worker runs the very command a local run runs (``python -m finetuning.cli ...``) as one
``torch.distributed`` rank: the same transformers/TRL training, DDP, FSDP or DeepSpeed as configured, its own process
(signals, exit codes and memory as on one machine). Ray Train's own process group only carries the rendezvous: rank 0
picks the address and port the engines meet at and sends it to the others.

What the worker sees comes through the Ray job's log: the engines' output, and rank 0's events as marked lines
(:data:`finetuning.contract.RAY_EVENT_MARKER`). A stop with a checkpoint is asked for with a file in the run's output
location (:data:`finetuning.contract.STOP_REQUEST_FILE`): each rank signals its own engine.

    python -m finetuning.ray_train --workers 4 --job-id JOB --stop-file s3://b/job/.stop-requested -- sft config.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from finetuning.contract import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    RAY_EVENT_MARKER,
    RAY_LAUNCH_MARKER,
    STOP_SIGNAL,
)
from finetuning.storage.uri import S3Uri, is_remote
from finetuning.subprocesses import die_with_parent

logger = logging.getLogger("finetuning.ray_train")

# exit codes a rank's engine ends with on its own terms: anything else is a crash, and Ray Train restarts the group
_FINAL_EXIT_CODES = frozenset({EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED})
STOP_POLL_S = 2.0
EVENTS_POLL_S = 0.2


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetuning.ray_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, required=True, help="Ranks in all (Ray workers, one per GPU).")
    parser.add_argument("--job-id", required=True, help="The service's job id (names the Ray Train run).")
    parser.add_argument(
        "--max-failures", type=int, default=3, help="Restarts after a lost worker or node before the run fails."
    )
    parser.add_argument("--stop-file", default=None, help="Stop at a checkpoint once this file or object exists.")
    parser.add_argument("engine_args", nargs=argparse.REMAINDER, help="-- and the engine's arguments (sft cfg.yaml)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    engine_args = list(args.engine_args)
    if engine_args[:1] == ["--"]:
        engine_args = engine_args[1:]
    if not engine_args:
        print("error: no engine arguments after --", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # read before Ray starts anything: the ranks get the config from here, not from a working folder of their own
    config_files = _config_files(engine_args)
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init()  # inside a Ray job: the job's cluster
    use_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    # the run's state lives with the driver: on a node that can be lost with a rank, it would take the run with it
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    run: Any = ray.remote(num_cpus=0)(_RunState).options(scheduling_strategy=here).remote()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "engine_args": engine_args,
            "job_id": args.job_id,
            "stop_file": args.stop_file,
            "run": run,
            # the job's working folder on the driver's node: the config files, read by every rank's copy of it
            "config_files": config_files,
        },
        # gloo for the rendezvous only, whatever the engines use (NCCL on GPUs)
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=f"finetuning-{args.job_id}",
            failure_config=FailureConfig(max_failures=args.max_failures),
        ),
    )
    logger.info("training on %d Ray workers (%s)", args.workers, "GPU" if use_gpu else "CPU")
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray Train's TrainingFailedError once the restarts are used up
        logger.error("the training failed on the Ray cluster: %s", exc)
        return EXIT_FAILED
    finally:
        # the driver's own count, from its own output: a rank's marker can be lost with the node that printed it
        _write_marked(RAY_LAUNCH_MARKER, {"launch": ray.get(run.launch_count.remote())})
    if result.error is not None:
        logger.error("the training failed on the Ray cluster: %s", result.error)
        return EXIT_FAILED
    return int(ray.get(run.exit_code.remote()))


class _RunState:
    """What the group's rank 0 tells the driver: how many times the group started (a restarted group resumes from its
    newest checkpoint) and how its engine ended."""

    def __init__(self) -> None:
        self.launches = 0
        self.returncode = EXIT_FAILED

    def launch(self) -> int:
        self.launches += 1
        return self.launches

    def launch_count(self) -> int:
        return self.launches

    def ended(self, returncode: int) -> None:
        self.returncode = returncode

    def exit_code(self) -> int:
        return self.returncode


def _config_files(engine_args: list[str]) -> dict[str, str]:
    """The config file the command names (its last argument), as text: Ray workers on other nodes get their own copy
    of the job's working folder, and a restart writes a changed copy."""
    path = Path(engine_args[-1])
    if not path.is_file():
        raise FileNotFoundError(f"the Ray job's working folder {Path.cwd()} holds no {path}: {sorted(os.listdir())}")
    return {path.name: path.read_text(encoding="utf-8")}


def _train_loop(config: dict[str, Any]) -> None:
    """One rank: meet the others, run the engine as a process, report how it ended."""
    import ray
    import ray.train
    import torch.distributed as dist
    from ray.train._internal.utils import get_address_and_port

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    meeting: list[Any] = [None]
    if rank == 0:
        launch = ray.get(config["run"].launch.remote())
        address, port = get_address_and_port()
        meeting = [(launch, address, port)]
        _write_marked(RAY_LAUNCH_MARKER, {"launch": launch, "world_size": world_size})
    dist.broadcast_object_list(meeting, src=0)
    launch, address, port = meeting[0]

    workdir = Path(tempfile.mkdtemp(prefix=f"finetuning-{config['job_id']}-rank{rank}-"))
    engine_args = list(config["engine_args"])
    for name, text in config["config_files"].items():
        if launch > 1:
            text = _resuming(text)
        (workdir / name).write_text(text, encoding="utf-8")
    engine_args[-1] = str(workdir / Path(engine_args[-1]).name)
    events_file = workdir / "events.jsonl"
    argv = [sys.executable, "-m", "finetuning.cli", "--events-file", str(events_file), *engine_args]
    env = {
        **os.environ,
        "MASTER_ADDR": address,
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(context.get_local_rank()),
        "LOCAL_WORLD_SIZE": str(context.get_local_world_size()),
        "NODE_RANK": str(context.get_node_rank()),
        "PYTHONUNBUFFERED": "1",
    }
    engine = subprocess.Popen(
        argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(ignore=(STOP_SIGNAL,))
    )
    done = threading.Event()
    watchers = [threading.Thread(target=_watch_stop, args=(config.get("stop_file"), engine, done), daemon=True)]
    if rank == 0:
        watchers.append(threading.Thread(target=_forward_events, args=(events_file, done), daemon=True))
    for watcher in watchers:
        watcher.start()
    returncode = engine.wait()
    done.set()
    for watcher in watchers:
        watcher.join(timeout=10)
    if returncode not in _FINAL_EXIT_CODES:
        # a crash, or this rank's peer was lost: Ray Train restarts the group (from the newest checkpoint)
        raise RuntimeError(f"rank {rank}: the engine exited with {returncode}")
    if rank == 0:
        ray.get(config["run"].ended.remote(returncode))


def _resuming(config_text: str) -> str:
    """A restarted group continues from the newest complete checkpoint in its output folder."""
    data = yaml.safe_load(config_text) or {}
    run_conf = dict(data.get("run_conf") or {})
    run_conf["resume_from_checkpoint"] = "auto"
    data["run_conf"] = run_conf
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _write_marked(marker: str, data: dict[str, Any] | str) -> None:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    # straight to the file descriptor: one write per line, so Ray's log forwarding never splits or reorders it
    os.write(sys.stdout.fileno(), f"{marker}{text}\n".encode())


def _forward_events(events_file: Path, done: threading.Event) -> None:
    """Rank 0's events, as marked lines of the Ray job's log, complete lines only, until the engine has ended."""
    offset = 0
    while True:
        finished = done.is_set()
        try:
            with events_file.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            if line.strip():
                _write_marked(RAY_EVENT_MARKER, line)
        offset += end
        if finished:
            return
        time.sleep(EVENTS_POLL_S)


def _watch_stop(stop_file: str | None, engine: subprocess.Popen[bytes], done: threading.Event) -> None:
    """Signal the engine to stop at a checkpoint once the stop file appears; again each second until it exits (it
    ignores the signal until its handler is installed)."""
    if not stop_file:
        return
    while not done.wait(STOP_POLL_S):
        if _stop_requested(stop_file):
            logger.warning("stop requested: the engine saves a checkpoint and stops")
            while True:
                engine.send_signal(STOP_SIGNAL)
                if done.wait(1.0):
                    return


def _stop_requested(location: str) -> bool:
    try:
        if is_remote(location):
            from finetuning.storage.client import exists

            return exists(S3Uri.parse(location))
        return Path(location).exists()
    except Exception as exc:  # an unreachable bucket is not a stop; it is tried again
        logger.warning("could not look for the stop request %s: %s", location, exc)
        return False


if __name__ == "__main__":
    sys.exit(main())
