"""A training run's folders: resume the earlier run, refuse to clobber it, or move what it wrote aside.

A bundle's ``train.yaml`` keeps the "last" checkpoint (network, optimizer, scheduler, trainer and
:class:`~monai_imbalance.workflow.ResumeState`) in its checkpoint folder. :func:`resume_checkpoint`
decides, before anything is written, whether that checkpoint is resumed; :func:`start_training_run` then, once
every setting has been checked (the network, the loss, the data are built), moves an earlier run aside::

    resume: false     # --resume true continues an interrupted run
    overwrite: false  # --overwrite true starts afresh; the earlier run's files are moved aside
    resume_path: $monai_imbalance.workflow.resume_checkpoint(@ckpt_dir, @resume, @overwrite)
    initialize:
    - ...             # the lock, @resume_path, the data check, the seeds, building the trainer
    - $monai_imbalance.workflow.start_training_run(@ckpt_dir, overwrite=@overwrite, log_dir=@log_dir, ...)

The three outcomes:

- neither switch, and the folder holds an earlier run's checkpoints: the run is refused
  (:class:`EarlierRunError`), so that a repeated command never silently replaces a trained model;
- ``--resume true``: the latest ``last_checkpoint_epoch=N.pt`` is read back first; a damaged one is named
  together with the newest intact one (:class:`CorruptCheckpointError`);
- ``--overwrite true``: what the bundle's earlier runs wrote is moved to ``<folder>.replaced-<YYYYmmdd-HHMMSS>``
  (nothing is deleted), so that nothing of the earlier run can be resumed later and TensorBoard never mixes two
  runs' curves: the files of the checkpoint folder (:data:`RUN_FILE_PATTERNS`), the TensorBoard event files the
  earlier runs wrote into ``log_dir`` (known by the process ids that :func:`start_training_run` records under
  ``"runs"`` in ``<ckpt_dir>/metrics.json``), and the evaluations of the replaced model (the folders in
  ``output_dir`` whose record names a checkpoint of ``ckpt_dir``, with their TensorBoard namespaces). A folder
  that holds anything else (another experiment's logs in a shared ``--log_dir``, ``--log_dir configs``) is
  refused (:class:`ForeignFilesError`, naming one such file) before anything moves.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import load_metrics_json, update_metrics_json
from monai_imbalance.switches import as_bool
from monai_imbalance.workflow.run_lock import RUN_LOCK_NAME

__all__ = [
    "LAST_CHECKPOINT_PREFIX",
    "RUNS_KEY",
    "RUN_FILE_PATTERNS",
    "ConflictingSwitchesError",
    "CorruptCheckpointError",
    "EarlierRunError",
    "ForeignFilesError",
    "RunFileNotFoundError",
    "checked_checkpoint",
    "earlier_run_files",
    "epoch_checkpoints",
    "latest_checkpoint",
    "move_aside",
    "resume_checkpoint",
    "start_training_run",
    "trained_class_names",
]

LAST_CHECKPOINT_PREFIX = "last"
"""``file_prefix`` of the bundles' per-epoch ``CheckpointSaver`` (files ``last_checkpoint_epoch=N.pt``)."""

RUN_FILE_PATTERNS: tuple[str, ...] = (
    "model.pt",
    "model.ts",
    "*_checkpoint_epoch=*.pt",
    "*_checkpoint_epoch=*.pt.corrupt",
    "metrics.json",
    "model_settings.json",
    "split_ids.json",
    "run_args.json",
    "*.png",
    "tmp*",
    ".*.tmp",
)
"""Names of the files a bundle's runs write into the checkpoint folder (``fnmatch`` patterns): the best model, its
export, the per-epoch checkpoints (and those set aside as damaged), the reports and figures, and the temporary
files of an interrupted atomic write."""

RUNS_KEY = "runs"
"""Entry of ``<ckpt_dir>/metrics.json`` listing the training processes of the folder (``pid``, ``host``,
``started``): the TensorBoard event files they wrote carry host and pid in their names."""

_EPOCH = re.compile(r"epoch=(\d+)\.pt$")
_EVENT_FILE = re.compile(r"^events\.out\.tfevents\.\d+\.(?P<host>.+)\.(?P<pid>\d+)\.\d+")

logger = logging.getLogger(__name__)


class EarlierRunError(UserError, FileExistsError):
    """The run folder holds an earlier run, and neither ``--resume`` nor ``--overwrite`` says what to do with it."""


