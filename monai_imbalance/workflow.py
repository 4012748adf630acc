"""Small helpers the bundles call from their configs: run folders, resuming, devices, distributed set-up.

A bundle's ``train.yaml`` keeps the "last" checkpoint (network, optimizer, scheduler and trainer state)
in its checkpoint folder. :func:`resume_checkpoint` decides, before the run starts, whether that
checkpoint is resumed, and refuses to silently overwrite a previous run's checkpoints::

    resume: false   # --resume true continues an interrupted run
    overwrite: false  # --overwrite true starts afresh over an existing run
    resume_path: $monai_imbalance.workflow.resume_checkpoint(@ckpt_dir, @resume, @overwrite)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import ignite.distributed as idist
import torch
import torch.distributed as dist

from monai_imbalance.reporting import load_metrics_json

__all__ = [
    "LAST_CHECKPOINT_PREFIX",
    "as_bool",
    "default_device",
    "distributed_backend",
    "init_distributed",
    "latest_checkpoint",
    "resume_checkpoint",
    "trained_class_names",
]

LAST_CHECKPOINT_PREFIX = "last"
"""``file_prefix`` of the bundles' per-epoch ``CheckpointSaver`` (files ``last_checkpoint_epoch=N.pt``)."""

_EPOCH = re.compile(r"epoch=(\d+)")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "none", "null", ""}


def as_bool(value: object) -> bool:
    """Read a command-line switch: ``True``/``False`` and also ``true``, ``yes``, ``1``, ``false``, ``no``, ``0``.

    ``python -m monai.bundle run --resume true`` hands the config the *string* ``"true"`` (only the
    Python spelling ``True`` becomes a bool), and the string ``"false"`` would count as true. The bundles
    read every switch through this function.

    Raises:
        ValueError: a value that is not a recognisable switch (e.g. ``"maybe"`` or ``2``).
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a switch (true/false, yes/no, 1/0), got {value!r}")


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = LAST_CHECKPOINT_PREFIX) -> str | None:
    """Path of the per-epoch checkpoint with the highest epoch in ``ckpt_dir``, or ``None``.

    Looks for MONAI ``CheckpointSaver`` files named ``{prefix}_checkpoint_epoch=N.pt``.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    candidates = []
    for path in ckpt_dir.glob(f"{prefix}_checkpoint_epoch=*.pt"):
        match = _EPOCH.search(path.name)
        if match:
            candidates.append((int(match.group(1)), path))
    return str(max(candidates)[1]) if candidates else None


def resume_checkpoint(ckpt_dir: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> str | None:
    """Checkpoint to resume from, or ``None`` to start afresh; refuses to clobber an earlier run.

    Args:
        ckpt_dir: the bundle's checkpoint folder.
        resume: continue from the latest ``last_checkpoint_epoch=N.pt`` in ``ckpt_dir``.
        overwrite: start afresh even though ``ckpt_dir`` holds checkpoints of an earlier run.

    Raises:
        FileNotFoundError: ``resume`` is set but there is no checkpoint to resume from.
        FileExistsError: ``ckpt_dir`` holds an earlier run's checkpoints and neither flag is set.
    """
    latest = latest_checkpoint(ckpt_dir)
    resume, overwrite = as_bool(resume), as_bool(overwrite)
    if resume:
        if latest is None:
            raise FileNotFoundError(
                f"--resume true, but {ckpt_dir} holds no "
                f"'{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=N.pt' to resume from"
            )
        return latest
    if latest is not None and not overwrite:
        raise FileExistsError(
            f"{ckpt_dir} already holds checkpoints of an earlier run ({Path(latest).name}). "
            "Pass --resume true to continue it, --overwrite true to start afresh over it, "
            "or --ckpt_dir <another folder>."
        )
    return None


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


def trained_class_names(ckpt_dir: str | os.PathLike, key: str = "validation") -> list[str]:
    """Class names of a trained bundle model, read from the validation report in ``<ckpt_dir>/metrics.json``.

    Inference on a folder of new images does not load the training data, so the class names (and their
    number, which sizes the network's output) come from the report that training wrote beside ``model.pt``.

    Raises:
        FileNotFoundError: no ``metrics.json`` in ``ckpt_dir``.
        ValueError: it holds no ``class_names`` under ``key``.
    """
    path = Path(ckpt_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the bundle first, or point --ckpt_dir at its checkpoints")
    names = load_metrics_json(path).get(key, {}).get("class_names")
    if not names:
        raise ValueError(f"{path} has no '{key}.class_names'; was it written by the bundle's training?")
    return [str(n) for n in names]
