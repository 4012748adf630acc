"""Combo loss: alpha * weighted BCE - (1 - alpha) * Dice coefficient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_imbalance.losses import ComboLoss, combo_loss


def _np_combo(p, t, alpha, beta, smooth, weight=None):
    axes = tuple(range(2, p.ndim))
    ce = -(beta * t * np.log(p) + (1 - beta) * (1 - t) * np.log(1 - p))
    if weight is not None:
        ce = ce * np.asarray(weight).reshape(1, -1, *([1] * len(axes)))
    dice = (2 * (p * t).sum(axes) + smooth) / (p.sum(axes) + t.sum(axes) + smooth)
    return alpha * ce.mean(axes) - (1 - alpha) * dice


def test_binary_values_match_numpy():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(3, 1, 5, 5, generator=gen) > 0.6).double()
    p = torch.sigmoid(logits).numpy()
    expected = _np_combo(p, mask.numpy(), 0.4, 0.7, 1.0)
    got = ComboLoss(alpha=0.4, beta=0.7, sigmoid=True, reduction="none")(logits, mask)
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert combo_loss(logits, mask, 0.4, 0.7, sigmoid=True).item() == pytest.approx(expected.mean(), rel=1e-6)


def test_limits_of_alpha():
    logits = torch.randn(2, 1, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    assert combo_loss(logits, mask, alpha=1.0, sigmoid=True).item() == pytest.approx(0.5 * bce.item(), rel=1e-5)
    p = torch.sigmoid(logits)
    dice = ((2 * (p * mask).sum((2, 3)) + 1) / (p.sum((2, 3)) + mask.sum((2, 3)) + 1)).mean()
    assert combo_loss(logits, mask, alpha=0.0, sigmoid=True).item() == pytest.approx(-dice.item(), rel=1e-5)


def test_softmax_label_map_probabilities_and_weights():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=gen)
    onehot = F.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).double()
    probs = torch.softmax(logits, 1)
    weight = [0.5, 1.0, 2.0]
    expected = _np_combo(probs.numpy(), onehot.numpy(), 0.5, 0.5, 1.0, weight).mean()
    assert combo_loss(logits, labels, weight=weight, softmax=True).item() == pytest.approx(expected, rel=1e-6)
    # probabilities given directly (no activation) give the same value
    assert combo_loss(probs, onehot, weight=weight).item() == pytest.approx(expected, rel=1e-6)
    no_bg = ComboLoss(softmax=True, include_background=False, reduction="none")(logits, labels)
    assert no_bg.shape == (2, 2)


def test_gradcheck_and_extreme_logits():
    logits = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (2, 1, 3, 3))
    assert torch.autograd.gradcheck(lambda x: combo_loss(x, labels, softmax=True), (logits,))
    extreme = torch.tensor([[[[1e4, -1e4]], [[-1e4, 1e4]]]], requires_grad=True)
    loss = combo_loss(extreme, torch.tensor([[[[0, 0]]]]), softmax=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        ComboLoss(alpha=1.5)
    with pytest.raises(ValueError, match="smooth"):
        ComboLoss(smooth=-1.0)
    with pytest.raises(ValueError, match="weight has 2 entries"):
        ComboLoss(weight=[1.0, 2.0], softmax=True)(torch.randn(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        ComboLoss(sigmoid=True)(torch.randn(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0))
