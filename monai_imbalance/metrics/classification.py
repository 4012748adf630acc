"""Classification metrics from class probabilities: accuracy, balanced accuracy, F1/precision/recall, AUC.

Inputs follow MONAI's argument order ``(y_pred, y)``:

- ``y_pred`` in any of the forms MONAI's post-transforms give (:data:`PREDICTION_FORMS`):

  - ``"probabilities"``: ``(N, C)``, ``C >= 2`` (softmax outputs, ``Activationsd(softmax=True)``, or the
    mean of Monte Carlo dropout passes). Logits are refused: every row must lie in ``[0, 1]`` and sum to 1;
  - ``"class indices"``: ``(N, 1)`` or ``(N,)`` whole numbers, as after ``AsDiscreted(argmax=True)``;
  - ``"one-hot"``: ``(N, C)`` rows that are all exactly one-hot, as after ``AsDiscreted(argmax=True,
    to_onehot=C)``. A softmax output is exactly one-hot only if saturated in every row, so such input is
    read as decisions.

  Class indices and one-hot rows are *decisions*: the scores that need probabilities (AUC, and the
  decision rules below) refuse them with an error that says so (the report gives ``auc = NaN`` and
  warns). With class indices, ``C`` is ``num_classes`` if given, else the width of one-hot labels, else
  the largest class seen plus one.
- ``y``: integer labels of shape ``(N,)`` or ``(N, 1)``, or one-hot labels of shape ``(N, C)``.

The predicted class is ``argmax_c y_pred[n, c]`` (or the given class index). Two decision rules chosen on
validation data (see ``monai_imbalance.handlers.ThresholdSelector`` and
``monai_imbalance.transforms.read_decision_rule``)
may replace it: a binary ``decision_threshold`` ``t`` (class 1 iff ``y_pred[n, 1] >= t``), or
``class_priors`` ``pi`` for any number of classes (prior correction, ``argmax_c y_pred[n, c] / pi_c``).
Every other score (AUC) is computed from the probabilities as they are.

Definitions (``M`` is the ``C x C`` confusion matrix, rows true class, columns predicted class):

- accuracy ``= trace(M) / N``
- per class ``c``: ``TP = M[c, c]``, ``FP = sum_r M[r, c] - TP``, ``FN = sum_k M[c, k] - TP``;
  precision ``= TP / (TP + FP)``, recall ``= TP / (TP + FN)``, F1 ``= 2 TP / (2 TP + FP + FN)``.
- macro average: the unweighted mean over the classes that occur in ``y`` or in the predictions
  (scikit-learn's default label set); a 0/0 score of such a class counts as 0 (scikit-learn's
  ``zero_division=0``). Classes that occur nowhere are left out of the mean and reported as NaN.
- balanced accuracy: the mean recall over the classes present in ``y`` (scikit-learn's
  ``balanced_accuracy_score``).
- AUC: binary, the area under the ROC curve of the positive-class probability ``y_pred[:, 1]``;
  multiclass, the unweighted mean of the one-vs-rest AUCs of the classes that have both positive
  and negative samples (equal to scikit-learn's ``roc_auc_score(multi_class="ovr")`` when every class
  is present, which scikit-learn requires). AUC values come from MONAI's ``compute_roc_auc`` (ties
  count one half).

Why not MONAI's ``ConfusionMatrixMetric`` for the macro scores: it averages over the classes whose
score is defined, so a class that is never predicted (precision 0/0) drops out of the macro
precision instead of counting as 0, which flatters exactly the classifiers that ignore a minority
class. MONAI also has no ``C x C`` confusion matrix (it counts one-vs-rest TP/FP/TN/FN).

:class:`ClassificationMetric` is the cumulative (epoch-level, multi-process aware) form for
MONAI workflows; ``monai_imbalance.handlers.MacroF1`` wraps it as an ignite metric.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch
from monai.metrics import CumulativeIterationMetric, compute_roc_auc
from monai.utils import convert_to_tensor

__all__ = [
    "CLASSIFICATION_METRIC_NAMES",
    "PREDICTION_FORMS",
    "ClassificationMetric",
    "MacroF1Metric",
    "accuracy",
    "balanced_accuracy",
    "check_decision_rule",
    "check_probabilities",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "needs_probabilities_message",
    "precision_score",
    "predicted_classes",
    "prediction_form",
    "recall_score",
    "roc_auc",
]

Average = Literal["macro", "none", "binary"]

#: scalar metrics that :meth:`ClassificationMetric.aggregate` can return; the ``*_positive`` ones
#: and ``specificity`` are defined for binary problems only.
CLASSIFICATION_METRIC_NAMES = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "auc",
    "f1_positive",
    "precision_positive",
    "recall_positive",
    "specificity",
)
_BINARY_ONLY = frozenset({"f1_positive", "precision_positive", "recall_positive", "specificity"})

#: forms of ``y_pred`` the metrics read: probabilities, or decisions (class indices, one-hot rows)
PREDICTION_FORMS = ("probabilities", "class indices", "one-hot")

_ROW_SUM_TOLERANCE = 1e-2  # loose enough for float16 softmax outputs, tight enough to catch logits


def _to_tensor(x: Any, name: str) -> torch.Tensor:
    """A batch-first tensor from a tensor/array, or from a list of per-sample tensors, arrays or numbers
    (MONAI's decollated items; its ``Decollated(detach=True)`` turns 0-d labels into Python numbers)."""
    if isinstance(x, (list, tuple)) and len(x) > 0:
        try:
            items = [convert_to_tensor(i, track_meta=False) for i in x]
            x = torch.stack([i if isinstance(i, torch.Tensor) else torch.as_tensor(i) for i in items])
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} items must be tensors or numbers of one shape: {e}") from e
    try:
        t = convert_to_tensor(x, track_meta=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from e
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}")
    return t.detach()


