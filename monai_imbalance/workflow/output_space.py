"""Output folders that can take the run's files: probed for writing and free space before any work.

A run whose output folder is read-only, or whose disk fills up, used to fail where it first wrote: a training run
61 lines into a traceback at its first checkpoint (187 lines for a full disk), an evaluation only after it had
evaluated every image. :func:`check_output_folders` (in the bundles' ``initialize``) creates a temporary file in
each folder, or in its closest existing parent when the folder does not exist yet (nothing is left behind), and
compares the free space there with an estimate of what the run writes; either failing ends the run in one line
that names the folder and its override.

The estimate for training (:func:`training_checkpoint_bytes`) comes from the network's size: ``model.pt`` (the
weights, and its replacement while it is written) plus ``n_saved`` "last" checkpoints holding the weights and the
optimiser's state (Adam: two tensors per weight).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from monai_imbalance.errors import UserError

__all__ = ["OutputFolderError", "check_output_folders", "state_bytes", "training_checkpoint_bytes"]

_MIB = 2**20
MIN_FREE_BYTES = 16 * _MIB
"""Free space asked of every output folder besides the estimate (logs, metrics, figures)."""


class OutputFolderError(UserError, OSError):
    """An output folder cannot be written, or lacks the space the run needs."""

    def __str__(self) -> str:  # OSError formats (errno, strerror) pairs; the message is the whole text
        return str(self.args[0]) if self.args else ""


def state_bytes(module: torch.nn.Module) -> int:
    """Bytes of ``module``'s state dict (parameters and buffers), i.e. of its weights in a checkpoint."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values() if isinstance(t, torch.Tensor))


def training_checkpoint_bytes(network: torch.nn.Module, *, n_saved: int = 2, optimizer_copies: int = 2) -> int:
    """What a training run's checkpoints take at most: ``W * (2 + n_saved * (1 + optimizer_copies))`` bytes for
    weights of ``W`` bytes (``model.pt`` and its replacement, ``n_saved`` "last" checkpoints with the optimiser's
    state; Adam keeps ``optimizer_copies = 2`` tensors per weight)."""
    return state_bytes(network) * (2 + n_saved * (1 + optimizer_copies))


def _existing(folder: Path) -> Path:
    """``folder``, or its closest existing parent."""
    path = folder.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(where: Path, key: str, folder: Path) -> None:
    """Create and remove a file in ``where``; raise :class:`OutputFolderError` when it cannot be written."""
    hint = f"choose a writable folder with --{key}"
    if not where.is_dir():
        raise OutputFolderError(f"--{key} {folder}: {where} is not a folder; {hint}")
    try:
        fd, name = tempfile.mkstemp(dir=where, prefix=".write-probe-")
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            Path(name).unlink(missing_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            raise OutputFolderError(f"--{key} {folder}: the disk is full ({reason}); free space or {hint}") from error
        raise OutputFolderError(f"--{key} {folder}: cannot write in {where} ({reason}); {hint}") from error


def check_output_folders(
    folders: Mapping[str, str | os.PathLike], *, needed_bytes: Mapping[str, int] | None = None
) -> None:
    """Refuse a run whose output folders cannot take its files, before it starts.

    Args:
        folders: ``{override key: folder}``, e.g. ``{"ckpt_dir": ..., "log_dir": ...}``; the key names the
            folder in the message. A folder that does not exist yet is probed through its closest existing
            parent (and not created).
        needed_bytes: ``{override key: bytes}`` the run writes there (e.g. :func:`training_checkpoint_bytes`);
            :data:`MIN_FREE_BYTES` is added to every folder's need. Folders on one file system add up.

    Raises:
        OutputFolderError: a folder (or its parent) is not writable (read-only file system, permissions), or
            the free space on its file system is below the need.
    """
    needed_bytes = dict(needed_bytes or {})
    unknown = set(needed_bytes) - set(folders)
    if unknown:
        raise ValueError(f"needed_bytes names folders that are not in folders: {sorted(unknown)}")
    by_device: dict[int, tuple[int, list[str], Path]] = {}
    for key, folder in folders.items():
        folder = Path(folder)
        where = _existing(folder)
        _probe(where, key, folder)
        device = where.stat().st_dev
        total, keys, first = by_device.get(device, (0, [], where))
        by_device[device] = (total + needed_bytes.get(key, 0) + MIN_FREE_BYTES, [*keys, key], first)
    for needed, keys, where in by_device.values():
        free = shutil.disk_usage(where).free
        if free < needed:
            names = " and ".join(f"--{key} {folders[key]}" for key in keys)
            raise OutputFolderError(
                f"{names}: {free / _MIB:.0f} MiB free on that disk, but the run writes about {needed / _MIB:.0f} MiB "
                f"(checkpoints estimated from the network's size); free space or choose another folder"
            )
