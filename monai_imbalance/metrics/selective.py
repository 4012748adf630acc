"""Selective prediction (referral): keep the cases the model is most sure of, refer the rest to a person.

Any uncertainty score ``u`` (larger: less sure; :mod:`monai_imbalance.metrics.uncertainty`) orders the
cases. Referring every case with ``u > t`` keeps the others; the *coverage* is the fraction kept and the
*risk* the mean loss ``l`` of the kept cases (``l = 1[wrong]`` for a classifier, ``1 - Dice`` for a
segmented image). A good score refers the errors first, so the risk falls as the coverage shrinks.

Definitions (``N`` cases sorted by increasing ``u``; ``risk(k)`` the mean loss of the first ``k``):

- risk-coverage curve (:func:`risk_coverage_curve`): ``(k/N, risk(k))`` at every distinct threshold ``t``
  (all cases with ``u <= t`` kept);
- AURC (Geifman et al. 2019): ``(1/N) sum_{k=1}^{N} risk(k)``, the mean risk over the coverages
  ``1/N, ..., 1``; lower is better;
- E-AURC: ``AURC - AURC*``, where ``AURC*`` is the AURC of the best possible order (every loss sorted
  ascending): what the score loses against an oracle, independent of how many errors there are;
- uncertainty-error AUROC: the AUC of ``u`` as a detector of the wrong cases (``l > 0``), MONAI's
  ``compute_roc_auc`` (ties count one half); 0.5 is a score that knows nothing; NaN without a wrong and a
  right case.

Ties in ``u`` have no order, so ``risk(k)`` inside a run of tied cases is its expectation over the orders
of the run: kept ``j`` of a run of ``g`` cases with summed loss ``s`` add ``j s / g``. AURC and E-AURC are
thereby the mean over all tie-breaking orders (a constant score gets ``AURC = mean loss`` exactly, not a
value that depends on the input order).

Referral at a rate ``r`` (:func:`referral_threshold`): ``n = floor(r N + 1/2)`` cases are to be referred;
every case with ``u > t`` is referred, where the threshold ``t`` lies halfway between the largest score kept
(the ``(N - n)``-th smallest) and the smallest score referred (the next one). So exactly ``n`` are referred
unless those two scores tie (then fewer: tied cases share one fate, and ``t`` is their score). Halfway, and not
at the last kept score, so that the same cases scored again (another batch size, device or code path, which
moves a float32 score by a rounding error) are referred the same way. Fitted on validation data, the threshold
(not the rate) is what inference applies: new data then refer about ``r`` of the cases.
:func:`accuracy_referral_threshold` fits the threshold for a target accuracy of the kept cases instead (halfway
to the next distinct score as well); :func:`referral_table` reports the
kept cases' accuracy, balanced accuracy and macro-F1 at the rates :data:`REFERRAL_RATES`.

Computed in float64 on the CPU (inputs may live on any device); results are Python floats.
:class:`SelectivePredictionMetric` is the cumulative (epoch-level, multi-process aware) form.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from monai.metrics import CumulativeIterationMetric, compute_roc_auc

from monai_imbalance.metrics.classification import (
    _average,
    _balanced_accuracy_from_cm,
    _check_labels,
    _check_rule,
    _confusion,
    _decide,
    _per_class,
    _to_tensor,
    check_probabilities,
)
from monai_imbalance.metrics.uncertainty import MC_ONLY_SCORES, UNCERTAINTY_SCORES, uncertainty_from_output

__all__ = [
    "REFERRAL_RATES",
    "SELECTIVE_METRIC_NAMES",
    "RiskCoverage",
    "SelectivePredictionMetric",
    "accuracy_referral_threshold",
    "aurc",
    "excess_aurc",
    "referral_table",
    "referral_threshold",
    "retained_mean",
    "risk_coverage_curve",
    "selective_report",
    "uncertainty_error_auroc",
]

#: referral rates of the reports: none, 10, 20, 30 and 50 % of the cases referred
REFERRAL_RATES = (0.0, 0.1, 0.2, 0.3, 0.5)
#: scalar metrics that :meth:`SelectivePredictionMetric.aggregate` can return
SELECTIVE_METRIC_NAMES = ("aurc", "e_aurc", "uncertainty_auroc")


class RiskCoverage(NamedTuple):
    """A risk-coverage curve at the distinct thresholds, by increasing coverage (all ``(K,)`` float64, CPU).

    ``threshold``: the score ``t`` (cases with ``u <= t`` kept); ``coverage``: fraction kept; ``risk``: mean
    loss of the kept cases.
    """

    threshold: torch.Tensor
    coverage: torch.Tensor
    risk: torch.Tensor


def _check_scores(uncertainty: Any, loss: Any | None = None, name: str = "loss") -> tuple[torch.Tensor, torch.Tensor]:
    """``(N,)`` float64 CPU uncertainty and loss (``N >= 1``, finite); ``(N, 1)`` is accepted for both."""
    u = _flat(uncertainty, "uncertainty")
    if loss is None:
        return u, torch.zeros_like(u)
    values = _flat(loss, name)
    if values.shape != u.shape:
        raise ValueError(f"uncertainty has {u.shape[0]} cases but {name} has {values.shape[0]}")
    return u, values


def _flat(x: Any, name: str) -> torch.Tensor:
    t = _to_tensor(x, name)
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1:
        raise ValueError(f"{name} must hold one value per case, shape (N,) or (N, 1); got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"no cases: {name} is empty")
    t = t.detach().cpu().double()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


class _Runs(NamedTuple):
    """Cases sorted by uncertainty, grouped into runs of tied scores."""

    value: torch.Tensor  # (K,) distinct scores, increasing
    size: torch.Tensor  # (K,) cases per run
    loss: torch.Tensor  # (K,) summed loss per run
    before: torch.Tensor  # (K,) cases before the run
    loss_before: torch.Tensor  # (K,) summed loss before the run


def _runs(u: torch.Tensor, loss: torch.Tensor) -> _Runs:
    value, inverse, size = torch.unique(u, sorted=True, return_inverse=True, return_counts=True)
    run_loss = torch.zeros(value.shape[0], dtype=torch.float64).index_add_(0, inverse, loss)
    kept = torch.cumsum(size, 0)
    kept_loss = torch.cumsum(run_loss, 0)
    return _Runs(value, size, run_loss, kept - size, kept_loss - run_loss)


def _expected_risks(runs: _Runs) -> torch.Tensor:
    """``(N,)`` expected ``risk(k)``, ``k = 1..N``, over the orders of the tied runs (module docstring)."""
    run = torch.repeat_interleave(torch.arange(runs.size.shape[0]), runs.size)
    k = torch.arange(1, run.shape[0] + 1, dtype=torch.float64)
    j = k - runs.before[run].double()  # position inside the run, 1..g
    return (runs.loss_before[run] + j * runs.loss[run] / runs.size[run].double()) / k


def risk_coverage_curve(uncertainty: Any, loss: Any) -> RiskCoverage:
    """The risk-coverage curve of ``uncertainty`` ``(N,)`` for the per-case ``loss`` ``(N,)`` (e.g. ``1[wrong]``)."""
    u, values = _check_scores(uncertainty, loss)
    runs = _runs(u, values)
    kept = (runs.before + runs.size).double()
    return RiskCoverage(runs.value, kept / u.shape[0], (runs.loss_before + runs.loss) / kept)


def aurc(uncertainty: Any, loss: Any) -> float:
    """Area under the risk-coverage curve, ``(1/N) sum_k risk(k)``, ties averaged (module docstring)."""
    u, values = _check_scores(uncertainty, loss)
    return float(_expected_risks(_runs(u, values)).mean())


def excess_aurc(uncertainty: Any, loss: Any) -> float:
    """E-AURC: :func:`aurc` minus that of the oracle order (the losses themselves as the score), ``>= 0``."""
    u, values = _check_scores(uncertainty, loss)
    return float(_expected_risks(_runs(u, values)).mean() - _expected_risks(_runs(values, values)).mean())


def uncertainty_error_auroc(uncertainty: Any, errors: Any) -> float:
    """AUC of ``uncertainty`` as a detector of the cases with ``errors > 0``; NaN unless both kinds occur."""
    u, values = _check_scores(uncertainty, errors, "errors")
    wrong = (values > 0).long()
    if int(wrong.sum()) in (0, wrong.shape[0]):
        return math.nan
    return float(compute_roc_auc(u, wrong))


def _check_rate(rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"a referral rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def _halfway(values: torch.Tensor, index: int) -> float:
    """Midway between ``values[index]`` and the next value of the increasing ``values`` (the last: itself)."""
    if index + 1 >= values.shape[0]:
        return float(values[index])
    return float((values[index] + values[index + 1]) / 2)


def referral_threshold(uncertainty: Any, *, rate: float) -> float:
    """The threshold ``t`` that refers (``u > t``) a fraction ``rate`` of the cases (module docstring).

    ``rate = 0`` gives the largest score (nothing referred); at least one case is always kept (a rate close to 1
    on a handful of cases).
    """
    rate = _check_rate(rate)
    u, _ = _check_scores(uncertainty)
    n = u.shape[0]
    keep = n - math.floor(rate * n + 0.5)
    if keep < 1:  # rate close to 1 on few cases: keep the most certain one
        keep = 1
    return _halfway(torch.sort(u).values, keep - 1)


def accuracy_referral_threshold(uncertainty: Any, errors: Any, *, target_accuracy: float) -> float:
    """The largest threshold ``t`` whose kept cases (``u <= t``) reach ``target_accuracy`` (halfway to the next score).

    ``errors`` ``(N,)``: 1 for a wrong case, 0 for a right one. Where no threshold reaches the target, the
    one with the highest accuracy of the kept cases is returned (the largest of them on ties), with a
    warning that says what it reaches.
    """
    if isinstance(target_accuracy, bool) or not isinstance(target_accuracy, (int, float)):
        raise TypeError(f"target_accuracy must be a number, got {type(target_accuracy).__name__}")
    if not 0.0 < float(target_accuracy) <= 1.0:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy!r}")
    curve = risk_coverage_curve(uncertainty, errors)
    kept_accuracy = 1.0 - curve.risk
    reached = (kept_accuracy >= float(target_accuracy) - 1e-12).nonzero()
    if reached.numel():
        return _halfway(curve.threshold, int(reached.max()))
    best = float(kept_accuracy.max())
    index = int((kept_accuracy == best).nonzero().max())
    warnings.warn(
        f"no referral threshold reaches the target accuracy {target_accuracy} of the kept cases; using the best "
        f"one, which keeps {float(curve.coverage[index]):.1%} of the cases at accuracy {best:.4f}",
        stacklevel=2,
    )
    return _halfway(curve.threshold, index)


def retained_mean(uncertainty: Any, values: Any, *, rates: Sequence[float] = REFERRAL_RATES) -> dict[str, Any]:
    """Mean of a per-case ``values`` ``(N,)`` (e.g. the Dice of every image) over the cases kept at each rate.

    Returns:
        ``{f"{rate:g}": {"rate", "referred_fraction", "num_retained", "threshold", "mean"}}``.
    """
    u, v = _check_scores(uncertainty, values, "values")
    return _at_referral_rates(u, rates, lambda kept: {"mean": float(v[kept].mean())})


def _at_referral_rates(
    u: torch.Tensor, rates: Sequence[float], scores_of_kept: Callable[[torch.Tensor], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``{f"{rate:g}": {"rate", "referred_fraction", "num_retained", "threshold", **scores_of_kept(kept)}}``: each
    rate's :func:`referral_threshold` of ``u`` and the ``(N,)`` mask of the cases it keeps."""
    table = {}
    for rate in rates:
        t = referral_threshold(u, rate=rate)
        kept = u <= t
        table[f"{float(rate):g}"] = {
            "rate": float(rate),
            "referred_fraction": float((~kept).double().mean()),
            "num_retained": int(kept.sum()),
            "threshold": t,
            **scores_of_kept(kept),
        }
    return table