def _is_one_hot(p: torch.Tensor) -> bool:
    """Every row exactly one-hot (values 0/1 summing to 1): decisions, not probabilities."""
    return p.numel() > 0 and bool((((p == 0) | (p == 1)).all() & (p.sum(dim=1) == 1).all()).item())


def prediction_form(y_pred: Any) -> str:
    """Which of :data:`PREDICTION_FORMS` a batch-first ``y_pred`` looks like (shape and values; not validated).

    ``(N,)`` or ``(N, 1)`` whole numbers: ``"class indices"``; ``(N, C)``, ``C >= 2``, every row exactly
    one-hot: ``"one-hot"``; anything else (softmax rows, a one-channel sigmoid output): ``"probabilities"``.
    """
    t = _to_tensor(y_pred, "y_pred")
    if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1):
        values = t.double()
        if t.numel() and bool(torch.isfinite(values).all() and torch.equal(values, values.round())):
            return "class indices"
        return "probabilities"
    if t.ndim == 2 and _is_one_hot(t):
        return "one-hot"
    return "probabilities"


def needs_probabilities_message(what: str, form: str) -> str:
    """The error text for a score that needs probabilities but was given decisions of ``form``."""
    return (
        f"{what} needs class probabilities, but y_pred holds class decisions ({form}, e.g. after "
        "AsDiscreted(argmax=True) or AsDiscreted(to_onehot=C)); give it the probabilities: after "
        "Activationsd(softmax=True) and before AsDiscreted, e.g. CopyItemsd(keys='pred', names='prob') and "
        "output_transform=from_engine(['prob', 'label'])"
    )


def check_probabilities(y_pred: Any, num_classes: int | None = None, *, purpose: str = "this score") -> torch.Tensor:
    """Validate ``y_pred`` as ``(N, C)`` class probabilities and return it as a float32 tensor.

    Exactly one-hot rows pass (as the probabilities 0 and 1, also of an integer dtype); see
    :data:`PREDICTION_FORMS` for how the metrics read them. ``purpose`` names the caller in the error
    given for class indices (e.g. ``"the prediction CSV"``).

    Raises:
        TypeError: not a floating-point tensor/array (nor integer one-hot rows).
        ValueError: not 2D, fewer than 2 columns (class indices, e.g. after ``AsDiscreted(argmax=True)``,
            are named as such), ``C != num_classes``, non-finite values, or rows that are not probabilities
            (outside ``[0, 1]`` or not summing to 1, e.g. logits).
    """
    p = _to_tensor(y_pred, "y_pred")
    if not torch.is_floating_point(p):
        if p.ndim == 2 and p.shape[1] > 1 and _is_one_hot(p):
            p = p.float()
        elif p.ndim <= 2 and (p.ndim == 1 or p.shape[1] == 1):
            raise ValueError(needs_probabilities_message(purpose, "class indices"))
        else:
            raise TypeError(f"y_pred must hold floating-point class probabilities, got dtype {p.dtype}")
    if p.ndim != 2:
        raise ValueError(f"y_pred must have shape (N, C) with class probabilities, got shape {tuple(p.shape)}")
    if p.shape[1] < 2:
        whole = p.numel() > 0 and bool(torch.isfinite(p).all() and torch.equal(p, p.round()))
        if whole:
            raise ValueError(needs_probabilities_message(purpose, "class indices"))
        raise ValueError(
            f"y_pred must have at least 2 class columns, got shape {tuple(p.shape)}; for a single sigmoid "
            "output stack it as [1 - p, p]"
        )
    if num_classes is not None and p.shape[1] != num_classes:
        raise ValueError(f"y_pred has {p.shape[1]} class columns, expected num_classes={num_classes}")
    p = p.float()
    if p.numel() > 0:
        if not torch.isfinite(p).all():
            raise ValueError("y_pred contains NaN or infinite values")
        row_sums = p.sum(dim=1)
        if p.min() < -1e-6 or p.max() > 1 + 1e-6 or (row_sums - 1).abs().max() > _ROW_SUM_TOLERANCE:
            raise ValueError(
                "y_pred must hold class probabilities (each row in [0, 1], summing to 1), got values in "
                f"[{p.min().item():.4g}, {p.max().item():.4g}] with row sums up to {row_sums.max().item():.4g}; "
                "apply softmax to the logits first (e.g. Activationsd(keys='pred', softmax=True))"
            )
    return p


