"""Multi-process data-parallel training: torchrun environment, seeded sharding, reductions.

Launch with `torchrun --standalone --nproc_per_node N -m autoperi.cli train ...` (or `autoperi train --nproc N`,
which runs exactly that). Each process trains on its shard of every global batch; `DistributedDataParallel`
averages gradients (gloo on CPU, NCCL on GPUs). Only rank 0 writes checkpoints, history and MLflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; world_size 1 without torchrun."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(backend: str | None = None) -> Dist:
    """Join the process group torchrun set up (env://); a no-op single-process `Dist` otherwise."""
    if not launched_by_torchrun():
        return Dist()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size())


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Dist:
    """The job as seen from an already-initialised process group (single-process if none)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(rank=dist.get_rank(), world_size=dist.get_world_size())
    return Dist()


def epoch_order(n_items: int, seed: int, epoch: int) -> np.ndarray:
    """The global order of the training items in `epoch`: a permutation from a generator seeded by (seed, epoch),
    so a resumed run replays exactly the order the interrupted one saw, whatever the number of processes."""
    return np.random.default_rng([seed, epoch]).permutation(n_items)


def global_batches(order: np.ndarray, batch_size: int, min_size: int = 1) -> list[np.ndarray]:
    """Consecutive chunks of `order` of `batch_size` (the global batch); a last chunk under `min_size` is dropped
    (every process needs at least one item)."""
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [c for c in chunks if len(c) >= min_size]


def shard(batch: np.ndarray, job: Dist) -> np.ndarray:
    """This process's share of a global batch: items rank, rank + world, … (DistributedSampler's interleave)."""
    return batch[job.rank :: job.world_size]


def all_reduce_sum(values: torch.Tensor, job: Dist) -> torch.Tensor:
    """Sum a float64 tensor over processes (identity in a single process)."""
    if job.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(obj, job: Dist) -> list:
    """Every process's `obj` (e.g. RNG states) on every process; [obj] in a single process."""
    if not job.enabled:
        return [obj]
    out = [None] * job.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, job: Dist):
    """Rank 0's `obj` on every process."""
    if not job.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(job: Dist) -> None:
    if job.enabled:
        dist.barrier()


class LossForward(torch.nn.Module):
    """Wraps a model with a `loss(batch) -> (total, terms)` method so DistributedDataParallel sees it as forward()
    (DDP synchronises gradients only for computations that run through its own forward)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def wrap_for_training(model: torch.nn.Module, job: Dist):
    """A callable batch → (total, terms): the model's own loss, or the DDP-wrapped one under torchrun.

    DDP broadcasts rank 0's parameters at construction, so every process starts from the same weights.
    `find_unused_parameters` lets loss terms skip parts of the model on some batches.
    """
    if not job.enabled:
        return model.loss
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return torch.nn.parallel.DistributedDataParallel(
        LossForward(model), device_ids=device_ids, find_unused_parameters=True
    )


def torchrun_command(nproc: int, module_args: list[str], module: str = "autoperi.cli") -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc_per_node N -m MODULE ARGS` (torchrun via this Python,
    so the venv's packages are used whatever PATH says)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module,
        *module_args,
    ]


def run_torchrun(nproc: int, module_args: list[str], threads: int = 1, module: str = "autoperi.cli") -> int:
    """Launch `nproc` processes with torchrun and wait; OMP_NUM_THREADS=`threads` each. Returns the exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if shutil.which(sys.executable) is None:
        raise FileNotFoundError(sys.executable)
    return subprocess.run(torchrun_command(nproc, module_args, module), env=env).returncode
