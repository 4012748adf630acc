"""Ignite handler that writes the full classification report of an evaluation into ``metrics.json``
and draws its confusion matrix (PNG and TensorBoard).

Attach it to a ``SupervisedEvaluator`` (``validate#handlers`` in ``train.yaml``, ``evaluate#handlers``
in ``evaluate.yaml``). Over every run of the evaluator it accumulates the class probabilities and
labels of all iterations; when the run's epoch completes it computes
:func:`monai_imbalance.metrics.classification_report` and

- merges it into ``metrics_file`` under ``key`` (other keys of the file are kept) with
  :func:`monai_imbalance.reporting.update_metrics_json`,
- saves the confusion matrix as ``figure_file`` and, with a ``summary_writer``, as the TensorBoard
  image ``tag`` at step ``engine.state.epoch`` (the trainer's epoch when run by MONAI's
  ``ValidationHandler``) through :func:`monai_imbalance.reporting.save_figure`; the writer also gets
  the report's scalar scores as ``"{key}/{name}"`` (e.g. ``validation/balanced_accuracy``).

Both files are outputs of the run and are replaced on every write (the JSON merge keeps other
handlers' entries). Multi-process: every rank gathers the samples of all ranks (collective), only
``save_rank`` writes.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from monai.utils import IgniteInfo, min_version, optional_import

from monai_imbalance.handlers.classification_epoch import ClassificationEpochHandler
from monai_imbalance.metrics.classification import CLASSIFICATION_METRIC_NAMES
from monai_imbalance.metrics.degenerate import prediction_share_warnings
from monai_imbalance.reporting import save_figure, update_metrics_json

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["ClassificationReportHandler", "plot_confusion_matrix"]


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Confusion matrix figure: counts in the cells, colour by row-normalised fraction (per-class recall).

    Args:
        confusion: ``C x C`` counts, rows true class, columns predicted class.
        class_names: axis labels (default ``0 .. C-1``).
        title: figure title.
    """
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square C x C matrix, got shape {cm.shape}")
    num_classes = cm.shape[0]
    names = [str(c) for c in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class names for a {num_classes} x {num_classes} confusion matrix")
    row_sums = cm.sum(axis=1, keepdims=True)
    fraction = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=float), where=row_sums > 0)

    size = max(3.5, 0.6 * num_classes + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(num_classes), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(num_classes), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(num_classes):
        for j in range(num_classes):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if fraction[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


class ClassificationReportHandler(ClassificationEpochHandler):
    """Write the classification report and confusion matrix of every evaluator run.

    Args:
        metrics_file: the run's ``metrics.json`` (created with its folder if missing; other keys kept).
        key: top-level key of the report in ``metrics_file``, e.g. ``"validation"`` or ``"test"``.
        figure_file: PNG of the confusion matrix; ``None`` for no PNG.
        summary_writer: optional TensorBoard ``SummaryWriter`` (share the one given to MONAI's
            ``TensorBoardStatsHandler``); the confusion matrix is added as image ``tag`` and, with
            ``scalars=True``, the scalar scores as ``"{key}/{name}"``.
        tag: TensorBoard tag of the confusion-matrix image (default ``f"{key}/confusion_matrix"``).
        class_names: names for the report and the figure's axes (default ``"0" .. "C-1"``).
        num_classes: expected number of classes (checked when given).
        decision_threshold: optional binary decision threshold on the class-1 probability.
        class_priors: optional class priors for prior-corrected decisions (``argmax_c p_c / pi_c``).
            Both rules come from validation (``monai_imbalance.handlers.ThresholdSelector``; read them
            back with ``monai_imbalance.transforms.read_decision_rule``) and are recorded in the report.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``; default the ``pred``
            and ``label`` entries of MONAI's engine output. ``pred`` may be class probabilities or decisions
            (class indices after ``AsDiscreted(argmax=True)``, one-hot rows); from decisions the report's AUCs
            are NaN, with a warning, and ``y_pred_form`` records which it was.
        save_best_only: write only when the run's key metric is the best so far
            (``engine.state.best_metric_epoch == engine.state.epoch``), so that the report matches the
            best checkpoint of a training run; needs a ``key_metric`` on the evaluator.
        scalars: also add the scalar scores to ``summary_writer`` (every run, best or not).
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).

    The report (see :func:`monai_imbalance.metrics.classification_report`) gains ``"epoch"`` and ``"warnings"``:
    degenerate predictions (one class for >= 99% of the samples, :func:`monai_imbalance.metrics.
    prediction_share_warnings`), also logged as warnings when the report is written.
    """

    def __init__(
        self,
        metrics_file: str | os.PathLike,
        key: str = "classification",
        figure_file: str | os.PathLike | None = None,
        summary_writer: SummaryWriter | None = None,
        tag: str | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
        save_best_only: bool = False,
        scalars: bool = True,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        super().__init__(
            class_names=class_names,
            num_classes=num_classes,
            decision_threshold=decision_threshold,
            class_priors=class_priors,
            output_transform=output_transform,
            save_rank=save_rank,
            name=name,
        )
        self.metrics_file = Path(metrics_file)
        self.key = key
        self.figure_file = Path(figure_file) if figure_file is not None else None
        self.summary_writer = summary_writer
        self.tag = tag or f"{key}/confusion_matrix"
        self.save_best_only = bool(save_best_only)
        self.scalars = bool(scalars)
        self.last_report: dict[str, Any] | None = None

    def epoch_completed(self, engine: Engine) -> None:
        """Gather (all ranks), compute the report, and write it on ``save_rank``."""
        world_size = idist.get_world_size()
        if self.save_rank >= world_size:
            raise ValueError(f"save_rank={self.save_rank} but the run has only {world_size} processes")
        if len(self.metric) == 0:  # collective: every rank takes part
            warnings.warn(f"{type(self).__name__}: the evaluator saw no samples; no report written", stacklevel=2)
            return
        if self.save_best_only and getattr(engine.state, "key_metric_name", None) is None:
            raise ValueError("save_best_only=True needs a key metric on the evaluator (key_val_metric / key_metric)")
        report = self.metric.report(class_names=self.class_names)
        epoch = int(engine.state.epoch)
        report["epoch"] = epoch
        report["warnings"] = prediction_share_warnings(report["confusion_matrix"], report["class_names"])
        self.last_report = report
        if idist.get_rank() != self.save_rank:
            return
        if self.summary_writer is not None and self.scalars:
            for name in CLASSIFICATION_METRIC_NAMES:
                value = report.get(name)
                if value is not None and math.isfinite(value):
                    self.summary_writer.add_scalar(f"{self.key}/{name}", value, epoch)
        if self.save_best_only and engine.state.best_metric_epoch != epoch:
            return
        update_metrics_json(self.metrics_file, {self.key: report})
        for message in report["warnings"]:
            self.logger.warning(f"{self.key} (epoch {epoch}): {message}")
        if self.figure_file is not None or self.summary_writer is not None:
            title = f"{self.key}, epoch {epoch}: accuracy {report['accuracy']:.3f}, macro-F1 {report['f1_macro']:.3f}"
            figure = plot_confusion_matrix(report["confusion_matrix"], report["class_names"], title=title)
            save_figure(figure, self.figure_file, summary_writer=self.summary_writer, tag=self.tag, global_step=epoch)
        self.logger.info(
            f"{self.key} report (epoch {epoch}) written to {self.metrics_file}: accuracy {report['accuracy']:.4f}, "
            f"balanced accuracy {report['balanced_accuracy']:.4f}, macro-F1 {report['f1_macro']:.4f}, "
            f"AUC {report['auc']:.4f}"
        )
