"""Ignite handler: the TensorBoard view of a classification evaluation, under one phase namespace.

Attach it to a ``SupervisedEvaluator`` whose ``pred`` holds class probabilities (after ``Activationsd(softmax)``)
or decisions (class indices, one-hot rows). Over every run of the evaluator it accumulates ``pred`` and
``label`` (:class:`monai_imbalance.metrics.ClassificationMetric`); when the run's epoch completes it writes, at
step ``engine.state.epoch`` (the trainer's epoch when MONAI's ``ValidationHandler`` runs it):

- ``{phase}/{score}``: the scalar scores of :func:`monai_imbalance.metrics.classification_report` (accuracy,
  balanced accuracy, macro F1 / precision / recall, AUC; for two classes also the positive class's F1,
  precision, recall and the specificity);
- ``{phase}/{precision|recall|f1|auc}/{class}``: the per-class scores (one-vs-rest AUC);
- ``{phase}/pr_curve/{class}``: the one-vs-rest precision-recall curve of every class (TensorBoard's PR curves
  tab, ``add_pr_curve``);
- ``{phase}/roc_curve``: a figure of the one-vs-rest ROC curves with their AUCs (for two classes the positive
  class's curve only, the one whose area is the reported AUC).

The curves and AUCs need probabilities; given decisions they are left out (the report says which form it got).
The decision rule (``decision_threshold`` or ``class_priors``) sets the predicted classes as in
:class:`~monai_imbalance.handlers.ClassificationReportHandler`; give both handlers the same rule. Multi-process:
every rank gathers the samples of all ranks (collective), only ``save_rank`` writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_imbalance.handlers.classification_epoch import ClassificationEpochHandler
from monai_imbalance.metrics.classification import CLASSIFICATION_METRIC_NAMES
from monai_imbalance.reporting import save_figure

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine
    from matplotlib.figure import Figure

__all__ = ["ClassificationTensorBoard", "plot_roc_curves", "roc_curve"]

PER_CLASS_SCORES = ("precision", "recall", "f1", "auc")
"""Per-class entries of the report written as ``{phase}/{score}/{class}``."""


def roc_curve(scores: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ROC curve of ``scores`` for the binary targets ``positive``: ``(fpr, tpr)``, from ``(0, 0)`` to ``(1, 1)``.

    One point per distinct score, thresholds from the highest down: at threshold ``t``,
    ``tpr = #{positive, score >= t} / #positive`` and ``fpr = #{negative, score >= t} / #negative``. Its
    trapezoidal area is the AUC (ties count one half), as ``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``.

    Args:
        scores: ``(N,)`` scores, higher meaning more likely positive.
        positive: ``(N,)`` booleans (or 0/1).

    Raises:
        ValueError: shapes differ, or ``positive`` holds no positive or no negative sample.
    """
    scores = torch.as_tensor(scores).detach().cpu().double().reshape(-1)
    positive = torch.as_tensor(positive).detach().cpu().reshape(-1).bool()
    if scores.shape != positive.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and positive {tuple(positive.shape)} must have one entry each")
    num_positive = int(positive.sum())
    num_negative = positive.numel() - num_positive
    if num_positive == 0 or num_negative == 0:
        raise ValueError("the ROC curve needs at least one positive and one negative sample")
    order = torch.argsort(scores, descending=True, stable=True)
    scores, hits = scores[order], positive[order].double()
    last_of_score = torch.ones_like(scores, dtype=torch.bool)  # the last sample of each run of equal scores
    last_of_score[:-1] = scores[1:] != scores[:-1]
    tp, fp = torch.cumsum(hits, 0)[last_of_score], torch.cumsum(1.0 - hits, 0)[last_of_score]
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fp / num_negative]), torch.cat([zero, tp / num_positive])