class _Predictions(NamedTuple):
    """``y_pred`` read in one of :data:`PREDICTION_FORMS`."""

    form: str
    probabilities: torch.Tensor | None  # (N, C) float32 for "probabilities"
    classes: torch.Tensor | None  # (N,) int64 for decisions
    width: int | None  # C for probabilities and one-hot rows, None for class indices


def _read_predictions(y_pred: Any, num_classes: int | None = None) -> _Predictions:
    """Read ``y_pred`` as probabilities, class indices or one-hot rows (see the module docstring)."""
    t = _to_tensor(y_pred, "y_pred")
    if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1):
        return _Predictions("class indices", None, _class_indices(t, num_classes), None)
    p = check_probabilities(t, num_classes)
    if _is_one_hot(p):
        return _Predictions("one-hot", None, p.argmax(dim=1), p.shape[1])
    return _Predictions("probabilities", p, None, p.shape[1])


def _class_indices(t: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    """``(N,)``/``(N, 1)`` whole non-negative numbers (below ``num_classes``) as ``(N,)`` int64."""
    if t.dtype == torch.bool:
        t = t.long()
    if torch.is_floating_point(t) and not (torch.isfinite(t).all() and torch.equal(t, t.round())):
        raise ValueError(
            f"y_pred of shape {tuple(t.shape)} holds non-integer values: class probabilities need shape (N, C) with "
            "at least 2 class columns (for a single sigmoid output stack it as [1 - p, p]); class indices (as after "
            "AsDiscreted(argmax=True)) must be whole numbers"
        )
    classes = t.reshape(-1).long()
    if classes.numel() and classes.min() < 0:
        raise ValueError(f"y_pred holds negative class indices {classes[classes < 0].unique().tolist()}")
    if num_classes is not None and classes.numel() and classes.max() >= num_classes:
        bad = classes[classes >= num_classes].unique().tolist()
        raise ValueError(f"y_pred class indices {bad} are outside the {num_classes} classes 0..{num_classes - 1}")
    return classes


def _infer_num_classes(classes: torch.Tensor, y: Any) -> int:
    """``C`` for class-index predictions without ``num_classes``: one-hot label width, else largest class + 1."""
    labels = _to_tensor(y, "y")
    if labels.ndim == 2 and labels.shape[1] > 1:
        return int(labels.shape[1])
    top = max([int(classes.max())] if classes.numel() else [0])
    if labels.numel() and torch.isfinite(labels.double()).all():
        top = max(top, int(labels.double().max()))
    return max(2, top + 1)


def _check_labels(y: Any, num_samples: int, num_classes: int) -> torch.Tensor:
    """Validate ``y`` as ``(N,)``/``(N, 1)`` integer labels or ``(N, C)`` one-hot; return ``(N,)`` int64."""
    t = _to_tensor(y, "y")
    if t.dtype == torch.bool:
        t = t.long()
    if t.ndim == 2 and t.shape[1] == num_classes and num_classes > 1:
        if t.numel() > 0 and not (((t == 0) | (t == 1)).all() and (t.sum(dim=1) == 1).all()):
            raise ValueError(f"y of shape {tuple(t.shape)} is read as one-hot, but its rows are not one-hot")
        t = t.argmax(dim=1) if t.shape[0] > 0 else t.new_zeros(0)
    elif t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1:
        raise ValueError(
            f"y must hold integer labels of shape (N,) or (N, 1), or one-hot labels of shape (N, {num_classes}); "
            f"got shape {tuple(t.shape)}"
        )
    if t.shape[0] != num_samples:
        raise ValueError(f"y has {t.shape[0]} samples but y_pred has {num_samples}")
    if torch.is_floating_point(t) and not (torch.isfinite(t).all() and torch.equal(t, t.round())):
        raise ValueError("y must hold integer class labels; got non-integer values")
    t = t.long()
    if t.numel() > 0 and (t.min() < 0 or t.max() >= num_classes):
        bad = t[(t < 0) | (t >= num_classes)].unique().tolist()
        raise ValueError(f"label values {bad} are outside the {num_classes} classes 0..{num_classes - 1}")
    return t


class _Rule(NamedTuple):
    """A validated decision rule: at most one of a binary threshold and ``(C,)`` float64 class priors."""

    threshold: float | None = None
    priors: torch.Tensor | None = None


def _check_rule(
    decision_threshold: float | None, class_priors: Sequence[float] | None, num_classes: int | None
) -> _Rule:
    """Validate the decision rule (``num_classes=None``: only what does not depend on the class count)."""
    if decision_threshold is not None and class_priors is not None:
        raise ValueError("give at most one decision rule: decision_threshold or class_priors, not both")
    if decision_threshold is not None:
        if isinstance(decision_threshold, bool) or not isinstance(decision_threshold, (int, float)):
            raise TypeError(f"decision_threshold must be a number, got {type(decision_threshold).__name__}")
        if not 0.0 <= float(decision_threshold) <= 1.0:
            raise ValueError(f"decision_threshold must lie in [0, 1], got {decision_threshold}")
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                f"decision_threshold applies to binary problems only, got {num_classes} classes; "
                "use class_priors for multiclass problems"
            )
        return _Rule(threshold=float(decision_threshold))
    if class_priors is not None:
        priors = torch.as_tensor(class_priors, dtype=torch.float64).flatten()
        if priors.numel() < 2 or not torch.isfinite(priors).all() or (priors <= 0).any():
            raise ValueError(f"class_priors must be at least 2 positive finite numbers, got {priors.tolist()}")
        if num_classes is not None and priors.numel() != num_classes:
            raise ValueError(f"got {priors.numel()} class_priors for {num_classes} classes")
        return _Rule(priors=priors / priors.sum())
    return _Rule()


