"""Ignite metrics for MONAI engines: macro-F1, balanced accuracy and the other scalar classification scores.

Thin wrappers of :class:`monai_imbalance.metrics.ClassificationMetric` in MONAI's
``IgniteMetricHandler``, like MONAI's own ``ROCAUC`` handler, so that a ``SupervisedEvaluator`` can
log them and select its best checkpoint by them (``key_metric``). In a bundle config::

    validate#key_metric:
      val_f1_macro:
        _target_: monai_imbalance.handlers.MacroF1
        output_transform: "$monai.handlers.from_engine(['pred', 'label'])"

``pred`` may hold what MONAI's post-transforms give: class probabilities (``Activationsd(keys='pred',
softmax=True)``), class indices (``AsDiscreted(keys='pred', argmax=True)``) or one-hot rows
(``AsDiscreted(keys='pred', argmax=True, to_onehot=C)``); ``label`` may be integer labels or one-hot. The AUC
and the decision rules (``decision_threshold``, ``class_priors``) need probabilities and raise an error that
says so when given decisions (see :data:`monai_imbalance.metrics.PREDICTION_FORMS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import CommonKeys

from monai_imbalance.metrics.classification import ClassificationMetric

__all__ = ["BalancedAccuracy", "ClassificationScore", "MacroF1"]


def _default_output_transform() -> Callable:
    return from_engine([CommonKeys.PRED, CommonKeys.LABEL])


class ClassificationScore(IgniteMetricHandler):
    """One scalar classification score over the whole epoch, as an ignite metric.

    Args:
        metric_name: one of ``monai_imbalance.metrics.CLASSIFICATION_METRIC_NAMES`` (``"f1_macro"``,
            ``"balanced_accuracy"``, ``"accuracy"``, ``"auc"``, ``"precision_macro"``, ``"recall_macro"``,
            binary only: ``"f1_positive"``, ``"precision_positive"``, ``"recall_positive"``, ``"specificity"``).
        num_classes: expected number of classes (checked when given).
        decision_threshold: optional binary decision threshold on the class-1 probability.
        class_priors: optional class priors for prior-corrected decisions (``argmax_c p_c / pi_c``).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``; the default reads the
            ``pred`` and ``label`` keys of MONAI's engine output.
    """

    def __init__(
        self,
        metric_name: str = "f1_macro",
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
    ) -> None:
        metric_fn = ClassificationMetric(metric_name, num_classes, decision_threshold, class_priors)
        super().__init__(
            metric_fn=metric_fn,
            output_transform=output_transform if output_transform is not None else _default_output_transform(),
            save_details=False,
        )


class MacroF1(ClassificationScore):
    """Macro-averaged F1 over the epoch (unweighted mean of the per-class F1 scores); the LMF paper
    selects its best checkpoint by this metric on the validation split."""

    def __init__(
        self,
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
    ) -> None:
        super().__init__("f1_macro", num_classes, decision_threshold, class_priors, output_transform)


class BalancedAccuracy(ClassificationScore):
    """Balanced accuracy over the epoch: the mean recall over the classes present in the labels."""

    def __init__(
        self,
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
    ) -> None:
        super().__init__("balanced_accuracy", num_classes, decision_threshold, class_priors, output_transform)
