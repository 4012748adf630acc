"""Deferred re-weighting class weights (effective number of samples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_imbalance.losses import deferred_class_weights, drw_class_weights


def test_weights_match_formula_and_sum_to_num_classes():
    counts = [5000, 500, 50, 5]
    beta = 0.999
    raw = (1 - beta) / (1 - beta ** np.asarray(counts, dtype=np.float64))
    expected = raw / raw.sum() * len(counts)
    weights = drw_class_weights(counts, beta)
    assert weights.dtype == torch.float32 and weights.shape == (4,)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert weights.sum().item() == pytest.approx(4.0, rel=1e-6)
    assert torch.all(weights[1:] > weights[:-1])  # rarer class, larger weight


def test_limits_of_beta():
    counts = [900, 90, 9]
    torch.testing.assert_close(drw_class_weights(counts, 0.0), torch.ones(3))
    # beta -> 1: inverse class frequency
    inverse = 1.0 / np.asarray(counts, dtype=np.float64)
    np.testing.assert_allclose(
        drw_class_weights(counts, 1 - 1e-9, dtype=torch.float64).numpy(), inverse / inverse.sum() * 3, rtol=1e-5
    )


def test_default_beta_of_ldam_drw():
    weights = drw_class_weights([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])  # CIFAR-10 LT, ratio 100
    assert weights.sum().item() == pytest.approx(10.0, rel=1e-6)
    assert weights[-1] / weights[0] > 10


def test_deferred_switch():
    counts = [100, 10]
    assert torch.equal(deferred_class_weights(counts, epoch=4, start_epoch=5), torch.ones(2))
    torch.testing.assert_close(deferred_class_weights(counts, epoch=5, start_epoch=5), drw_class_weights(counts))
    weights = deferred_class_weights(counts, 9, 5, 0.99, dtype=torch.float64)
    assert weights.dtype == torch.float64


@pytest.mark.parametrize(
    ("counts", "beta", "match"),
    [([10, 0], 0.9, "counts > 0"), ([10, 3], 1.0, "beta"), ([10, 3], -0.1, "beta"), (["a", 3], 0.9, "counts")],
)
def test_bad_arguments(counts, beta, match):
    with pytest.raises(ValueError, match=match):
        drw_class_weights(counts, beta)
    with pytest.raises(ValueError, match="epoch"):
        deferred_class_weights([3, 4], epoch=-1, start_epoch=0)