def plot_roc_curves(
    probabilities: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], *, title: str = ""
) -> Figure:
    """One-vs-rest ROC curves of ``(N, C)`` class ``probabilities`` for ``(N,)`` ``labels``, AUCs in the legend.

    Two classes: the positive class's curve only. Classes without a positive or a negative sample are left out
    (named in the legend as such).
    """
    from matplotlib.figure import Figure

    num_classes = probabilities.shape[1]
    classes = [1] if num_classes == 2 else range(num_classes)
    fig = Figure(figsize=(5.0, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
    for c in classes:
        positive = labels == c
        if not 0 < int(positive.sum()) < len(positive):
            ax.plot([], [], linestyle="none", label=f"{class_names[c]} (undefined: one class only)")
            continue
        fpr, tpr = roc_curve(probabilities[:, c], positive)
        auc = float(torch.trapezoid(tpr, fpr))
        ax.plot(fpr.numpy(), tpr.numpy(), linewidth=1.5, label=f"{class_names[c]} (AUC {auc:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate (recall)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _tag_part(name: str) -> str:
    """A class name as one tag part: characters other than letters, digits, ``.`` and ``-`` become ``_``."""
    return re.sub(r"[^\w.\-]", "_", str(name))


class ClassificationTensorBoard(ClassificationEpochHandler):
    """Write the classification scores, per-class scores, PR and ROC curves of every evaluator run.

    Args:
        summary_writer: a ``SummaryWriter`` or :class:`monai_imbalance.handlers.LazySummaryWriter`; ``None`` on the
            processes that do not write (they still take part in the gathering, so attach the handler on every rank).
        phase: the tag namespace, e.g. ``"val"`` or ``"test"`` (no ``/``).
        class_names: the class names of the tags and the figure (default ``"0" .. "C-1"``).
        num_classes: expected number of classes (checked when given; needed for class-index predictions
            without ``class_names``).
        curves: write the PR curves and the ROC figure (``False``: scalars only).
        decision_threshold, class_priors, output_transform, save_rank, name: as for
            :class:`~monai_imbalance.handlers.classification_epoch.ClassificationEpochHandler` (give the report
            handler the same decision rule).
    """

    def __init__(
        self,
        summary_writer: Any,
        phase: str,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        curves: bool = True,
        output_transform: Callable | None = None,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        if not isinstance(phase, str) or not phase or "/" in phase:
            raise ValueError(f"phase must be a non-empty name without '/', e.g. 'val' or 'test'; got {phase!r}")
        super().__init__(
            class_names=class_names,
            num_classes=num_classes,
            decision_threshold=decision_threshold,
            class_priors=class_priors,
            output_transform=output_transform,
            save_rank=save_rank,
            name=name,
        )
        self.summary_writer = summary_writer
        self.phase = phase
        self.curves = bool(curves)

    def epoch_completed(self, engine: Engine) -> None:
        """Gather (all ranks), then write the tags on ``save_rank``."""
        if len(self.metric) == 0:  # collective: every rank takes part
            return
        report = self.metric.report(class_names=self.class_names)
        probabilities, labels = self.metric.get_buffer()
        if idist.get_rank() != self.save_rank:
            return
        if self.summary_writer is None:
            raise ValueError(f"{type(self).__name__}: summary_writer is None on the writing rank {self.save_rank}")
        step = int(engine.state.epoch)
        writer, phase = self.summary_writer, self.phase
        for score in CLASSIFICATION_METRIC_NAMES:
            value = report.get(score)
            if value is not None and math.isfinite(value):
                writer.add_scalar(f"{phase}/{score}", value, step)
        for class_name, scores in report["per_class"].items():
            for score in PER_CLASS_SCORES:
                if math.isfinite(scores[score]):
                    writer.add_scalar(f"{phase}/{score}/{_tag_part(class_name)}", scores[score], step)
        if self.curves and report["y_pred_form"] == "probabilities":
            self._write_curves(probabilities.cpu().float(), labels.cpu().long(), report["class_names"], step)
        writer.flush()

    def _write_curves(self, probabilities: torch.Tensor, labels: torch.Tensor, names: list[str], step: int) -> None:
        for c, class_name in enumerate(names):
            self.summary_writer.add_pr_curve(
                f"{self.phase}/pr_curve/{_tag_part(class_name)}",
                labels == c,
                probabilities[:, c].clamp(0.0, 1.0),
                global_step=step,
            )
        figure = plot_roc_curves(probabilities, labels, names, title=f"{self.phase}, epoch {step}: one-vs-rest ROC")
        save_figure(figure, summary_writer=self.summary_writer, tag=f"{self.phase}/roc_curve", global_step=step)
