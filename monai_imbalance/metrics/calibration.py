"""Calibration of class probabilities: ECE (top-label and class-wise), reliability bins, Brier score, NLL.

A classifier is calibrated when a predicted probability ``q`` is right a fraction ``q`` of the time. Inputs
follow MONAI's argument order ``(y_pred, y)``: ``y_pred`` ``(N, C)`` class probabilities (softmax outputs or
the mean of Monte Carlo dropout passes; checked by :func:`~monai_imbalance.metrics.check_probabilities`,
logits and class decisions are refused), ``y`` ``(N,)``/``(N, 1)`` integer labels or ``(N, C)`` one-hot.

Definitions (``M`` bins ``B_1..B_M`` of the cases, ``|B_m|`` cases in bin ``m``, ``N`` cases in all):

- top-label ECE (Guo et al. 2017): the confidence of case ``n`` is ``conf_n = max_c p_nc``, it is correct
  when ``argmax_c p_nc = y_n``; with the cases binned by confidence,
  ``ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` (``acc``, ``conf``: the means over the bin);
- class-wise ECE (Kull et al. 2019): for every class ``c`` the same with ``p_nc`` binned in place of the
  confidence and ``1[y_n = c]`` in place of correctness, then the unweighted mean over the ``C`` classes:
  a minority class counts as much as the majority class (top-label ECE is dominated by the majority);
- Brier score (Brier 1950, multiclass form): ``mean_n sum_c (p_nc - 1[y_n = c])^2``, in ``[0, 2]``;
- NLL: ``mean_n -log max(p_{n, y_n}, eps)``, the cross-entropy of the probabilities (``eps`` keeps a
  saturated wrong prediction finite).

Binnings (:data:`BINNINGS`):

- ``"equal_width"``: ``M`` intervals ``(k/M, (k+1)/M]`` of ``[0, 1]`` (0 goes to the first), as Guo et al.;
  empty bins count nothing;
- ``"equal_mass"``: the cases sorted by their score (stable, ties in input order) and cut into ``M`` runs of
  ``floor(N/M)`` or ``ceil(N/M)`` cases (the first ``N mod M`` runs take one more, as ``numpy.array_split``);
  every bin holds about ``N/M`` cases, so the estimate is less noisy where the confidences crowd (Nixon et
  al. 2019's adaptive ECE). Tied scores may fall into neighbouring bins.

The argmax decides correctness: calibration is a property of the probabilities, not of a decision rule
chosen afterwards. Computed in float64 on the CPU (the inputs may live on any device); the result is a
Python float. :class:`CalibrationMetric` is the cumulative (epoch-level, multi-process aware) form for
MONAI workflows.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from monai.metrics import CumulativeIterationMetric

from monai_imbalance.metrics.classification import _check_labels, _to_tensor, check_probabilities

__all__ = [
    "BINNINGS",
    "CALIBRATION_METRIC_NAMES",
    "DEFAULT_CALIBRATION_BINS",
    "CalibrationMetric",
    "ReliabilityBins",
    "brier_score",
    "calibration_report",
    "classwise_calibration_error",
    "expected_calibration_error",
    "negative_log_likelihood",
    "reliability_bins",
]

#: how the cases are binned: equal-width intervals of ``[0, 1]`` or equal numbers of cases
BINNINGS = ("equal_width", "equal_mass")
#: the number of bins of Guo et al. 2017 (and of most reported ECEs)
DEFAULT_CALIBRATION_BINS = 15
#: scalar metrics that :meth:`CalibrationMetric.aggregate` can return
CALIBRATION_METRIC_NAMES = ("ece", "classwise_ece", "brier", "nll")

_NLL_EPS = 1e-12


class ReliabilityBins(NamedTuple):
    """Per-bin summary of a reliability diagram (all ``(M,)``, float64 on the CPU; NaN in empty bins).

    ``confidence``: mean score of the bin; ``accuracy``: fraction correct (top-label) or of the class
    (class-wise); ``count``: cases in the bin (int64); ``lower``/``upper``: the bin's score range (the
    interval for equal-width bins, the smallest and largest score in it for equal-mass bins).
    """

    confidence: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor


def _check_bins(num_bins: int, binning: str) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")


def _inputs(y_pred: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(N, C)`` float64 probabilities and ``(N,)`` int64 labels on the CPU (``N >= 1``).

    The values keep the precision they came in (float64 stays float64; the check works in float32).
    """
    given = _to_tensor(y_pred, "y_pred")
    p = check_probabilities(given, purpose="calibration")
    labels = _check_labels(y, p.shape[0], p.shape[1])
    if p.shape[0] == 0:
        raise ValueError("no samples: y_pred and y are empty")
    values = given if torch.is_floating_point(given) else p
    return values.detach().cpu().double(), labels.cpu()


