"""Devices and the process group: one GPU per process with NCCL, or Gloo on the CPU."""

from __future__ import annotations

import os

import ignite.distributed as idist
import torch
import torch.distributed as dist

__all__ = ["default_device", "distributed_backend", "global_rank", "init_distributed"]


def default_device(local_rank: int | str | None = None) -> torch.device:
    """``cuda:<local_rank>`` when a GPU is available, else the CPU.

    ``local_rank`` defaults to the ``LOCAL_RANK`` variable that ``torchrun`` sets (0 without it).
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    rank = int(os.environ.get("LOCAL_RANK", 0) if local_rank is None else local_rank)
    return torch.device(f"cuda:{rank}")


def distributed_backend() -> str:
    """``nccl`` on GPUs, ``gloo`` on the CPU."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def global_rank() -> int:
    """This process's rank: the process group's when it is initialised, else ``torchrun``'s ``RANK`` (0 without)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def init_distributed() -> torch.device:
    """Initialise the default process group from ``torchrun``'s variables and return this rank's device.

    Uses NCCL with one GPU per process when GPUs are available, else Gloo on the CPU, so the
    bundles' ``multi_gpu_train.yaml`` also runs (slowly) on a machine without GPUs.
    """
    device = default_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=distributed_backend())
    # ignite sets up its own view of the process group, collectively, the first time any handler asks for
    # the rank; rank-0-only handlers (checkpoint savers) would otherwise wait forever for the other ranks
    idist.sync()
    return device
