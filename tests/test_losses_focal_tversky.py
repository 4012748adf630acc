"""Focal Tversky loss: hand computation, MONAI Tversky convention, per-class exponent, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import TverskyLoss

from monai_imbalance.losses import FocalTverskyLoss, focal_tversky_loss


def _np_ftl(probs, onehot, alpha, beta, gamma, smooth):
    axes = tuple(range(2, probs.ndim))
    tp = (probs * onehot).sum(axes)
    fn = ((1 - probs) * onehot).sum(axes)
    fp = (probs * (1 - onehot)).sum(axes)
    ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    return (1 - ti) ** (1 / gamma)


@pytest.fixture
def seg():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 6, 6), generator=gen)
    return logits, labels


def test_values_match_numpy_per_image_and_class(seg):
    logits, labels = seg
    probs = torch.softmax(logits, 1).numpy().astype(np.float64)
    onehot = F.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).numpy().astype(np.float64)
    expected = _np_ftl(probs, onehot, 0.7, 0.3, 4 / 3, 1.0)
    got = FocalTverskyLoss(softmax=True, reduction="none")(logits, labels)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert focal_tversky_loss(logits, labels, softmax=True).item() == pytest.approx(expected.mean(), rel=1e-5)


def test_exponent_is_applied_per_class_before_the_reduction():
    # channel 0 predicted perfectly (TI = 1), channel 1 missed entirely: TI = s / (alpha * N + s)
    probs = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)]).unsqueeze(0)
    target = torch.ones(1, 2, 4, 4)
    missed = (1 - 1 / (0.7 * 16 + 1)) ** 0.75
    got = focal_tversky_loss(probs, target, reduction="none")
    assert got.flatten().tolist() == pytest.approx([0.0, missed], abs=1e-6)
    assert focal_tversky_loss(probs, target).item() == pytest.approx(missed / 2, rel=1e-6)
    assert focal_tversky_loss(probs, target, reduction="sum").item() == pytest.approx(missed, rel=1e-6)


def test_gamma_one_equals_monai_tversky_with_swapped_alpha_beta(seg):
    logits, labels = seg
    ours = focal_tversky_loss(logits, labels, alpha=0.7, beta=0.3, gamma=1.0, smooth=1e-5, softmax=True)
    monai = TverskyLoss(alpha=0.3, beta=0.7, softmax=True, to_onehot_y=True)(logits, labels)
    assert ours.item() == pytest.approx(monai.item(), rel=1e-5)


def test_batch_and_background_options(seg):
    logits, labels = seg
    batch = FocalTverskyLoss(softmax=True, batch=True, reduction="none")(logits, labels)
    assert batch.shape == (3,)
    no_bg = FocalTverskyLoss(softmax=True, include_background=False, reduction="none")(logits, labels)
    full = FocalTverskyLoss(softmax=True, reduction="none")(logits, labels)
    torch.testing.assert_close(no_bg, full[:, 1:])
    onehot = F.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(FocalTverskyLoss(softmax=True)(logits, onehot), full.mean())


def test_gradcheck_and_finite_gradient_at_a_perfect_prediction():
    logits = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 3, 3) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: focal_tversky_loss(x, mask, sigmoid=True), (logits,))
    perfect = mask.clone().requires_grad_(True)  # probabilities equal to the target
    loss = focal_tversky_loss(perfect, mask, smooth=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12) and torch.isfinite(perfect.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        FocalTverskyLoss(gamma=0.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalTverskyLoss(alpha=-0.1)
    with pytest.raises(ValueError, match="sigmoid=True and softmax=True contradict"):
        FocalTverskyLoss(sigmoid=True, softmax=True)
    with pytest.raises(ValueError, match="one-channel output"):
        FocalTverskyLoss(softmax=True)(torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="does not match input shape"):
        FocalTverskyLoss(sigmoid=True)(torch.randn(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="class index 3"):
        FocalTverskyLoss(softmax=True)(torch.randn(1, 3, 2, 2), torch.full((1, 1, 2, 2), 3))


def _reference_focal_tversky(y_true, y_pred, smooth=1.0, alpha=0.7, gamma=0.75):
    """Transliteration of github.com/nabsabraham/focal-tversky-unet ``losses.py`` (``tversky`` +
    ``focal_tversky``; Keras ops as torch): the whole tensor is flattened (batch and channels pooled)."""
    y_true_pos, y_pred_pos = y_true.flatten(), y_pred.flatten()
    true_pos = (y_true_pos * y_pred_pos).sum()
    false_neg = (y_true_pos * (1 - y_pred_pos)).sum()
    false_pos = ((1 - y_true_pos) * y_pred_pos).sum()
    pt_1 = (true_pos + smooth) / (true_pos + alpha * false_neg + (1 - alpha) * false_pos + smooth)
    return (1 - pt_1) ** gamma


@pytest.mark.parametrize("channels", [1, 3])
def test_pooling_all_equals_the_reference_code(channels):
    gen = torch.Generator().manual_seed(4)
    probs = torch.rand(3, channels, 6, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(3, channels, 6, 5, generator=gen) > 0.6).double()
    ours = focal_tversky_loss(probs, mask, pooling="all")
    torch.testing.assert_close(ours, _reference_focal_tversky(mask, probs))
    module = FocalTverskyLoss(sigmoid=True, pooling="all")
    logits = torch.randn(3, channels, 6, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(module(logits, mask), _reference_focal_tversky(mask, torch.sigmoid(logits)))
    # "batch" pools the batch per class; for one channel it is the reference too
    if channels == 1:
        torch.testing.assert_close(focal_tversky_loss(probs, mask, batch=True), ours)


def test_pooling_arguments():
    assert FocalTverskyLoss(pooling="batch").pooling == "batch"
    with pytest.raises(ValueError, match="pooling must be one of"):
        FocalTverskyLoss(pooling="flat")
    with pytest.raises(ValueError, match="contradicts"):
        FocalTverskyLoss(batch=True, pooling="all")