def _bin_index(scores: torch.Tensor, num_bins: int, binning: str) -> torch.Tensor:
    """``(N,)`` bin of every score in ``[0, 1]`` (see the module docstring)."""
    if binning == "equal_width":
        inner = torch.linspace(0.0, 1.0, num_bins + 1, dtype=torch.float64)[1:-1]
        return torch.bucketize(scores.contiguous(), inner, right=False)  # inner[k-1] < s <= inner[k]  ->  k
    n = scores.shape[0]
    order = torch.sort(scores, stable=True).indices
    size, extra = divmod(n, num_bins)
    sizes = torch.full((num_bins,), size, dtype=torch.int64)
    sizes[:extra] += 1
    index = torch.empty(n, dtype=torch.int64)
    index[order] = torch.repeat_interleave(torch.arange(num_bins), sizes)
    return index


def _bins(scores: torch.Tensor, hits: torch.Tensor, num_bins: int, binning: str) -> ReliabilityBins:
    index = _bin_index(scores, num_bins, binning)
    count = torch.bincount(index, minlength=num_bins)
    sum_conf = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, index, scores)
    sum_hit = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, index, hits.double())
    denom = count.double()
    empty = count == 0
    nan = torch.full((num_bins,), math.nan, dtype=torch.float64)
    confidence = torch.where(empty, nan, sum_conf / denom.clamp_min(1))
    accuracy = torch.where(empty, nan, sum_hit / denom.clamp_min(1))
    if binning == "equal_width":
        edges = torch.linspace(0.0, 1.0, num_bins + 1, dtype=torch.float64)
        lower, upper = edges[:-1], edges[1:]
    else:
        lower = torch.full((num_bins,), math.inf, dtype=torch.float64).scatter_reduce(0, index, scores, "amin")
        upper = torch.full((num_bins,), -math.inf, dtype=torch.float64).scatter_reduce(0, index, scores, "amax")
        lower, upper = torch.where(empty, nan, lower), torch.where(empty, nan, upper)
    return ReliabilityBins(confidence, accuracy, count, lower, upper)


def _ece(bins: ReliabilityBins) -> float:
    filled = bins.count > 0
    weights = bins.count[filled].double() / bins.count.sum()
    return float((weights * (bins.accuracy[filled] - bins.confidence[filled]).abs()).sum())


def reliability_bins(
    y_pred: Any,
    y: Any,
    *,
    num_bins: int = DEFAULT_CALIBRATION_BINS,
    binning: str = "equal_width",
    class_index: int | None = None,
) -> ReliabilityBins:
    """The bins of a reliability diagram: mean confidence, accuracy and count per bin.

    Args:
        y_pred: ``(N, C)`` class probabilities.
        y: ``(N,)``/``(N, 1)`` integer labels or ``(N, C)`` one-hot labels.
        num_bins: ``M``.
        binning: ``"equal_width"`` or ``"equal_mass"`` (module docstring).
        class_index: ``None``: top-label (confidence ``max_c p``, correct iff the argmax is the label);
            a class ``c``: ``p[:, c]`` against ``1[y = c]`` (one term of the class-wise ECE).
    """
    _check_bins(num_bins, binning)
    p, labels = _inputs(y_pred, y)
    if class_index is None:
        confidence, predicted = p.max(dim=1)
        return _bins(confidence, predicted == labels, num_bins, binning)
    if isinstance(class_index, bool) or not isinstance(class_index, int) or not 0 <= class_index < p.shape[1]:
        raise ValueError(f"class_index must be a class 0..{p.shape[1] - 1} or None, got {class_index!r}")
    return _bins(p[:, class_index], labels == class_index, num_bins, binning)


def expected_calibration_error(
    y_pred: Any, y: Any, *, num_bins: int = DEFAULT_CALIBRATION_BINS, binning: str = "equal_width"
) -> float:
    """Top-label ECE ``sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` in ``[0, 1]`` (module docstring)."""
    return _ece(reliability_bins(y_pred, y, num_bins=num_bins, binning=binning))


def classwise_calibration_error(
    y_pred: Any,
    y: Any,
    *,
    num_bins: int = DEFAULT_CALIBRATION_BINS,
    binning: str = "equal_width",
    average: str = "macro",
) -> float | torch.Tensor:
    """Class-wise ECE: per class ``c`` the ECE of ``p[:, c]`` against ``1[y = c]``; ``"macro"``: their plain mean.

    Every class weighs the same, whatever its frequency, so a model that is calibrated on the majority
    class and over-confident on a rare one scores badly here while its top-label ECE looks fine.

    Args:
        average: ``"macro"`` (a float) or ``"none"`` (the ``(C,)`` float64 per-class errors).
    """
    if average not in ("macro", "none"):
        raise ValueError(f"average must be 'macro' or 'none', got {average!r}")
    _check_bins(num_bins, binning)
    p, labels = _inputs(y_pred, y)
    per_class = torch.tensor(
        [_ece(_bins(p[:, c], labels == c, num_bins, binning)) for c in range(p.shape[1])], dtype=torch.float64
    )
    return per_class if average == "none" else float(per_class.mean())


def brier_score(y_pred: Any, y: Any) -> float:
    """Multiclass Brier score ``mean_n sum_c (p_nc - 1[y_n = c])^2`` in ``[0, 2]`` (0: certain and right)."""
    p, labels = _inputs(y_pred, y)
    onehot = torch.nn.functional.one_hot(labels, p.shape[1]).double()
    return float(((p - onehot) ** 2).sum(dim=1).mean())


