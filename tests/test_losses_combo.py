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


def _reference_combo(y_true, y_pred, ce_w=0.5, ce_d_w=0.5, smooth=1.0, e=1e-7):
    """Transliteration of github.com/asgsaeid/ComboLoss ``combo_loss.py`` (Keras ops as torch; ``K.flatten`` pools
    batch and channels), with the negative BCE term's sign corrected to the paper's (the published line reads
    ``- (ce_w * t * log p) + ((1 - ce_w) * (1 - t) * log(1 - p))``)."""
    y_true_f, y_pred_f = y_true.flatten(), y_pred.flatten()
    intersection = (y_true_f * y_pred_f).sum()
    d = (2.0 * intersection + smooth) / (y_true_f.sum() + y_pred_f.sum() + smooth)
    y_pred_f = y_pred_f.clamp(e, 1.0 - e)
    out = -(ce_w * y_true_f * torch.log(y_pred_f)) - ((1 - ce_w) * (1.0 - y_true_f) * torch.log(1.0 - y_pred_f))
    weighted_ce = out.mean(dim=-1)
    return (ce_d_w * weighted_ce) - ((1 - ce_d_w) * d)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7)])
def test_pooling_all_equals_the_reference_code(channels, alpha, beta):
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, channels, 6, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(3, channels, 6, 5, generator=gen) > 0.6).double()
    expected = _reference_combo(mask, torch.sigmoid(logits), ce_w=beta, ce_d_w=alpha)
    torch.testing.assert_close(combo_loss(logits, mask, alpha, beta, sigmoid=True, pooling="all"), expected)
    if channels == 1:  # one channel: pooling the batch is the reference
        torch.testing.assert_close(ComboLoss(alpha, beta, sigmoid=True, batch=True)(logits, mask), expected)


def test_the_published_sign_differs_where_the_target_is_zero():
    """Documented choice: the package keeps the paper's sign; the published code's '+' rewards false positives."""
    probs, mask = torch.full((1, 1, 2, 2), 0.9, dtype=torch.float64), torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    ours = combo_loss(probs, mask, pooling="all")
    published = 0.5 * (0.5 * torch.log(torch.tensor(0.1, dtype=torch.float64))) - 0.5 * (1.0 / (3.6 + 1.0))
    assert ours.item() > published.item()
    torch.testing.assert_close(ours, _reference_combo(mask, probs))