class RunFileNotFoundError(UserError, FileNotFoundError):
    """A file the run needs (a checkpoint to resume, a trained model's report) is missing."""


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint file cannot be read back (truncated, empty, or not a weights-only checkpoint)."""


class ConflictingSwitchesError(UserError, ValueError):
    """``--resume true`` and ``--overwrite true`` were given together."""


class ForeignFilesError(UserError, FileExistsError):
    """``--overwrite true``, but a run folder holds files that no run of this bundle wrote."""


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
) -> str | None:
    """Checkpoint to resume from, or ``None`` to start afresh; refuses to clobber an earlier run.

    Call it before anything writes into the run's folders (the bundles evaluate it early in ``initialize``),
    so that a refused run leaves no trace. It only decides: with ``overwrite`` the earlier run is moved aside
    later, by :func:`start_training_run`, once every other setting has been checked.

    Args:
        ckpt_dir: the bundle's checkpoint folder.
        resume: continue from the latest ``last_checkpoint_epoch=N.pt`` in ``ckpt_dir`` (checked readable).
        overwrite: start afresh (see :func:`start_training_run`).

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
    if latest is not None and not overwrite:
        raise EarlierRunError(
            f"{ckpt_dir} already holds checkpoints of an earlier run ({Path(latest).name}). "
            "Pass --resume true to continue it, --overwrite true to start afresh (the earlier run is moved to "
            f"{ckpt_dir.name}.replaced-<time>), or --ckpt_dir <another folder>."
        )
    return None


def _runs(ckpt_dir: Path) -> list[dict[str, Any]] | None:
    """The training processes recorded in ``<ckpt_dir>/metrics.json``; ``None`` for a folder without the record."""
    try:
        runs = load_metrics_json(ckpt_dir / "metrics.json").get(RUNS_KEY)
    except ValueError:
        return None
    return [r for r in runs if isinstance(r, Mapping)] if isinstance(runs, list) else None