def check_decision_rule(
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
    num_classes: int | None = None,
) -> tuple[float | None, list[float] | None]:
    """Validate a decision rule (see :func:`predicted_classes`); return ``(threshold, normalised priors)``.

    Raises:
        ValueError: both rules given; a threshold outside ``[0, 1]`` or with ``num_classes != 2``;
            priors that are not positive and finite or do not match ``num_classes``.
        TypeError: a threshold that is not a number.
    """
    rule = _check_rule(decision_threshold, class_priors, num_classes)
    return rule.threshold, None if rule.priors is None else rule.priors.tolist()


def _decide(p: torch.Tensor, rule: _Rule) -> torch.Tensor:
    if rule.threshold is not None:
        return (p[:, 1] >= rule.threshold).long()
    if rule.priors is not None:
        return (p.double() / rule.priors.to(p.device)).argmax(dim=1)
    return p.argmax(dim=1)


class _Input(NamedTuple):
    """Validated ``(y_pred, y)`` and decision rule."""

    form: str
    probabilities: torch.Tensor | None  # (N, C) float32 for "probabilities", None for decisions
    classes: torch.Tensor | None  # (N,) int64 given decisions
    labels: torch.Tensor  # (N,) int64
    num_classes: int
    rule: _Rule

    def predicted(self) -> torch.Tensor:
        """``(N,)`` predicted classes: the given decisions, or the decision rule applied to the probabilities."""
        return self.classes if self.probabilities is None else _decide(self.probabilities, self.rule)


