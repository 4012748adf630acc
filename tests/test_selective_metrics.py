"""Selective prediction (risk-coverage, AURC, E-AURC, uncertainty AUROC, referral) and uncertainty scores."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from monai_imbalance.metrics import (
    REFERRAL_RATES,
    SELECTIVE_METRIC_NAMES,
    SelectivePredictionMetric,
    accuracy_referral_threshold,
    aurc,
    entropy,
    excess_aurc,
    max_probability_uncertainty,
    mutual_information,
    predicted_class_variance,
    predictive_entropy,
    referral_table,
    referral_threshold,
    retained_mean,
    risk_coverage_curve,
    selective_report,
    uncertainty_error_auroc,
    uncertainty_from_output,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _case(seed: int, n: int = 120, num_classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, num_classes, generator=g), dim=1)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return probs, labels


def _np_aurc_sorted(u: np.ndarray, loss: np.ndarray) -> float:
    order = np.argsort(u, kind="stable")
    cum = np.cumsum(loss[order])
    return float((cum / np.arange(1, len(u) + 1)).mean())


def _np_aurc_over_tie_orders(u: np.ndarray, loss: np.ndarray) -> float:
    """Mean AURC over every order of the tied cases (brute force)."""
    groups = [np.nonzero(u == v)[0] for v in np.unique(u)]
    values = []
    for perms in itertools.product(*[itertools.permutations(g) for g in groups]):
        order = np.concatenate([np.array(p) for p in perms])
        values.append((np.cumsum(loss[order]) / np.arange(1, len(u) + 1)).mean())
    return float(np.mean(values))


# ---------------------------------------------------------------------------- uncertainty scores


def test_scores_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert max_probability_uncertainty(probs).flatten().tolist() == pytest.approx([0.3, 0.0])
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert predictive_entropy(probs).flatten().tolist() == pytest.approx([h, 0.0])
    assert entropy(probs).shape == (2, 1)
    # sigmoid: per element
    sig = torch.tensor([[0.2, 0.5]])
    assert max_probability_uncertainty(sig, activation="sigmoid")[0].tolist() == pytest.approx([0.2, 0.5])
    assert entropy(sig, activation="sigmoid")[0, 1].item() == pytest.approx(math.log(2))


def test_mutual_information_and_variance_from_samples():
    samples = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=torch.float64)  # two passes disagree fully
    h_mean = math.log(2)
    h_each = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert mutual_information(samples).item() == pytest.approx(h_mean - h_each)
    same = torch.tensor([[[0.8, 0.2]], [[0.8, 0.2]]])
    assert mutual_information(same).item() == 0.0
    mean = torch.tensor([[0.3, 0.7], [0.6, 0.4]])
    variance = torch.tensor([[0.01, 0.02], [0.03, 0.04]])
    assert predicted_class_variance(mean, variance).flatten().tolist() == pytest.approx([0.02, 0.03])
    assert predicted_class_variance(mean, variance, activation="sigmoid") is variance
    with pytest.raises(ValueError, match="one shape"):
        predicted_class_variance(mean, variance[:1])
    with pytest.raises(ValueError, match="samples"):
        mutual_information(mean)


def test_mc_inferer_uses_the_same_scores():
    from monai_imbalance.inferers import MCDropoutInferer

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    out = MCDropoutInferer(num_samples=6, seed=0, keep_samples=True, reuse_prefix=False).predict(x, net)
    torch.testing.assert_close(out["mutual_information"], mutual_information(out["samples"]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["entropy"], predictive_entropy(out["mean"]), atol=1e-6, rtol=0)
    for score, expected in (
        ("max_probability", max_probability_uncertainty(out["mean"])),
        ("entropy", out["entropy"]),
        ("mutual_information", out["mutual_information"]),
        ("variance", predicted_class_variance(out["mean"], out["variance"])),
    ):
        assert torch.equal(uncertainty_from_output(out, score), expected)
    assert torch.equal(uncertainty_from_output(out["mean"], "entropy"), predictive_entropy(out["mean"]))
    with pytest.raises(ValueError, match="Monte Carlo"):
        uncertainty_from_output(out["mean"], "mutual_information")
    with pytest.raises(ValueError, match="unknown uncertainty score"):
        uncertainty_from_output(out, "std")


# ---------------------------------------------------------------------------- risk-coverage, AURC


def test_hand_computed_curve_and_aurc():
    u = torch.tensor([0.1, 0.4, 0.2, 0.3])
    wrong = torch.tensor([0.0, 1.0, 0.0, 1.0])
    # order 0.1 (right), 0.2 (right), 0.3 (wrong), 0.4 (wrong): risks 0, 0, 1/3, 1/2
    curve = risk_coverage_curve(u, wrong)
    assert curve.coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve.risk.tolist() == pytest.approx([0.0, 0.0, 1 / 3, 0.5])
    assert aurc(u, wrong) == pytest.approx((1 / 3 + 1 / 2) / 4)
    assert excess_aurc(u, wrong) == pytest.approx(0.0, abs=1e-15)  # the errors come last: the oracle order
    assert uncertainty_error_auroc(u, wrong) == 1.0
    # the reverse order is the worst: risks 1, 1, 2/3, 1/2
    assert aurc(-u, wrong) == pytest.approx((1 + 1 + 2 / 3 + 1 / 2) / 4)
    assert uncertainty_error_auroc(-u, wrong) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_aurc_without_ties_matches_numpy_and_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(60, generator=g, dtype=torch.float64)
    wrong = (torch.rand(60, generator=g) < 0.3 + 0.4 * u).double()
    assert aurc(u, wrong) == pytest.approx(_np_aurc_sorted(u.numpy(), wrong.numpy()), abs=1e-12)
    w = wrong.numpy()
    best = (np.cumsum(np.sort(w)) / np.arange(1, 61)).mean()
    assert excess_aurc(u, wrong) == pytest.approx(_np_aurc_sorted(u.numpy(), w) - best, abs=1e-12)
    assert uncertainty_error_auroc(u, wrong) == pytest.approx(skm.roc_auc_score(w, u.numpy()), abs=1e-12)
    curve = risk_coverage_curve(u, wrong)
    order = np.argsort(u.numpy())
    np.testing.assert_allclose(curve.risk.numpy(), np.cumsum(w[order]) / np.arange(1, 61), atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_aurc_with_ties_is_the_mean_over_tie_orders(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 3, (8,), generator=g).double() / 4  # 8 cases on 3 values: heavy ties
    loss = torch.rand(8, generator=g, dtype=torch.float64).round(decimals=1)  # any per-case loss, not only 0/1
    expected = _np_aurc_over_tie_orders(u.numpy(), loss.numpy())
    assert aurc(u, loss) == pytest.approx(expected, abs=1e-12)
    # invariant to the input order
    perm = torch.randperm(8, generator=g)
    assert aurc(u[perm], loss[perm]) == pytest.approx(expected, abs=1e-12)
    # AUROC with ties one half, as scikit-learn
    wrong = (loss > 0.5).double()
    if 0 < wrong.sum() < 8:
        assert uncertainty_error_auroc(u, wrong) == pytest.approx(skm.roc_auc_score(wrong.numpy(), u.numpy()))


def test_constant_score_gets_the_mean_loss():
    wrong = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    assert aurc(torch.zeros(5), wrong) == pytest.approx(0.4)
    assert uncertainty_error_auroc(torch.zeros(5), wrong) == 0.5
    assert math.isnan(uncertainty_error_auroc(torch.rand(5), torch.zeros(5)))
    assert math.isnan(uncertainty_error_auroc(torch.rand(5), torch.ones(5)))


# ---------------------------------------------------------------------------- referral thresholds


@pytest.mark.parametrize("n", [7, 50, 101])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.3, 0.5, 0.9])
def test_referral_threshold_refers_the_target_rate_exactly(n, rate):
    u = torch.rand(n, generator=torch.Generator().manual_seed(n)).float()  # no ties
    t = referral_threshold(u, rate=rate)
    assert isinstance(t, float)
    referred = int((u.double() > t).sum())
    assert referred == math.floor(rate * n + 0.5)
    # the float threshold, compared with the float32 scores, refers the same cases
    assert int((u > t).sum()) == referred


def test_referral_threshold_with_ties_refers_fewer_and_keeps_ties_together():
    u = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    t = referral_threshold(u, rate=0.8)  # 8 to refer, but the 2nd and 3rd scores tie
    assert t == pytest.approx(0.2)
    assert int((u > t).sum()) == 6
    assert referral_threshold(u, rate=0.0) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="referral rate"):
        referral_threshold(u, rate=1.0)
    with pytest.raises(ValueError, match="referral rate"):
        referral_threshold(u, rate=-0.1)


def test_accuracy_referral_threshold():
    u = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    wrong = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    # kept accuracies by threshold: 1, 1, 2/3, 3/4, 3/5, 1/2
    assert accuracy_referral_threshold(u, wrong, target_accuracy=0.75) == pytest.approx(0.4)
    assert accuracy_referral_threshold(u, wrong, target_accuracy=0.9) == pytest.approx(0.2)
    assert accuracy_referral_threshold(u, wrong, target_accuracy=0.5) == pytest.approx(0.6)
    with pytest.warns(UserWarning, match="no referral threshold reaches"):
        # kept accuracies 0, 1/2, 1/3, 1/2, 2/5, 1/3: the best, 1/2, at the larger threshold
        worse = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
        assert accuracy_referral_threshold(u, worse, target_accuracy=0.9) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="target_accuracy"):
        accuracy_referral_threshold(u, wrong, target_accuracy=0.0)


# ---------------------------------------------------------------------------- referral table, report


@pytest.mark.parametrize("seed", range(2))
def test_referral_table_matches_sklearn_on_the_kept_cases(seed):
    probs, labels = _case(seed)
    u = max_probability_uncertainty(probs)[:, 0]
    table = referral_table(probs, labels, u)
    assert list(table) == ["0", "0.1", "0.2", "0.3", "0.5"]
    predicted = probs.argmax(dim=1).numpy()
    order = np.argsort(u.numpy(), kind="stable")
    for rate in REFERRAL_RATES:
        row = table[f"{rate:g}"]
        keep = order[: 120 - math.floor(rate * 120 + 0.5)]
        assert row["num_retained"] == len(keep)
        assert row["referred_fraction"] == pytest.approx(rate)
        y, p = labels.numpy()[keep], predicted[keep]
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
        assert row["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
        assert row["f1_macro"] == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))


def test_referral_table_follows_the_decision_rule():
    probs, labels = _case(5, num_classes=2)
    u = max_probability_uncertainty(probs)[:, 0]
    table = referral_table(probs, labels, u, rates=(0.0,), decision_threshold=0.9)
    assert table["0"]["accuracy"] == pytest.approx(((probs[:, 1] >= 0.9).long() == labels).double().mean().item())


@pytest.mark.parametrize("device", DEVICES)
def test_report_device_agnostic_and_json_ready(device):
    probs, labels = _case(3)
    u = predictive_entropy(probs)[:, 0]
    expected = selective_report(probs, labels, u)
    got = selective_report(probs.to(device), labels.to(device), u.to(device))
    json.dumps(got)
    for key in ("aurc", "e_aurc", "uncertainty_auroc", "error_rate"):
        assert isinstance(got[key], float) and got[key] == pytest.approx(expected[key])
    assert got["referral"] == expected["referral"]
    errors = (probs.argmax(dim=1) != labels).double()
    assert got["aurc"] == pytest.approx(aurc(u, errors))
    assert got["error_rate"] == pytest.approx(errors.mean().item())
    assert len(got["risk_coverage"]["coverage"]) == len(got["risk_coverage"]["risk"]) == 120


def test_retained_mean():
    u = torch.tensor([0.3, 0.1, 0.2, 0.4])
    dice = torch.tensor([0.5, 0.9, 0.8, 0.2])
    table = retained_mean(u, dice, rates=(0.0, 0.5))
    assert table["0"]["mean"] == pytest.approx(0.6)
    assert table["0.5"]["mean"] == pytest.approx(0.85)
    assert table["0.5"]["num_retained"] == 2


@pytest.mark.parametrize("device", DEVICES)
def test_cumulative_metric_equals_functions(device):
    probs, labels = _case(4)
    probs, labels = probs.to(device), labels.to(device)
    metric = SelectivePredictionMetric("aurc")
    for start in range(0, 120, 50):
        metric(probs[start : start + 50], labels[start : start + 50])
    u = max_probability_uncertainty(probs)[:, 0]
    errors = (probs.argmax(dim=1) != labels).double()
    assert metric.aggregate() == pytest.approx(aurc(u, errors), abs=1e-12)
    assert metric.aggregate("e_aurc") == pytest.approx(excess_aurc(u, errors), abs=1e-12)
    assert metric.aggregate("uncertainty_auroc") == pytest.approx(uncertainty_error_auroc(u, errors), abs=1e-12)
    assert metric.report()["referral"] == referral_table(probs, labels, u)
    assert metric.curve().risk.shape[0] == 120
    # explicit uncertainty (e.g. Monte Carlo mutual information) per call
    given = torch.rand(120, generator=torch.Generator().manual_seed(0)).to(device)
    explicit = SelectivePredictionMetric("uncertainty_auroc", score="mutual_information")
    explicit(probs[:60], labels[:60], uncertainty=given[:60, None])
    explicit(probs[60:], labels[60:], uncertainty=given[60:])
    assert explicit.aggregate() == pytest.approx(uncertainty_error_auroc(given, errors), abs=1e-12)
    for name in SELECTIVE_METRIC_NAMES:
        assert isinstance(explicit.aggregate(name), float)


def test_bad_input():
    probs, labels = _case(6, n=10)
    u = torch.rand(10)
    with pytest.raises(ValueError, match="cases"):
        aurc(u, torch.zeros(9))
    with pytest.raises(ValueError, match="NaN"):
        aurc(torch.tensor([0.1, math.nan]), torch.zeros(2))
    with pytest.raises(ValueError, match="one value per case"):
        aurc(torch.rand(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="no cases"):
        aurc(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="cases"):
        referral_table(probs, labels, u[:5])
    with pytest.raises(ValueError, match="class probabilities"):
        referral_table(probs * 5, labels, u)
    with pytest.raises(ValueError, match="metric_name"):
        SelectivePredictionMetric("ece")
    with pytest.raises(ValueError, match="uncertainty score"):
        SelectivePredictionMetric(score="std")
    with pytest.raises(ValueError, match="Monte Carlo"):
        SelectivePredictionMetric(score="variance")(probs, labels)
    with pytest.raises(ValueError, match="referral rate"):
        SelectivePredictionMetric(rates=(0.0, 1.5))
    with pytest.raises(ValueError, match="cases"):
        SelectivePredictionMetric()(probs, labels, uncertainty=u[:3])
    with pytest.raises(ValueError, match="no data"):
        SelectivePredictionMetric().aggregate()