def negative_log_likelihood(y_pred: Any, y: Any, *, eps: float = _NLL_EPS) -> float:
    """``mean_n -log max(p_{n, y_n}, eps)`` in nats (the cross-entropy of probabilities, not of logits)."""
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    p, labels = _inputs(y_pred, y)
    return float(-p.gather(1, labels[:, None]).clamp_min(eps).log().mean())


def calibration_report(
    y_pred: Any, y: Any, *, num_bins: int = DEFAULT_CALIBRATION_BINS, binning: str = "equal_width"
) -> dict[str, Any]:
    """All calibration scores as a JSON-ready dict.

    Returns:
        ``{"ece", "ece_equal_mass", "classwise_ece", "brier", "nll", "num_bins", "binning",
        "classwise_ece_per_class": [C floats]}``: ``ece`` and ``classwise_ece`` with ``binning``,
        ``ece_equal_mass`` the top-label ECE with equal-mass bins (whatever ``binning`` is).
    """
    _check_bins(num_bins, binning)
    p, labels = _inputs(y_pred, y)
    per_class = classwise_calibration_error(p, labels, num_bins=num_bins, binning=binning, average="none")
    return {
        "ece": expected_calibration_error(p, labels, num_bins=num_bins, binning=binning),
        "ece_equal_mass": expected_calibration_error(p, labels, num_bins=num_bins, binning="equal_mass"),
        "classwise_ece": float(per_class.mean()),
        "brier": brier_score(p, labels),
        "nll": negative_log_likelihood(p, labels),
        "num_bins": num_bins,
        "binning": binning,
        "classwise_ece_per_class": per_class.tolist(),
    }


class CalibrationMetric(CumulativeIterationMetric):
    """Epoch-level calibration metric for MONAI workflows, accumulating probabilities and labels.

    Every call (``metric(y_pred, y)``, batch-first tensors or lists of per-sample tensors, as any MONAI
    metric) validates the batch and stores it; :meth:`aggregate` computes the scalar ``metric_name`` over
    everything stored, :meth:`report` all of :func:`calibration_report`, :meth:`bins` the reliability
    diagram. In a multi-process run they gather the buffers of all ranks first (MONAI's ``Cumulative``),
    so every rank must call them.

    Args:
        metric_name: one of :data:`CALIBRATION_METRIC_NAMES` (``"ece"``, ``"classwise_ece"``, ``"brier"``,
            ``"nll"``).
        num_bins, binning: the bins of the two ECEs (module docstring).

    Example::

        metric = CalibrationMetric("ece", num_bins=15)
        for batch in loader:
            metric(torch.softmax(net(batch["image"]), dim=1), batch["label"])
        ece = metric.aggregate()
    """

    def __init__(
        self, metric_name: str = "ece", *, num_bins: int = DEFAULT_CALIBRATION_BINS, binning: str = "equal_width"
    ) -> None:
        super().__init__()
        if metric_name not in CALIBRATION_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {metric_name!r}; choose one of {CALIBRATION_METRIC_NAMES}")
        _check_bins(num_bins, binning)
        self.metric_name = metric_name
        self.num_bins = num_bins
        self.binning = binning

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Validate and store one batch: ``y_pred`` ``(B, C)`` probabilities, ``y`` labels."""
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels y")
        return super().__call__(_to_tensor(y_pred, "y_pred"), _to_tensor(y, "y"), **kwargs)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:  # type: ignore[override]
        p = check_probabilities(y_pred, purpose="calibration")
        return [p, _check_labels(y, p.shape[0], p.shape[1])]

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor]:
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on predictions and labels first")
        return buffers[0], buffers[1]

    def aggregate(self, metric_name: str | None = None) -> float:  # type: ignore[override]
        """The scalar ``metric_name`` (default: the one given at construction) over all stored samples."""
        name = metric_name or self.metric_name
        if name not in CALIBRATION_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {name!r}; choose one of {CALIBRATION_METRIC_NAMES}")
        p, labels = self._gathered()
        if name == "ece":
            return expected_calibration_error(p, labels, num_bins=self.num_bins, binning=self.binning)
        if name == "classwise_ece":
            return float(classwise_calibration_error(p, labels, num_bins=self.num_bins, binning=self.binning))
        if name == "brier":
            return brier_score(p, labels)
        return negative_log_likelihood(p, labels)

    def report(self) -> dict[str, Any]:
        """:func:`calibration_report` over all stored samples."""
        p, labels = self._gathered()
        return calibration_report(p, labels, num_bins=self.num_bins, binning=self.binning)

    def bins(self, class_index: int | None = None) -> ReliabilityBins:
        """:func:`reliability_bins` over all stored samples (top-label unless ``class_index`` is given)."""
        p, labels = self._gathered()
        return reliability_bins(p, labels, num_bins=self.num_bins, binning=self.binning, class_index=class_index)