def _prepare(
    y_pred: Any,
    y: Any,
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
    num_classes: int | None = None,
) -> _Input:
    pred = _read_predictions(y_pred, num_classes)
    classes = pred.width or num_classes or _infer_num_classes(pred.classes, y)
    n = pred.probabilities.shape[0] if pred.probabilities is not None else pred.classes.shape[0]
    labels = _check_labels(y, n, classes)
    rule = _check_rule(decision_threshold, class_priors, classes)
    if pred.probabilities is None and (rule.threshold is not None or rule.priors is not None):
        raise ValueError(needs_probabilities_message("a decision rule (decision_threshold or class_priors)", pred.form))
    if n == 0:
        raise ValueError("no samples: y_pred and y are empty")
    return _Input(pred.form, pred.probabilities, pred.classes, labels, classes, rule)


def predicted_classes(
    y_pred: Any, decision_threshold: float | None = None, class_priors: Sequence[float] | None = None
) -> torch.Tensor:
    """Predicted class per sample.

    ``argmax_c y_pred[n, c]`` by default; with a binary ``decision_threshold`` ``t``:
    ``1[y_pred[n, 1] >= t]``; with ``class_priors`` ``pi`` (training class frequencies or counts):
    ``argmax_c y_pred[n, c] / pi_c`` (prior correction). Decisions (class indices, one-hot rows) are
    returned as class indices; they take no decision rule.

    Args:
        y_pred: ``(N, C)`` class probabilities, or decisions (see :data:`PREDICTION_FORMS`).
        decision_threshold: optional binary decision threshold in ``[0, 1]``.
        class_priors: optional ``C`` positive class priors (normalised here).

    Returns:
        ``(N,)`` int64 tensor.
    """
    pred = _read_predictions(y_pred)
    rule = _check_rule(decision_threshold, class_priors, pred.width)
    if pred.probabilities is None:
        if rule.threshold is not None or rule.priors is not None:
            raise ValueError(
                needs_probabilities_message("a decision rule (decision_threshold or class_priors)", pred.form)
            )
        return pred.classes
    return _decide(pred.probabilities, rule)


