"""Calibration metrics (ECE, class-wise ECE, reliability bins, Brier, NLL) against numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_imbalance.metrics import (
    CALIBRATION_METRIC_NAMES,
    CalibrationMetric,
    brier_score,
    calibration_report,
    classwise_calibration_error,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _case(seed: int, n: int = 200, num_classes: int = 4, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(scale * torch.randn(n, num_classes, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return probs, labels


def _np_bins(scores: np.ndarray, num_bins: int, binning: str) -> list[np.ndarray]:
    """Index arrays of the cases in every bin, computed independently of the package."""
    if binning == "equal_width":
        edges = np.linspace(0.0, 1.0, num_bins + 1)
        out = []
        for k in range(num_bins):
            lo, hi = edges[k], edges[k + 1]
            inside = (scores > lo) & (scores <= hi)
            if k == 0:
                inside |= scores == 0.0
            out.append(np.nonzero(inside)[0])
        return out
    order = np.argsort(scores, kind="stable")
    return list(np.array_split(order, num_bins))


def _np_ece(scores: np.ndarray, hits: np.ndarray, num_bins: int, binning: str) -> float:
    n = len(scores)
    total = 0.0
    for idx in _np_bins(scores, num_bins, binning):
        if len(idx):
            total += len(idx) / n * abs(hits[idx].mean() - scores[idx].mean())
    return total


def _np_top_label(p: np.ndarray, y: np.ndarray, num_bins: int, binning: str) -> float:
    return _np_ece(p.max(axis=1), (p.argmax(axis=1) == y).astype(float), num_bins, binning)


def _np_classwise(p: np.ndarray, y: np.ndarray, num_bins: int, binning: str) -> np.ndarray:
    return np.array([_np_ece(p[:, c], (y == c).astype(float), num_bins, binning) for c in range(p.shape[1])])


def test_hand_computed_top_label_ece():
    # confidences 0.85 (right), 0.85 (wrong), 0.58 (right), 0.55 (wrong); 10 equal-width bins
    probs = torch.tensor([[0.85, 0.15], [0.15, 0.85], [0.58, 0.42], [0.45, 0.55]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0])
    # bin (0.8, 0.9]: conf 0.85, acc 0.5 -> 2/4 * 0.35; bin (0.5, 0.6]: conf 0.565, acc 0.5 -> 2/4 * 0.065
    assert expected_calibration_error(probs, labels, num_bins=10) == pytest.approx(0.5 * 0.35 + 0.5 * 0.065)
    # 2 equal-mass bins: {0.55 wrong, 0.58 right} and {0.85 right, 0.85 wrong}
    assert expected_calibration_error(probs, labels, num_bins=2, binning="equal_mass") == pytest.approx(
        0.5 * abs(0.5 - 0.565) + 0.5 * abs(0.5 - 0.85)
    )
    # one bin: |mean accuracy - mean confidence|
    assert expected_calibration_error(probs, labels, num_bins=1) == pytest.approx(abs(0.5 - 0.7075))
    # a float32 0.6 is 0.60000002 and falls into (0.6, 0.7], as the float64 reference would put it
    edge = torch.tensor([[0.6, 0.4]])
    assert reliability_bins(edge, torch.tensor([0]), num_bins=10).count.tolist()[6] == 1


def test_hand_computed_classwise_brier_nll():
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 1])
    # one bin: class 0 mean p 17/30 vs frequency 1/3, class 1 mean p 13/30 vs 2/3 -> both 7/30
    assert classwise_calibration_error(probs, labels, num_bins=1) == pytest.approx(7 / 30)
    assert brier_score(probs, labels) == pytest.approx((0.08 + 0.18 + 0.72) / 3)
    assert negative_log_likelihood(probs, labels) == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.4)) / 3)


@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
@pytest.mark.parametrize("num_bins", [1, 7, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_and_classwise_ece_match_numpy(binning, num_bins, seed):
    probs, labels = _case(seed)
    p, y = probs.numpy(), labels.numpy()
    ece = expected_calibration_error(probs, labels, num_bins=num_bins, binning=binning)
    assert ece == pytest.approx(_np_top_label(p, y, num_bins, binning), abs=1e-12)
    per_class = classwise_calibration_error(probs, labels, num_bins=num_bins, binning=binning, average="none")
    np.testing.assert_allclose(per_class.numpy(), _np_classwise(p, y, num_bins, binning), atol=1e-12)
    macro = classwise_calibration_error(probs, labels, num_bins=num_bins, binning=binning)
    assert macro == pytest.approx(_np_classwise(p, y, num_bins, binning).mean(), abs=1e-12)


def test_classwise_ece_is_the_plain_mean_over_classes():
    # 90 majority cases certain and right; 10 minority cases (class 2) split between classes 1 and 2
    probs = torch.cat(
        [torch.tensor([[1.0, 0.0, 0.0]]).repeat(90, 1), torch.tensor([[0.0, 0.5, 0.5]]).repeat(10, 1)]
    ).double()
    labels = torch.cat([torch.zeros(90, dtype=torch.long), torch.full((10,), 2)])
    per_class = classwise_calibration_error(probs, labels, num_bins=10, average="none")
    # class 0 exact; classes 1 and 2: 10 of 100 cases at p = 0.5 with frequency 0 and 1
    np.testing.assert_allclose(per_class.numpy(), [0.0, 0.05, 0.05], atol=1e-12)
    assert classwise_calibration_error(probs, labels, num_bins=10) == pytest.approx(0.1 / 3)
    # top-label: the argmax of the minority rows is class 1 (first maximum), wrong at confidence 0.5
    assert expected_calibration_error(probs, labels, num_bins=10) == pytest.approx(0.05)


@pytest.mark.parametrize("seed", [0, 3])
def test_brier_and_nll_match_numpy(seed):
    probs, labels = _case(seed, num_classes=5)
    p, y = probs.numpy(), labels.numpy()
    onehot = np.eye(5)[y]
    assert brier_score(probs, labels) == pytest.approx(((p - onehot) ** 2).sum(axis=1).mean(), abs=1e-12)
    assert negative_log_likelihood(probs, labels) == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), abs=1e-12)
    # one-hot labels give the same
    assert brier_score(probs, torch.as_tensor(onehot)) == pytest.approx(brier_score(probs, labels))


def test_nll_of_a_saturated_wrong_prediction_is_finite():
    probs = torch.tensor([[1.0, 0.0]])
    assert negative_log_likelihood(probs, torch.tensor([1])) == pytest.approx(-math.log(1e-12))
    assert negative_log_likelihood(probs, torch.tensor([1]), eps=1e-3) == pytest.approx(-math.log(1e-3))


def test_perfectly_calibrated_and_certain_predictions():
    probs = torch.eye(3)[[0, 1, 2, 1]].float()
    labels = torch.tensor([0, 1, 2, 1])
    assert expected_calibration_error(probs, labels) == 0.0
    assert classwise_calibration_error(probs, labels) == 0.0
    assert brier_score(probs, labels) == 0.0
    assert negative_log_likelihood(probs, labels) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
def test_reliability_bins_match_numpy(binning):
    probs, labels = _case(2, n=50, num_classes=3)
    bins = reliability_bins(probs, labels, num_bins=6, binning=binning)
    conf, hits = probs.numpy().max(axis=1), (probs.numpy().argmax(axis=1) == labels.numpy())
    for k, idx in enumerate(_np_bins(conf, 6, binning)):
        assert int(bins.count[k]) == len(idx)
        if len(idx):
            assert float(bins.confidence[k]) == pytest.approx(conf[idx].mean(), abs=1e-12)
            assert float(bins.accuracy[k]) == pytest.approx(hits[idx].mean(), abs=1e-12)
        else:
            assert math.isnan(float(bins.confidence[k])) and math.isnan(float(bins.accuracy[k]))
    assert int(bins.count.sum()) == 50
    if binning == "equal_mass":
        assert bins.count.tolist() == [9, 9, 8, 8, 8, 8]
        assert (bins.lower <= bins.upper).all() and (bins.upper[:-1] <= bins.lower[1:]).all()
    else:
        np.testing.assert_allclose(bins.lower.numpy(), np.linspace(0, 1, 7)[:-1])
    class_bins = reliability_bins(probs, labels, num_bins=6, binning=binning, class_index=2)
    assert int(class_bins.count.sum()) == 50


def test_equal_mass_with_fewer_cases_than_bins():
    probs, labels = _case(4, n=3, num_classes=2)
    bins = reliability_bins(probs, labels, num_bins=5, binning="equal_mass")
    assert bins.count.tolist() == [1, 1, 1, 0, 0]
    assert expected_calibration_error(probs, labels, num_bins=5, binning="equal_mass") == pytest.approx(
        _np_top_label(probs.numpy(), labels.numpy(), 5, "equal_mass"), abs=1e-12
    )


@pytest.mark.parametrize("device", DEVICES)
def test_device_and_dtype_agnostic(device):
    probs, labels = _case(5, num_classes=3)
    expected = calibration_report(probs, labels)
    got = calibration_report(probs.float().to(device), labels.to(device))
    for key in ("ece", "ece_equal_mass", "classwise_ece", "brier", "nll"):
        assert isinstance(got[key], float)
        assert got[key] == pytest.approx(expected[key], abs=1e-6)


def test_report_keys_and_json_ready():
    import json

    probs, labels = _case(6, num_classes=3)
    report = calibration_report(probs, labels, num_bins=10, binning="equal_mass")
    assert set(report) == {
        "ece",
        "ece_equal_mass",
        "classwise_ece",
        "brier",
        "nll",
        "num_bins",
        "binning",
        "classwise_ece_per_class",
    }
    assert report["ece"] == report["ece_equal_mass"]
    assert len(report["classwise_ece_per_class"]) == 3
    json.dumps(report)


@pytest.mark.parametrize("device", DEVICES)
def test_cumulative_metric_equals_functions(device):
    probs, labels = _case(7, n=90, num_classes=3)
    probs, labels = probs.float().to(device), labels.to(device)
    metric = CalibrationMetric("ece", num_bins=10, binning="equal_mass")
    for start in range(0, 90, 32):
        metric(probs[start : start + 32], labels[start : start + 32])
    assert metric.aggregate() == pytest.approx(
        expected_calibration_error(probs, labels, num_bins=10, binning="equal_mass"), abs=1e-12
    )
    for name in CALIBRATION_METRIC_NAMES:
        assert isinstance(metric.aggregate(name), float)
    assert metric.aggregate("brier") == pytest.approx(brier_score(probs, labels), abs=1e-12)
    assert metric.aggregate("nll") == pytest.approx(negative_log_likelihood(probs, labels), abs=1e-12)
    assert metric.report()["classwise_ece"] == pytest.approx(
        classwise_calibration_error(probs, labels, num_bins=10, binning="equal_mass"), abs=1e-12
    )
    assert int(metric.bins().count.sum()) == 90
    # a list of per-sample items, as MONAI's decollated batches
    listed = CalibrationMetric("brier")
    listed(list(probs), list(labels))
    assert listed.aggregate() == pytest.approx(brier_score(probs, labels), abs=1e-12)
    metric.reset()
    with pytest.raises(ValueError, match="no data"):
        metric.aggregate()


def test_bad_input():
    probs, labels = _case(8, n=10, num_classes=3)
    with pytest.raises(ValueError, match="class probabilities"):
        expected_calibration_error(torch.randn(10, 3) * 5, labels)  # logits
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(probs.argmax(dim=1, keepdim=True), labels)
    with pytest.raises(ValueError, match="outside the 3 classes"):
        brier_score(probs, labels + 3)
    with pytest.raises(ValueError, match="samples"):
        negative_log_likelihood(probs, labels[:5])
    with pytest.raises(ValueError, match="empty"):
        expected_calibration_error(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(probs, labels, num_bins=0)
    with pytest.raises(ValueError, match="binning"):
        expected_calibration_error(probs, labels, binning="quantile")
    with pytest.raises(ValueError, match="class_index"):
        reliability_bins(probs, labels, class_index=3)
    with pytest.raises(ValueError, match="average"):
        classwise_calibration_error(probs, labels, average="micro")
    with pytest.raises(ValueError, match="eps"):
        negative_log_likelihood(probs, labels, eps=0.0)
    with pytest.raises(ValueError, match="metric_name"):
        CalibrationMetric("auc")
    with pytest.raises(ValueError, match="needs labels"):
        CalibrationMetric()(probs)
