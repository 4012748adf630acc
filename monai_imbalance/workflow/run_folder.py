"""A training run's folders: resume the earlier run, refuse to clobber it, or move it aside.

A bundle's ``train.yaml`` keeps the "last" checkpoint (network, optimizer, scheduler, trainer and
:class:`~monai_imbalance.workflow.ResumeState`) in its checkpoint folder. :func:`resume_checkpoint`
decides, before anything is written, whether that checkpoint is resumed::

    resume: false     # --resume true continues an interrupted run
    overwrite: false  # --overwrite true starts afresh; the earlier run's folders are moved aside
    resume_path: $monai_imbalance.workflow.resume_checkpoint(@ckpt_dir, @resume, @overwrite, log_dir=@log_dir)

The three outcomes:

- neither switch, and the folder holds an earlier run's checkpoints: the run is refused
  (:class:`EarlierRunError`), so that a repeated command never silently replaces a trained model;
- ``--resume true``: the latest ``last_checkpoint_epoch=N.pt`` is read back first; a damaged one is named
  together with the newest intact one (:class:`CorruptCheckpointError`);
- ``--overwrite true``: the checkpoint folder and the log folder are renamed to
  ``<folder>.replaced-<YYYYmmdd-HHMMSS>`` (nothing is deleted), so that nothing of the earlier run can be
  resumed later and TensorBoard never mixes two runs' curves.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import load_metrics_json
from monai_imbalance.switches import as_bool
from monai_imbalance.workflow.distributed import global_rank

__all__ = [
    "LAST_CHECKPOINT_PREFIX",
    "ConflictingSwitchesError",
    "CorruptCheckpointError",
    "EarlierRunError",
    "RunFileNotFoundError",
    "checked_checkpoint",
    "epoch_checkpoints",
    "latest_checkpoint",
    "move_aside",
    "resume_checkpoint",
    "trained_class_names",
]

LAST_CHECKPOINT_PREFIX = "last"
"""``file_prefix`` of the bundles' per-epoch ``CheckpointSaver`` (files ``last_checkpoint_epoch=N.pt``)."""

_EPOCH = re.compile(r"epoch=(\d+)\.pt$")

logger = logging.getLogger(__name__)


class EarlierRunError(UserError, FileExistsError):
    """The run folder holds an earlier run, and neither ``--resume`` nor ``--overwrite`` says what to do with it."""


class RunFileNotFoundError(UserError, FileNotFoundError):
    """A file the run needs (a checkpoint to resume, a trained model's report) is missing."""


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint file cannot be read back (truncated, empty, or not a weights-only checkpoint)."""


class ConflictingSwitchesError(UserError, ValueError):
    """``--resume true`` and ``--overwrite true`` were given together."""


def epoch_checkpoints(ckpt_dir: str | os.PathLike, prefix: str = LAST_CHECKPOINT_PREFIX) -> list[Path]:
    """The per-epoch checkpoints ``{prefix}_checkpoint_epoch=N.pt`` in ``ckpt_dir``, newest (highest ``N``) first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for path in ckpt_dir.glob(f"{prefix}_checkpoint_epoch=*.pt"):
        match = _EPOCH.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = LAST_CHECKPOINT_PREFIX) -> str | None:
    """Path of the per-epoch checkpoint with the highest epoch in ``ckpt_dir``, or ``None``.

    Looks for MONAI ``CheckpointSaver`` files named ``{prefix}_checkpoint_epoch=N.pt``.
    """
    found = epoch_checkpoints(ckpt_dir, prefix)
    return str(found[0]) if found else None


def _unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read as a weights-only checkpoint, or ``None`` if it can."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, empty file (EOFError), refused pickle, ...
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return None