def _decisions(
    y_pred: Any, y: Any, decision_threshold: float | None, class_priors: Sequence[float] | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(N,)`` predicted classes and labels (CPU int64) and ``C`` from probabilities and a decision rule."""
    p = check_probabilities(y_pred, purpose="referral")
    labels = _check_labels(y, p.shape[0], p.shape[1]).cpu()
    rule = _check_rule(decision_threshold, class_priors, p.shape[1])
    return _decide(p.cpu(), rule), labels, p.shape[1]


def _kept_scores(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    if predicted.numel() == 0:
        return {"accuracy": math.nan, "balanced_accuracy": math.nan, "f1_macro": math.nan}
    cm = _confusion(labels, predicted, num_classes)
    return {
        "accuracy": cm.diagonal().sum().item() / cm.sum().item(),
        "balanced_accuracy": _balanced_accuracy_from_cm(cm),
        "f1_macro": float(_average(_per_class(cm)["f1"], "macro", num_classes)),
    }


def referral_table(
    y_pred: Any,
    y: Any,
    uncertainty: Any,
    *,
    rates: Sequence[float] = REFERRAL_RATES,
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy, balanced accuracy and macro-F1 of the cases kept at each referral rate.

    At every rate the threshold is :func:`referral_threshold` of these very cases (how well the score
    ranks them; a threshold fitted on validation data is applied by the bundles' inference instead).
    The scores follow :mod:`~monai_imbalance.metrics.classification` (macro-F1 over the classes in the kept
    labels or predictions; balanced accuracy over the classes in the kept labels).

    Args:
        y_pred: ``(N, C)`` class probabilities; the predicted class follows the decision rule.
        y: labels, as for the classification metrics.
        uncertainty: ``(N,)`` score per case, larger: less sure.
        rates: referral rates in ``[0, 1)``.
        decision_threshold, class_priors: optional decision rule (see
            :func:`~monai_imbalance.metrics.predicted_classes`).

    Returns:
        ``{f"{rate:g}": {"rate", "referred_fraction", "num_retained", "threshold", "accuracy",
        "balanced_accuracy", "f1_macro"}}`` (``"0"``, ``"0.1"``, ...), by the order of ``rates``.
    """
    predicted, labels, num_classes = _decisions(y_pred, y, decision_threshold, class_priors)
    u, _ = _check_scores(uncertainty)
    if u.shape[0] != labels.shape[0]:
        raise ValueError(f"uncertainty has {u.shape[0]} cases but y_pred has {labels.shape[0]}")
    return _at_referral_rates(u, rates, lambda kept: _kept_scores(predicted[kept], labels[kept], num_classes))


def selective_report(
    y_pred: Any,
    y: Any,
    uncertainty: Any,
    *,
    rates: Sequence[float] = REFERRAL_RATES,
    decision_threshold: float | None = None,
    class_priors: Sequence[float] | None = None,
) -> dict[str, Any]:
    """AURC, E-AURC, uncertainty-error AUROC and the :func:`referral_table` of a classifier, JSON-ready.

    The loss is ``1[predicted class != label]`` with the predicted class from the decision rule.

    Returns:
        ``{"aurc", "e_aurc", "uncertainty_auroc", "error_rate", "referral": referral_table(...),
        "risk_coverage": {"coverage": [...], "risk": [...]}}``.
    """
    predicted, labels, _ = _decisions(y_pred, y, decision_threshold, class_priors)
    errors = (predicted != labels).double()
    u, _ = _check_scores(uncertainty, errors, "errors")
    curve = risk_coverage_curve(u, errors)
    return {
        "aurc": aurc(u, errors),
        "e_aurc": excess_aurc(u, errors),
        "uncertainty_auroc": uncertainty_error_auroc(u, errors),
        "error_rate": float(errors.mean()),
        "referral": referral_table(
            y_pred, y, u, rates=rates, decision_threshold=decision_threshold, class_priors=class_priors
        ),
        "risk_coverage": {"coverage": curve.coverage.tolist(), "risk": curve.risk.tolist()},
    }


class SelectivePredictionMetric(CumulativeIterationMetric):
    """Epoch-level selective-prediction metric for MONAI workflows: stores probabilities, labels, uncertainty.

    Every call ``metric(y_pred, y, uncertainty=None)`` validates the batch and stores it; without
    ``uncertainty`` the score named at construction is computed from ``y_pred`` (only
    ``"max_probability"`` and ``"entropy"`` can be; pass the Monte Carlo scores, e.g. the inferer's
    ``last_output["mutual_information"]``, explicitly). :meth:`aggregate` gives a scalar of
    :data:`SELECTIVE_METRIC_NAMES`, :meth:`report` the :func:`selective_report`, :meth:`curve` the
    risk-coverage curve. In a multi-process run every rank must call them (MONAI's ``Cumulative``).

    Args:
        metric_name: ``"aurc"``, ``"e_aurc"`` or ``"uncertainty_auroc"``.
        score: the uncertainty score computed when a call gives none (:data:`UNCERTAINTY_SCORES`).
        rates: referral rates of :meth:`report`.
        decision_threshold, class_priors: optional decision rule for the predicted class.
    """

    def __init__(
        self,
        metric_name: str = "aurc",
        *,
        score: str = "max_probability",
        rates: Sequence[float] = REFERRAL_RATES,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if metric_name not in SELECTIVE_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {metric_name!r}; choose one of {SELECTIVE_METRIC_NAMES}")
        if score not in UNCERTAINTY_SCORES:
            raise ValueError(f"unknown uncertainty score {score!r}; choose one of {UNCERTAINTY_SCORES}")
        self.rates = tuple(_check_rate(r) for r in rates)
        rule = _check_rule(decision_threshold, class_priors, None)
        self.metric_name = metric_name
        self.score = score
        self.decision_threshold = rule.threshold
        self.class_priors = None if rule.priors is None else rule.priors.tolist()

    def __call__(self, y_pred: Any, y: Any = None, uncertainty: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Validate and store one batch: ``y_pred`` ``(B, C)`` probabilities, ``y`` labels, ``uncertainty`` ``(B,)``."""
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels y")
        p = _to_tensor(y_pred, "y_pred")
        if uncertainty is None:
            if self.score in MC_ONLY_SCORES:
                raise ValueError(
                    f"the uncertainty score {self.score!r} needs Monte Carlo passes: give uncertainty= per call"
                )
            uncertainty = uncertainty_from_output(check_probabilities(p, purpose="referral"), self.score)
        u = _to_tensor(uncertainty, "uncertainty").reshape(-1, 1).float()
        return super().__call__(p, _to_tensor(y, "y"), uncertainty=u, **kwargs)

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, uncertainty: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        p = check_probabilities(y_pred, purpose="referral")
        labels = _check_labels(y, p.shape[0], p.shape[1])
        _check_rule(self.decision_threshold, self.class_priors, p.shape[1])
        assert uncertainty is not None
        if uncertainty.shape[0] != p.shape[0]:
            raise ValueError(f"uncertainty has {uncertainty.shape[0]} cases but y_pred has {p.shape[0]}")
        if not torch.isfinite(uncertainty).all():
            raise ValueError("uncertainty contains NaN or infinite values")
        return [p, labels, uncertainty.to(p.device)]

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        buffers = self.get_buffer()
        if buffers is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on predictions and labels first")
        p, labels, u = buffers
        return p, labels, u[:, 0]

    def _errors(self) -> tuple[torch.Tensor, torch.Tensor]:
        p, labels, u = self._gathered()
        predicted, labels, _ = _decisions(p, labels, self.decision_threshold, self.class_priors)
        return u, (predicted != labels).double()

    def aggregate(self, metric_name: str | None = None) -> float:  # type: ignore[override]
        """The scalar ``metric_name`` (default: the one given at construction) over all stored samples."""
        name = metric_name or self.metric_name
        if name not in SELECTIVE_METRIC_NAMES:
            raise ValueError(f"unknown metric_name {name!r}; choose one of {SELECTIVE_METRIC_NAMES}")
        u, errors = self._errors()
        if name == "aurc":
            return aurc(u, errors)
        if name == "e_aurc":
            return excess_aurc(u, errors)
        return uncertainty_error_auroc(u, errors)

    def curve(self) -> RiskCoverage:
        """:func:`risk_coverage_curve` of the stored cases (loss: the errors of the decision rule)."""
        return risk_coverage_curve(*self._errors())

    def report(self) -> dict[str, Any]:
        """:func:`selective_report` over all stored samples."""
        p, labels, u = self._gathered()
        return selective_report(
            p,
            labels,
            u,
            rates=self.rates,
            decision_threshold=self.decision_threshold,
            class_priors=self.class_priors,
        )
