"""Each evaluation has its own place: an output folder and a TensorBoard namespace per (split, checkpoint, MC setting).

A bundle's ``evaluate.yaml`` writes into ``<output_dir>/<name>/`` and ``<log_dir>/evaluate/<name>/``, where
:func:`evaluation_name` is ``<split>-<checkpoint stem>[-mc<N>][-threshold]``, e.g. ``test-model`` and
``test-model-mc50``: a plain and an MC-dropout evaluation never share a file or a TensorBoard run, and running the
same evaluation again is refused (:class:`EvaluationExistsError`) unless ``--overwrite true``, which first moves
the earlier one to ``<folder>.replaced-<time>`` (:func:`~monai_imbalance.workflow.move_aside`).

:func:`prepare_evaluation` does that check and writes the evaluation's record into its ``metrics.json``,
before the scores, under ``"evaluation"``::

    {"name": "test-model-mc50", "split": "test", "log_dir": ".../logs/evaluate/test-model-mc50",
     "checkpoint": {"file": ".../models/model.pt", "epoch": 7, "sha256": "..."},
     "mc_dropout": {"enabled": true, "samples": 50, "batch_size": 10},
     "threshold": {...},  # the decision rule / pixel threshold applied
     "run": {"pid": ..., "host": ..., "started": ...}}

The checkpoint's epoch is the epoch whose model the file holds (:func:`describe_checkpoint`): the number in a
``..._epoch=N.pt`` name, or for ``model.pt`` the epoch recorded by training when it saved the best model
(``"best_checkpoint"`` in ``<ckpt_dir>/metrics.json``, written by
:class:`~monai_imbalance.workflow.AtomicCheckpointSaver`), used only when the file's SHA-256 matches the recorded
one. The evaluator then runs as that epoch, so the reports' ``"epoch"`` and the TensorBoard step are the
checkpoint's epoch. An epoch that cannot be known (a model folder from before 0.3, a file replaced by hand) is
recorded as ``null`` (:func:`finish_evaluation`), with a warning, never guessed.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import load_metrics_json, update_metrics_json
from monai_imbalance.workflow.atomic_checkpoint import BEST_CHECKPOINT_KEY, file_sha256
from monai_imbalance.workflow.run_folder import move_aside
from monai_imbalance.workflow.switches import as_bool

__all__ = [
    "EVALUATION_KEY",
    "EvaluationExistsError",
    "describe_checkpoint",
    "evaluation_name",
    "finish_evaluation",
    "prepare_evaluation",
]

EVALUATION_KEY = "evaluation"
"""Entry of an evaluation's ``metrics.json`` that records what was evaluated and how."""

_EPOCH = re.compile(r"epoch=(\d+)\.pt$")
_UNSAFE = re.compile(r"[^\w.-]+")

logger = logging.getLogger(__name__)


class EvaluationExistsError(UserError, FileExistsError):
    """The evaluation's folder (or TensorBoard namespace) exists and ``--overwrite true`` was not given."""