def checked_checkpoint(path: str | os.PathLike) -> str:
    """``path`` after checking that it reads back as a weights-only checkpoint (e.g. ``model.pt`` for evaluation).

    Raises:
        RunFileNotFoundError: no such file.
        CorruptCheckpointError: the file is truncated, empty or holds more than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileNotFoundError(f"{path} not found: train the bundle first, or point --ckpt_dir at its checkpoints")
    reason = _unreadable_reason(path)
    if reason is not None:
        raise CorruptCheckpointError(
            f"{path} cannot be read ({reason}); it is truncated or damaged. Train again, or restore the file "
            "from a copy."
        )
    return str(path)


def _checked_resume_path(ckpt_dir: Path) -> str:
    """The newest per-epoch checkpoint, read back once; a damaged one is named with the newest intact one."""
    candidates = epoch_checkpoints(ckpt_dir)
    if not candidates:
        raise RunFileNotFoundError(
            f"--resume true, but {ckpt_dir} holds no '{LAST_CHECKPOINT_PREFIX}_checkpoint_epoch=N.pt' to resume from"
        )
    latest, *earlier = candidates
    reason = _unreadable_reason(latest)
    if reason is None:
        return str(latest)
    intact = next((path for path in earlier if _unreadable_reason(path) is None), None)
    if intact is not None:
        advice = (
            f"The newest intact checkpoint is {intact.name}: move the damaged file out of the way "
            f"(mv '{latest}' '{latest}.corrupt') and run again with --resume true to continue from it."
        )
    else:
        advice = (
            f"No intact checkpoint is left in {ckpt_dir}: start afresh with --overwrite true "
            "(the earlier run's folders are moved aside, not deleted)."
        )
    raise CorruptCheckpointError(f"cannot resume: {latest} is truncated or damaged ({reason}). {advice}")


def move_aside(folders: Iterable[str | os.PathLike | None], *, stamp: str | None = None) -> dict[str, str]:
    """Rename every existing, non-empty folder of ``folders`` to ``<folder>.replaced-<stamp>``; nothing is deleted.

    A folder inside another one of ``folders`` moves with it. ``stamp`` defaults to the local time
    ``YYYYmmdd-HHMMSS``; a name already taken gets ``-2``, ``-3``, ... appended.

    Returns:
        ``{old path: new path}`` of the folders moved.

    Raises:
        EarlierRunError: a folder holds the current working directory (it cannot be renamed under the run).
    """
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    paths = [Path(f).absolute() for f in folders if f is not None]
    paths = [p for p in paths if p.is_dir() and any(p.iterdir())]
    outermost = [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]
    moved: dict[str, str] = {}
    for folder in dict.fromkeys(outermost):
        if Path.cwd().is_relative_to(folder):
            raise EarlierRunError(
                f"--overwrite true would move {folder} aside, but the run works inside it; "
                "choose another --ckpt_dir / --log_dir"
            )
        target = folder.with_name(f"{folder.name}.replaced-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = folder.with_name(f"{folder.name}.replaced-{stamp}-{n}")
        folder.rename(target)
        moved[str(folder)] = str(target)
        logger.warning(f"--overwrite true: moved the earlier run's {folder} to {target}")
    return moved


def resume_checkpoint(
    ckpt_dir: str | os.PathLike,
    resume: bool | str = False,
    overwrite: bool | str = False,
    *,
    log_dir: str | os.PathLike | None = None,
) -> str | None:
    """Checkpoint to resume from, or ``None`` to start afresh; refuses to clobber an earlier run.

    Call it before anything writes into the run's folders (the bundles evaluate it first in ``initialize``),
    so that a refused run leaves no trace (no empty TensorBoard event file).

    Args:
        ckpt_dir: the bundle's checkpoint folder.
        resume: continue from the latest ``last_checkpoint_epoch=N.pt`` in ``ckpt_dir`` (checked readable).
        overwrite: start afresh; on rank 0, ``ckpt_dir`` and ``log_dir`` are first moved to
            ``<folder>.replaced-<time>`` (see :func:`move_aside`) when they hold anything.
        log_dir: the run's TensorBoard folder, moved aside together with ``ckpt_dir``.

    Raises:
        ConflictingSwitchesError: both ``resume`` and ``overwrite``.
        RunFileNotFoundError: ``resume`` is set but there is no checkpoint to resume from.
        CorruptCheckpointError: the latest checkpoint cannot be read (names the newest intact one).
        EarlierRunError: ``ckpt_dir`` holds an earlier run's checkpoints and neither flag is set.
    """
    resume, overwrite = as_bool(resume), as_bool(overwrite)
    ckpt_dir = Path(ckpt_dir)
    if resume and overwrite:
        raise ConflictingSwitchesError(
            "--resume true and --overwrite true contradict each other: keep --resume true to continue the "
            f"run in {ckpt_dir}, or --overwrite true to start afresh"
        )
    if resume:
        return _checked_resume_path(ckpt_dir)
    latest = latest_checkpoint(ckpt_dir)
    if overwrite:
        if global_rank() == 0:
            move_aside([ckpt_dir, log_dir])
        return None
    if latest is not None:
        raise EarlierRunError(
            f"{ckpt_dir} already holds checkpoints of an earlier run ({Path(latest).name}). "
            "Pass --resume true to continue it, --overwrite true to start afresh (the earlier run is moved to "
            f"{ckpt_dir.name}.replaced-<time>), or --ckpt_dir <another folder>."
        )
    return None


def trained_class_names(ckpt_dir: str | os.PathLike, key: str = "validation") -> list[str]:
    """Class names of a trained bundle model, read from the validation report in ``<ckpt_dir>/metrics.json``.

    Inference on a folder of new images does not load the training data, so the class names (and their
    number, which sizes the network's output) come from the report that training wrote beside ``model.pt``.

    Raises:
        RunFileNotFoundError: no ``metrics.json`` in ``ckpt_dir``.
        ValueError: it holds no ``class_names`` under ``key``.
    """
    path = Path(ckpt_dir) / "metrics.json"
    if not path.is_file():
        raise RunFileNotFoundError(f"{path} not found: train the bundle first, or point --ckpt_dir at its checkpoints")
    names = load_metrics_json(path).get(key, {}).get("class_names")
    if not names:
        raise ValueError(f"{path} has no '{key}.class_names'; was it written by the bundle's training?")
    return [str(n) for n in names]