def _event_owner(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a TensorBoard event file name (``events.out.tfevents.<time>.<host>.<pid>.<n>``)."""
    match = _EVENT_FILE.match(name)
    return (match.group("host"), int(match.group("pid"))) if match else None


def _evaluations_of(ckpt_dir: Path, output_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """``(folder, TensorBoard namespace)`` of the evaluations in ``output_dir`` of a checkpoint in ``ckpt_dir``."""
    if output_dir is None or not output_dir.is_dir():
        return []
    found = []
    for folder in sorted(output_dir.iterdir()):
        if not folder.is_dir() or ".replaced-" in folder.name:
            continue
        try:
            record = load_metrics_json(folder / "metrics.json").get("evaluation")
        except ValueError:
            continue
        if not isinstance(record, Mapping):
            continue
        checkpoint = (record.get("checkpoint") or {}).get("file")
        if checkpoint and Path(checkpoint).absolute().parent == ckpt_dir:
            log_dir = record.get("log_dir")
            found.append((folder, Path(log_dir).absolute() if log_dir else None))
    return found


def earlier_run_files(
    ckpt_dir: str | os.PathLike,
    *,
    log_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """What the bundle's earlier runs in ``ckpt_dir`` wrote, for ``--overwrite true`` to move aside.

    Returns:
        ``{folder: [paths inside it]}`` (absolute paths): the checkpoint folder's files that match
        :data:`RUN_FILE_PATTERNS` (the lock excepted), the event files in ``log_dir`` written by a recorded
        training process (in a folder from before 0.3, without the record: the event files directly in
        ``log_dir`` and ``log_dir/evaluate``; with no earlier run in ``ckpt_dir`` at all, nothing of ``log_dir``),
        and the evaluations of the model, each a whole folder (see the module docstring).

    Raises:
        ForeignFilesError: ``ckpt_dir`` or ``log_dir`` holds a file no run of the bundle wrote (named), or a
            sub-folder other than the evaluations' ``log_dir/evaluate``.
    """
    ckpt_dir = Path(ckpt_dir).absolute()
    log_dir = Path(log_dir).absolute() if log_dir is not None else None
    output_dir = Path(output_dir).absolute() if output_dir is not None else None
    own_folders = {f for f in (log_dir, output_dir) if f is not None}
    files: dict[Path, list[Path]] = {}

    def foreign(path: Path, folder: Path, option: str) -> ForeignFilesError:
        return ForeignFilesError(
            f"--overwrite true would move the earlier run's files out of {folder}, but it also holds {path}, which "
            f"no run of this bundle wrote; move that out of the way, or choose another {option}"
        )

    if ckpt_dir.is_dir():
        for path in sorted(ckpt_dir.iterdir()):
            if path.name == RUN_LOCK_NAME or path in own_folders:
                continue
            if path.is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in RUN_FILE_PATTERNS):
                files.setdefault(ckpt_dir, []).append(path)
            else:
                raise foreign(path, ckpt_dir, "--ckpt_dir")
    folders = []
    for eval_dir, eval_log_dir in _evaluations_of(ckpt_dir, output_dir):
        files.setdefault(eval_dir.parent, []).append(eval_dir)
        folders.append(eval_dir)
        if eval_log_dir is not None and eval_log_dir.is_dir():
            root = log_dir if log_dir is not None and log_dir in eval_log_dir.parents else eval_log_dir.parent
            files.setdefault(root, []).append(eval_log_dir)
            folders.append(eval_log_dir)
    runs = _runs(ckpt_dir)
    if log_dir is not None and log_dir.is_dir() and (runs is not None or files):
        # without an earlier run in ckpt_dir, nothing in log_dir is known to be the bundle's: it stays
        owners = {(str(r.get("host")), r.get("pid")) for r in runs or ()}
        evaluate_dir = log_dir / "evaluate"
        for path in sorted(p for p in log_dir.rglob("*") if not p.is_dir()):
            if path == ckpt_dir or ckpt_dir in path.parents or any(f == path or f in path.parents for f in folders):
                continue  # moved with the checkpoint folder or with an evaluation
            if output_dir is not None and output_dir in path.parents:
                continue
            owner = _event_owner(path.name)
            if owner is not None and owner in owners:
                files.setdefault(log_dir, []).append(path)
            elif owner is not None and runs is None and path.parent in (log_dir, evaluate_dir):
                files.setdefault(log_dir, []).append(path)  # a run folder from before the record
            elif evaluate_dir in path.parents and path.parent != evaluate_dir:
                continue  # another model's evaluation in its own namespace: left where it is
            else:
                raise foreign(path, log_dir, "--log_dir")
    return {str(k): [str(p) for p in v] for k, v in files.items()}


def _move_files(folder: Path, paths: list[Path], stamp: str) -> Path:
    """Move ``paths`` (inside ``folder``) to ``<folder>.replaced-<stamp>/`` keeping their relative paths."""
    target = folder.with_name(f"{folder.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.replaced-{stamp}-{n}")
    for path in paths:
        destination = target / path.relative_to(folder)
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.rename(destination)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()) and any(p.is_relative_to(sub) for p in paths):
            sub.rmdir()  # a folder emptied by the move (e.g. log_dir/evaluate)
    return target


def start_training_run(
    ckpt_dir: str | os.PathLike,
    *,
    overwrite: bool | str = False,
    log_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    stamp: str | None = None,
) -> dict[str, str]:
    """Start a training run in ``ckpt_dir``: with ``overwrite``, move the earlier run aside; record this process.

    Call it after every setting has been checked (the bundles build the trainer first: network, loss, data)
    and before anything is written, on the first process only. A run refused by a misspelt ``--loss_name``
    therefore moves nothing.

    With ``overwrite``, :func:`earlier_run_files` are moved to ``<folder>.replaced-<stamp>``, keeping their paths
    inside it (``models.replaced-<stamp>/model.pt``, ``logs.replaced-<stamp>/evaluate/test-model/...``,
    ``eval.replaced-<stamp>/test-model/``). Then this process (pid, host, start time) is appended to ``"runs"`` in
    ``<ckpt_dir>/metrics.json``, which tells a later ``--overwrite true`` which event files in ``log_dir`` are
    the run's.

    Args:
        ckpt_dir, log_dir, output_dir: the run's checkpoint, TensorBoard and evaluation folders.
        overwrite: ``--overwrite true``.
        stamp: the ``.replaced-`` suffix (default: the local time ``YYYYmmdd-HHMMSS``).

    Returns:
        ``{old path: new path}`` of what was moved (files of a folder as the folder).

    Raises:
        ForeignFilesError: a folder to clear holds files no run of the bundle wrote; nothing was moved.
    """
    ckpt_dir = Path(ckpt_dir).absolute()
    moved: dict[str, str] = {}
    if as_bool(overwrite):
        stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        plan = earlier_run_files(ckpt_dir, log_dir=log_dir, output_dir=output_dir)
        for folder, paths in plan.items():
            target = _move_files(Path(folder), [Path(p) for p in paths], stamp)
            moved[folder] = str(target)
            logger.warning(f"--overwrite true: moved the earlier run's {folder} to {target} ({len(paths)} entries)")
    runs = _runs(ckpt_dir) or []
    runs.append({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    update_metrics_json(ckpt_dir / "metrics.json", {RUNS_KEY: runs})
    return moved


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