def evaluation_name(
    *,
    split: str,
    checkpoint: str | os.PathLike,
    mc_dropout: bool | str = False,
    mc_samples: int | None = None,
    decision_rule: bool | str = False,
) -> str:
    """``<split>-<checkpoint stem>[-mc<mc_samples>][-threshold]``: the folder name of one evaluation.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``
    (``last_checkpoint_epoch=3.pt`` gives ``last_checkpoint_epoch_3``).

    Args:
        split: the evaluated datalist split.
        checkpoint: the evaluated checkpoint file.
        mc_dropout: Monte Carlo dropout on (then ``mc_samples`` is part of the name).
        mc_samples: stochastic passes per image.
        decision_rule: the decision rule chosen in training is applied (``--use_threshold true``).
    """
    name = f"{_UNSAFE.sub('_', str(split))}-{_UNSAFE.sub('_', Path(checkpoint).stem)}"
    if as_bool(mc_dropout):
        name += f"-mc{int(mc_samples)}" if mc_samples is not None else "-mc"
    if as_bool(decision_rule):
        name += "-threshold"
    return name


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"file", "epoch", "sha256"}`` of a checkpoint file; ``epoch`` is ``None`` when it cannot be known.

    The epoch is the ``N`` of a ``..._epoch=N.pt`` name, else the ``"best_checkpoint"`` record in the metrics
    file beside it when its file name and SHA-256 match (see the module docstring).
    """
    path = Path(path).absolute()
    digest = file_sha256(path) if path.is_file() else None
    epoch: int | None = None
    match = _EPOCH.search(path.name)
    if match:
        epoch = int(match.group(1))
    else:
        try:
            best = load_metrics_json(path.parent / "metrics.json").get(BEST_CHECKPOINT_KEY) or {}
        except ValueError:
            best = {}
        if best.get("file") == path.name and best.get("sha256") == digest and digest is not None:
            epoch = int(best["epoch"])
        elif digest is not None:
            logger.warning(
                f"the epoch of {path} is not recorded (a model folder written before monai-imbalance 0.3, or a "
                "file replaced since training): the evaluation records epoch null"
            )
    return {"file": str(path), "epoch": epoch, "sha256": digest}


def prepare_evaluation(
    eval_dir: str | os.PathLike,
    *,
    overwrite: bool | str = False,
    log_dir: str | os.PathLike | None = None,
    checkpoint: Mapping[str, Any],
    split: str,
    mc_dropout: bool | str = False,
    mc_samples: int | None = None,
    mc_batch_size: int | None = None,
    threshold: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``eval_dir`` this evaluation's own folder and write its record (see the module docstring).

    Call it after every setting has been checked and before the evaluation writes anything: an earlier
    evaluation is refused, or with ``overwrite`` moved aside, only then.

    Args:
        eval_dir: the evaluation's output folder, ``<output_dir>/<evaluation_name>``.
        overwrite: move an earlier evaluation's folder (and TensorBoard namespace) aside instead of refusing.
        log_dir: the evaluation's TensorBoard namespace, ``<log_dir>/evaluate/<evaluation_name>``.
        checkpoint: :func:`describe_checkpoint` of the evaluated file.
        split: the evaluated split.
        mc_dropout, mc_samples, mc_batch_size: the Monte Carlo dropout settings.
        threshold: the decision rule or pixel threshold applied.

    Returns:
        the record written under ``"evaluation"`` in ``<eval_dir>/metrics.json``.

    Raises:
        EvaluationExistsError: ``eval_dir`` or ``log_dir`` holds anything and ``overwrite`` is not set.
    """
    eval_dir = Path(eval_dir).absolute()
    folders = [eval_dir] + ([Path(log_dir).absolute()] if log_dir is not None else [])
    taken = [f for f in folders if f.is_dir() and any(f.iterdir())]
    if taken and not as_bool(overwrite):
        raise EvaluationExistsError(
            f"{taken[0]} already holds this evaluation ({eval_dir.name}); pass --overwrite true to replace it (the "
            f"earlier one is moved to {taken[0].name}.replaced-<time>), or --output_dir / --log_dir <other folders>"
        )
    if taken:
        move_aside(taken)
    mc = as_bool(mc_dropout)
    record = {
        "name": eval_dir.name,
        "split": split,
        "log_dir": str(folders[1]) if log_dir is not None else None,
        "checkpoint": dict(checkpoint),
        "mc_dropout": {
            "enabled": mc,
            "samples": int(mc_samples) if mc and mc_samples is not None else None,
            "batch_size": int(mc_batch_size) if mc and mc_batch_size is not None else None,
        },
        "threshold": dict(threshold or {}),
        "run": {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    update_metrics_json(eval_dir / "metrics.json", {EVALUATION_KEY: record})
    return record


def finish_evaluation(metrics_file: str | os.PathLike) -> dict[str, Any]:
    """Give every report in an evaluation's ``metrics.json`` the evaluated checkpoint's epoch.

    The evaluator runs as the checkpoint's epoch when it is known, so its reports already say it; when it is
    not known (``null`` in the record) the reports' ``"epoch"`` (the evaluator's own count, 1) becomes ``null``
    too, instead of a number that looks like the checkpoint's.

    Returns:
        the file's content.
    """
    content = load_metrics_json(metrics_file)
    record = content.get(EVALUATION_KEY)
    if not isinstance(record, Mapping):
        return content
    epoch = (record.get("checkpoint") or {}).get("epoch")
    updates = {
        key: {**report, "epoch": epoch}
        for key, report in content.items()
        if key != EVALUATION_KEY and isinstance(report, Mapping) and "epoch" in report and report["epoch"] != epoch
    }
    return update_metrics_json(metrics_file, updates) if updates else content
