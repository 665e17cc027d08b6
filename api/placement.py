"""Where a training job will run and how its batch is split: the executor (a worker's machine or a Ray cluster), the
nodes and processes it asks for, the world size, and the per-device batch sizes that keep its total batch size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from finetuning.batchsize import BatchSizeError, plan_batches
from finetuning.config.training import BatchsizeConf
from jobcore.executors import Executor, executor_for, ray_unreachable
from jobcore.settings import ServiceSettings

RAY_RETRY_AFTER_S = 30


@dataclass(frozen=True)
class Placement:
    executor: Executor
    nodes: int
    processes_per_node: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


def placement(settings: ServiceSettings, nodes: int, processes_per_node: int) -> Placement:
    """The job's placement; a 422 when it asks for several nodes and the service has no Ray cluster."""
    executor = executor_for(settings, nodes)
    if executor == "ray" and not settings.ray_address:
        raise ApiError(
            422,
            "multi_node_unavailable",
            f"nodes={nodes} needs a Ray cluster and this service has none (FINETUNING_RAY_ADDRESS is not set): "
            "submit with nodes=1, or ask the operator to connect a Ray cluster",
            "nodes",
        )
    return Placement(executor, nodes, processes_per_node)


async def check_cluster(settings: ServiceSettings, where: Placement) -> None:
    """A 503 at once when the job needs the Ray cluster and it does not answer: better than a job that fails after
    waiting in the queue."""
    if where.executor != "ray" or not settings.ray_address:
        return
    problem = await run_in_threadpool(ray_unreachable, settings.ray_address)
    if problem is not None:
        raise ApiError(
            503,
            "ray_unavailable",
            f"{problem}: the job was not submitted; try again later",
            headers={"Retry-After": str(RAY_RETRY_AFTER_S)},
        )


def resolved_placement(where: Placement, batchsize: BatchsizeConf | None) -> dict[str, Any]:
    """What the job's ``resolved`` says about where it runs: the batch plan for its world size (the total batch size
    stays what the config says, whatever the world size)."""
    fields: dict[str, Any] = {
        "executor": where.executor,
        "nodes": where.nodes,
        "processes_per_node": where.processes_per_node,
        "world_size": where.world_size,
    }
    if batchsize is None:
        return fields
    try:
        plan = plan_batches(batchsize, where.world_size)
    except BatchSizeError as exc:
        raise ApiError(422, "invalid_config", str(exc), "batchsize_conf.total_train_batch_size") from None
    fields.update(
        per_device_train_batch_size=plan.per_device_train_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        per_device_eval_batch_size=plan.per_device_eval_batch_size,
        total_train_batch_size=plan.total_train_batch_size,
    )
    return fields