def _confusion(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    flat = labels.cpu() * num_classes + predicted.cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_matrix(
    y_pred: Any,
    y: Any,
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
    *,
    num_classes: int | None = None,
) -> torch.Tensor:
    """``C x C`` confusion matrix ``M[true, predicted]`` (counts, int64, on the CPU).

    Args:
        y_pred: ``(N, C)`` class probabilities, or decisions (see :data:`PREDICTION_FORMS`).
        y: ``(N,)``/``(N, 1)`` integer labels or ``(N, C)`` one-hot labels.
        decision_threshold, class_priors: optional decision rule (see :func:`predicted_classes`).
        num_classes: ``C`` for class-index predictions (see the module docstring); checked otherwise.
    """
    inp = _prepare(y_pred, y, decision_threshold, class_priors, num_classes)
    return _confusion(inp.labels, inp.predicted(), inp.num_classes)


def _per_class(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class precision, recall, F1 (float64, NaN for classes absent from labels and predictions)."""
    cm = cm.double()
    tp = cm.diagonal()
    support = cm.sum(dim=1)  # true count per class
    predicted = cm.sum(dim=0)  # predicted count per class
    in_label_set = (support + predicted) > 0

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        out = torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))  # zero_division = 0
        return torch.where(in_label_set, out, torch.full_like(out, math.nan))

    return {
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, support),
        "f1": ratio(2 * tp, support + predicted),
        "support": support.long(),
        "in_label_set": in_label_set,
    }


def _average(values: torch.Tensor, average: str, num_classes: int) -> float | torch.Tensor:
    if average == "none":
        return values
    if average == "binary":
        if num_classes != 2:
            raise ValueError(f"average='binary' needs 2 classes, got {num_classes}; use 'macro' or 'none'")
        return float(values[1]) if not torch.isnan(values[1]) else 0.0
    if average == "macro":
        defined = values[~torch.isnan(values)]
        return float(defined.mean()) if defined.numel() > 0 else math.nan
    raise ValueError(f"average must be 'macro', 'none' or 'binary', got {average!r}")


def accuracy(
    y_pred: Any, y: Any, decision_threshold: float | None = None, class_priors: Sequence[float] | None = None
) -> float:
    """Fraction of correctly classified samples, ``trace(M) / N``."""
    inp = _prepare(y_pred, y, decision_threshold, class_priors)
    return float((inp.predicted() == inp.labels).double().mean())


def balanced_accuracy(
    y_pred: Any, y: Any, decision_threshold: float | None = None, class_priors: Sequence[float] | None = None
) -> float:
    """Mean per-class recall over the classes present in ``y`` (scikit-learn's ``balanced_accuracy_score``)."""
    cm = confusion_matrix(y_pred, y, decision_threshold, class_priors)
    return _balanced_accuracy_from_cm(cm)


def _balanced_accuracy_from_cm(cm: torch.Tensor) -> float:
    support = cm.sum(dim=1).double()
    present = support > 0
    return float((cm.diagonal().double()[present] / support[present]).mean())


def _score(
    name: str,
    y_pred: Any,
    y: Any,
    average: str,
    decision_threshold: float | None,
    class_priors: Sequence[float] | None,
) -> float | torch.Tensor:
    cm = confusion_matrix(y_pred, y, decision_threshold, class_priors)
    return _average(_per_class(cm)[name], average, cm.shape[0])


def f1_score(
    y_pred: Any,
    y: Any,
    average: Average = "macro",
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
) -> float | torch.Tensor:
    """F1 ``= 2 TP / (2 TP + FP + FN)`` per class, averaged.

    Args:
        average: ``"macro"`` (unweighted mean over the classes in labels or predictions), ``"none"``
            (``(C,)`` float64 tensor, NaN for classes that occur nowhere) or ``"binary"`` (class 1; 2 classes).
        decision_threshold, class_priors: optional decision rule (see :func:`predicted_classes`).
    """
    return _score("f1", y_pred, y, average, decision_threshold, class_priors)


def precision_score(
    y_pred: Any,
    y: Any,
    average: Average = "macro",
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
) -> float | torch.Tensor:
    """Precision ``= TP / (TP + FP)`` per class (0 for a never-predicted class), averaged as in :func:`f1_score`."""
    return _score("precision", y_pred, y, average, decision_threshold, class_priors)


def recall_score(
    y_pred: Any,
    y: Any,
    average: Average = "macro",
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
) -> float | torch.Tensor:
    """Recall (sensitivity) ``= TP / (TP + FN)`` per class, averaged as in :func:`f1_score`."""
    return _score("recall", y_pred, y, average, decision_threshold, class_priors)


def _per_class_auc(p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One-vs-rest AUC per class (float64, NaN where a class has no positive or no negative sample)."""
    num_classes = p.shape[1]
    p, labels = p.cpu().double(), labels.cpu()
    aucs = torch.full((num_classes,), math.nan, dtype=torch.float64)
    for c in range(num_classes):
        positive = (labels == c).long()
        if 0 < int(positive.sum()) < len(positive):
            aucs[c] = float(compute_roc_auc(p[:, c], positive))
    return aucs


def roc_auc(y_pred: Any, y: Any, average: Literal["macro", "none"] = "macro") -> float | torch.Tensor:
    """Area under the ROC curve.

    Binary (``C == 2``) with ``average="macro"``: the AUC of the positive-class probability
    ``y_pred[:, 1]``. Multiclass: the unweighted mean of the one-vs-rest AUCs of the classes with at
    least one positive and one negative sample (NaN if there is none). ``average="none"`` gives the
    ``(C,)`` one-vs-rest AUCs (NaN where undefined).

    Raises:
        ValueError: ``y_pred`` holds decisions (class indices or one-hot rows), not probabilities.
    """
    inp = _prepare(y_pred, y)
    if inp.probabilities is None:
        raise ValueError(needs_probabilities_message("the AUC", inp.form))
    p, labels = inp.probabilities, inp.labels
    aucs = _per_class_auc(p, labels)
    if average == "none":
        return aucs
    if average != "macro":
        raise ValueError(f"average must be 'macro' or 'none', got {average!r}")
    if p.shape[1] == 2:
        return float(aucs[1])
    return _average(aucs, "macro", p.shape[1])


def classification_report(
    y_pred: Any,
    y: Any,
    class_names: Sequence[str] | None = None,
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
    *,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """All classification metrics as a JSON-ready dict.

    The decision rule (``decision_threshold`` or ``class_priors``, see :func:`predicted_classes`)
    sets the predicted classes and so every score but the AUC. Given decisions (class indices or
    one-hot rows, see :data:`PREDICTION_FORMS`) the AUCs are NaN, with a warning that says so; with
    class indices ``C`` is ``num_classes``, else the number of ``class_names``, else inferred.

    Returns:
        ``{"num_samples", "num_classes", "class_names", "y_pred_form", "decision_threshold", "class_priors",
        "accuracy",
        "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "auc",
        "confusion_matrix" (rows true, columns predicted), "per_class": {name: {"precision", "recall",
        "f1", "auc", "support"}}}``; binary problems add ``"f1_positive"``, ``"precision_positive"``,
        ``"recall_positive"`` (sensitivity) and ``"specificity"`` of class 1. Undefined values are NaN.
    """
    given_names = class_names is not None and not isinstance(class_names, str)
    if num_classes is None and given_names and _read_predictions(y_pred).form == "class indices":
        num_classes = len(class_names)
    inp = _prepare(y_pred, y, decision_threshold, class_priors, num_classes)
    num_classes, labels, rule = inp.num_classes, inp.labels, inp.rule
    names = _check_class_names(class_names, num_classes)
    cm = _confusion(labels, inp.predicted(), num_classes)
    per = _per_class(cm)
    if inp.probabilities is None:
        warnings.warn(needs_probabilities_message("the AUC", inp.form) + "; the report's AUC is NaN", stacklevel=2)
        aucs = torch.full((num_classes,), math.nan, dtype=torch.float64)
    else:
        aucs = _per_class_auc(inp.probabilities, labels)
    report: dict[str, Any] = {
        "num_samples": int(labels.shape[0]),
        "num_classes": num_classes,
        "class_names": names,
        "y_pred_form": inp.form,
        "decision_threshold": rule.threshold,
        "class_priors": None if rule.priors is None else rule.priors.tolist(),
        "accuracy": cm.diagonal().sum().item() / cm.sum().item(),
        "balanced_accuracy": _balanced_accuracy_from_cm(cm),
        "f1_macro": _average(per["f1"], "macro", num_classes),
        "precision_macro": _average(per["precision"], "macro", num_classes),
        "recall_macro": _average(per["recall"], "macro", num_classes),
        "auc": float(aucs[1]) if num_classes == 2 else _average(aucs, "macro", num_classes),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(per["precision"][c]),
                "recall": float(per["recall"][c]),
                "f1": float(per["f1"][c]),
                "auc": float(aucs[c]),
                "support": int(per["support"][c]),
            }
            for c, name in enumerate(names)
        },
    }
    if num_classes == 2:
        tn, fp = cm[0, 0].item(), cm[0, 1].item()
        report["f1_positive"] = _average(per["f1"], "binary", 2)
        report["precision_positive"] = _average(per["precision"], "binary", 2)
        report["recall_positive"] = _average(per["recall"], "binary", 2)
        report["specificity"] = tn / (tn + fp) if tn + fp > 0 else math.nan
    return report


def _check_class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    if isinstance(class_names, str):
        raise TypeError("class_names must be a sequence of names, got a single string")
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class_names {names} for {num_classes} classes")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    return names


class ClassificationMetric(CumulativeIterationMetric):
    """Epoch-level classification metric for MONAI workflows, accumulating probabilities and labels.

    Every call (``metric(y_pred, y)``, batch-first tensors or lists of channel-first tensors, as any
    MONAI metric) validates the batch and stores it; :meth:`aggregate` computes one scalar named by
    ``metric_name`` over everything stored, :meth:`report` the full :func:`classification_report`.
    In a multi-process run both gather the buffers of all ranks first (MONAI's ``Cumulative``), so
    every rank must call them. A ``DistributedSampler`` that pads the data to equal shards counts the
    padded samples twice; use ``monai.data.DistributedSampler(even_divisible=False)`` for exact numbers.

    Args:
        metric_name: one of :data:`CLASSIFICATION_METRIC_NAMES`; the default ``"f1_macro"`` is the
            LMF paper's model-selection metric.
        num_classes: expected number of class columns in ``y_pred`` (checked when given); with class-index
            predictions the number of classes (else the one-hot label width or the largest class seen + 1).
        decision_threshold, class_priors: optional decision rule (see :func:`predicted_classes`).

    ``y_pred`` may be probabilities or decisions (class indices after ``AsDiscreted(argmax=True)``,
    one-hot rows after ``AsDiscreted(to_onehot=C)``), the same form in every batch; the form is decided
    over all stored samples (:data:`PREDICTION_FORMS`). ``"auc"`` and the decision rules need
    probabilities and raise an error naming the form they got.

    Example::

        metric = ClassificationMetric("f1_macro")
        for batch in loader:
            metric(torch.softmax(net(batch["image"]), dim=1), batch["label"])
        macro_f1 = metric.aggregate()
        report = metric.report(class_names=["benign", "malignant"])
        metric.reset()
    """

    def __init__(
        self,
        metric_name: str = "f1_macro",
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
    ) -> None:
        self._label_width: int | None = None
        self._width: int | None = None
        super().__init__()
        if metric_name not in CLASSIFICATION_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {metric_name!r}; choose one of {CLASSIFICATION_METRIC_NAMES}")
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.rule = _check_rule(decision_threshold, class_priors, num_classes)
        if num_classes is not None and metric_name in _BINARY_ONLY and num_classes != 2:
            raise ValueError(f"metric {metric_name!r} is for binary problems, got num_classes={num_classes}")
        self.metric_name = metric_name
        self.num_classes = num_classes
        self.decision_threshold = self.rule.threshold
        self.class_priors = None if self.rule.priors is None else self.rule.priors.tolist()

    def reset(self) -> None:
        super().reset()
        self._label_width = None
        self._width = None

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Validate and store one batch: ``y_pred`` ``(B, C)`` probabilities or decisions, ``y`` labels (see the
        module docstring); either may also be a list of per-sample items (tensors or numbers)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels y")
        return super().__call__(_to_tensor(y_pred, "y_pred"), _to_tensor(y, "y"), **kwargs)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:  # type: ignore[override]
        if y is None:
            raise ValueError("ClassificationMetric needs labels y")
        pred = _read_predictions(y_pred, self.num_classes)
        if pred.probabilities is None and (self.rule.threshold is not None or self.rule.priors is not None):
            raise ValueError(
                needs_probabilities_message("a decision rule (decision_threshold or class_priors)", pred.form)
            )
        if pred.classes is not None and pred.width is None:  # class indices: store them as a (B, 1) column
            if y.ndim == 2 and y.shape[1] > 1:
                self._label_width = max(self._label_width or 0, int(y.shape[1]))
            classes = self.num_classes or _infer_num_classes(pred.classes, y)
            labels = _check_labels(y, len(pred.classes), classes)
            stored = pred.classes[:, None].float()
        else:
            stored = pred.probabilities if pred.probabilities is not None else y_pred.float()
            labels = _check_labels(y, stored.shape[0], stored.shape[1])
            _check_rule(self.decision_threshold, self.class_priors, stored.shape[1])
        if self._width is not None and stored.shape[1] != self._width:
            raise ValueError(
                f"y_pred of shape {tuple(y_pred.shape)} ({pred.form}) does not match the earlier batches "
                f"({self._width} column(s)); give every batch in the same form"
            )
        self._width = int(stored.shape[1])
        return [stored, labels]

    def _gathered(self) -> _Input:
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on predictions and labels first")
        p, labels = buffers
        num_classes = self.num_classes or self._label_width
        return _prepare(p, labels, self.decision_threshold, self.class_priors, num_classes)

    def aggregate(self, metric_name: str | None = None) -> float:  # type: ignore[override]
        """The scalar ``metric_name`` (default: the one given at construction) over all stored samples."""
        name = metric_name or self.metric_name
        if name not in CLASSIFICATION_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {name!r}; choose one of {CLASSIFICATION_METRIC_NAMES}")
        inp = self._gathered()
        if name in _BINARY_ONLY and inp.num_classes != 2:
            raise ValueError(f"metric {name!r} is defined for binary problems, got {inp.num_classes} classes")
        if name == "auc":
            if inp.probabilities is None:
                raise ValueError(needs_probabilities_message("metric 'auc'", inp.form))
            return roc_auc(inp.probabilities, inp.labels)
        cm = _confusion(inp.labels, inp.predicted(), inp.num_classes)
        if name == "accuracy":
            return cm.diagonal().sum().item() / cm.sum().item()
        if name == "balanced_accuracy":
            return _balanced_accuracy_from_cm(cm)
        if name == "specificity":
            tn, fp = cm[0, 0].item(), cm[0, 1].item()
            return tn / (tn + fp) if tn + fp > 0 else math.nan
        score, average = name.split("_")
        return float(_average(_per_class(cm)[score], "binary" if average == "positive" else "macro", inp.num_classes))

    def report(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """:func:`classification_report` over all stored samples."""
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on predictions and labels first")
        p, labels = buffers
        return classification_report(
            p,
            labels,
            class_names=class_names,
            decision_threshold=self.decision_threshold,
            class_priors=self.class_priors,
            num_classes=self.num_classes or self._label_width,
        )


class MacroF1Metric(ClassificationMetric):
    """:class:`ClassificationMetric` fixed to the macro-averaged F1 score (the LMF paper's selection metric)."""

    def __init__(
        self,
        num_classes: int | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
    ) -> None:
        super().__init__("f1_macro", num_classes, decision_threshold, class_priors)
