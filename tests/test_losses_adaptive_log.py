"""Adaptive Logarithmic Loss: the piecewise form, continuity at delta, the wrapper around Dice."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceLoss

from monai_imbalance.losses import AdaptiveLogarithmicLoss, adaptive_log_loss


def _np_all(x: float, omega=10.0, epsilon=0.5, delta=0.1) -> float:
    if x < delta:
        return omega * math.log(1 + x / epsilon)
    return x - (delta - omega * math.log(1 + delta / epsilon))


@pytest.mark.parametrize("x", [0.0, 0.03, 0.0999, 0.1, 0.25, 1.0])
def test_values_match_hand_computation(x):
    assert adaptive_log_loss(torch.tensor(x)).item() == pytest.approx(_np_all(x), rel=1e-6)


def test_continuous_at_delta_and_amplified_slope_below():
    delta = 0.2
    below = adaptive_log_loss(torch.tensor(delta - 1e-6, dtype=torch.float64), 6.0, 0.3, delta)
    above = adaptive_log_loss(torch.tensor(delta, dtype=torch.float64), 6.0, 0.3, delta)
    assert below.item() == pytest.approx(above.item(), abs=1e-4)
    x = torch.tensor([0.0, 0.5], requires_grad=True)
    adaptive_log_loss(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([10.0 / 0.5, 1.0])  # omega / epsilon at 0, slope 1 above delta


def test_wrapper_applies_all_to_the_dice_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)
    dice = DiceLoss(softmax=True, to_onehot_y=True)
    loss = AdaptiveLogarithmicLoss(dice, omega=8.0, epsilon=1.0, delta=0.15)
    assert loss(logits, labels).item() == pytest.approx(adaptive_log_loss(dice(logits, labels), 8.0, 1.0, 0.15).item())
    # per image and class, then averaged by the wrapper
    per_item = AdaptiveLogarithmicLoss(DiceLoss(softmax=True, to_onehot_y=True, reduction="none"))
    values = DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    assert per_item(logits, labels).item() == pytest.approx(adaptive_log_loss(values).mean().item(), rel=1e-6)


def test_default_is_binary_dice_and_gradients_flow():
    loss = AdaptiveLogarithmicLoss()
    assert isinstance(loss.loss, DiceLoss) and loss.loss.sigmoid
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    mask = (torch.rand(2, 1, 6, 6) > 0.5).float()
    value = loss(logits, mask)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_near_perfect_prediction_uses_the_log_branch():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    logits = (mask * 2 - 1) * 6  # nearly perfect
    dice = DiceLoss(sigmoid=True)(logits, mask).item()
    assert dice < 0.1
    assert AdaptiveLogarithmicLoss()(logits, mask).item() == pytest.approx(10 * math.log1p(dice / 0.5), rel=1e-5)


def test_bad_arguments():
    for kwargs in ({"omega": 0.0}, {"epsilon": -1.0}, {"delta": float("inf")}):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            AdaptiveLogarithmicLoss(**kwargs)
    with pytest.raises(TypeError, match="callable"):
        AdaptiveLogarithmicLoss(loss="dice")
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        adaptive_log_loss(torch.tensor([0.2, -0.7]))
