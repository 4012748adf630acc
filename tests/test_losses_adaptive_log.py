"""Adaptive Logarithmic Loss: the piecewise form, continuity at delta, the wrapper around Dice."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceLoss

from monai_imbalance.losses import AdaptiveLogarithmicLoss, adaptive_log_loss, log_branch_fraction


def _np_all_wing(x: float, omega=10.0, epsilon=0.5, delta=0.1) -> float:
    if x < delta:
        return omega * math.log(1 + x / epsilon)
    return x - (delta - omega * math.log(1 + delta / epsilon))


@pytest.mark.parametrize("x", [0.0, 0.03, 0.0999, 0.1, 0.25, 1.0])
def test_wing_form_values_match_hand_computation(x):
    assert adaptive_log_loss(torch.tensor(x), form="wing").item() == pytest.approx(_np_all_wing(x), rel=1e-6)


def test_continuous_at_delta_and_amplified_slope_below():
    delta = 0.2
    below = adaptive_log_loss(torch.tensor(delta - 1e-6, dtype=torch.float64), 6.0, 0.3, delta, form="wing")
    above = adaptive_log_loss(torch.tensor(delta, dtype=torch.float64), 6.0, 0.3, delta, form="wing")
    assert below.item() == pytest.approx(above.item(), abs=1e-4)
    x = torch.tensor([0.0, 0.5], requires_grad=True)
    adaptive_log_loss(x, form="wing").sum().backward()
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


def _np_all_smooth(x: float, omega=10.0, epsilon=0.5, delta=0.1) -> float:
    if x < delta:
        return omega * math.log(1 + x / epsilon)
    slope = omega / (epsilon + delta)
    return slope * x - (slope * delta - omega * math.log(1 + delta / epsilon))


@pytest.mark.parametrize("x", [0.0, 0.03, 0.0999, 0.1, 0.25, 1.0])
def test_smooth_form_values_match_hand_computation(x):
    got = adaptive_log_loss(torch.tensor(x, dtype=torch.float64), form="smooth").item()
    assert adaptive_log_loss(torch.tensor(x, dtype=torch.float64)).item() == got  # the default form
    assert got == pytest.approx(_np_all_smooth(x), rel=1e-9)
    # by hand at x = 0.25: A = 10 / 0.6, C = A * 0.1 - 10 ln(1.2)
    if x == 0.25:
        assert got == pytest.approx(10 / 0.6 * 0.15 + 10 * math.log(1.2), rel=1e-12)


@pytest.mark.parametrize(("omega", "epsilon", "delta"), [(10.0, 0.5, 0.1), (6.0, 0.3, 0.2), (16.0, 2.0, 0.3)])
def test_smooth_form_is_continuous_with_a_continuous_slope_at_delta(omega, epsilon, delta):
    """Autograd slopes just below and at/above delta agree for 'smooth'; for 'wing' they jump to 1."""
    h = 1e-9
    points = torch.tensor([delta - h, delta, delta + h], dtype=torch.float64, requires_grad=True)
    for form in ("smooth", "wing"):
        values = adaptive_log_loss(points, omega, epsilon, delta, form=form)
        (grad,) = torch.autograd.grad(values.sum(), points)
        assert values[0].item() == pytest.approx(values[1].item(), abs=1e-7)
        log_slope = omega / (epsilon + delta)
        assert grad[0].item() == pytest.approx(log_slope, rel=1e-6)
        if form == "smooth":
            assert grad[1].item() == pytest.approx(log_slope, rel=1e-6)
            assert grad[2].item() == pytest.approx(log_slope, rel=1e-6)
        else:
            assert grad[1].item() == 1.0 and grad[2].item() == 1.0


def test_form_reaches_the_wrapper_and_get_loss():
    from monai_imbalance.losses import get_loss

    logits, mask = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    dice = DiceLoss(sigmoid=True)(logits, mask)
    smooth = get_loss("all", sigmoid=True, form="smooth")
    assert smooth.form == "smooth"
    expected = adaptive_log_loss(dice, form="smooth")
    assert smooth(logits, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="form must be 'wing'"):
        AdaptiveLogarithmicLoss(form="adaptive")


def test_log_branch_fraction():
    values = torch.tensor([0.01, 0.05, 0.2, 0.5])
    assert log_branch_fraction(values, delta=0.1).item() == 0.5
    loss = AdaptiveLogarithmicLoss(DiceLoss(sigmoid=True, reduction="none"))
    assert loss.last_log_branch_fraction is None
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 2:6, 2:6] = 1
    mask[1, :, :4] = 1
    logits = (mask * 2 - 1) * 8
    logits[1] = -logits[1]  # image 0 nearly perfect (log branch), image 1 wrong (linear branch)
    loss(logits, mask)
    assert float(loss.last_log_branch_fraction) == 0.5


def test_targets_outside_the_unit_interval_or_non_integral_labels_are_refused():
    """0/255 masks made the Dice loss negative and ALL returned a negative loss: now a clear error."""
    from monai_imbalance.losses import get_loss

    logits = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*got range \[0.0, 255.0\]"):
        get_loss("all", sigmoid=True)(logits, (torch.rand(2, 1, 8, 8) > 0.5).float() * 255)
    multi = get_loss("all", softmax=True, to_onehot_y=True)
    with pytest.raises(ValueError, match="non-integral"):
        multi(torch.randn(2, 3, 8, 8), torch.full((2, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="class index 3"):
        multi(torch.randn(2, 3, 8, 8), torch.full((2, 1, 8, 8), 3.0))


def _authors_dice_loss(y_true, y_pred, smooth=1.0):
    """The Keras Dice of the ALL line of work (``dsc``: flattened tensor, smooth 1), as torch."""
    y_true_f, y_pred_f = y_true.flatten(), y_pred.flatten()
    intersection = (y_true_f * y_pred_f).sum()
    return 1 - (2.0 * intersection + smooth) / (y_true_f.sum() + y_pred_f.sum() + smooth)


def test_inner_dice_authors_equals_the_reference_dice():
    from monai_imbalance.losses import get_loss

    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(4, 1, 8, 8, generator=gen, dtype=torch.float64)
    mask = (torch.rand(4, 1, 8, 8, generator=gen) > 0.5).double()
    expected_dice = _authors_dice_loss(mask, torch.sigmoid(logits))
    loss = get_loss("all", sigmoid=True, inner_dice="authors")
    assert loss.loss.batch and loss.loss.smooth_nr == 1.0 and loss.loss.smooth_dr == 1.0
    torch.testing.assert_close(loss.loss(logits, mask), expected_dice)
    torch.testing.assert_close(loss(logits, mask), adaptive_log_loss(expected_dice))
    with pytest.raises(ValueError, match="inner_dice must be"):
        get_loss("all", sigmoid=True, inner_dice="keras")
    with pytest.raises(ValueError, match="set by the loss name"):
        get_loss("all", sigmoid=True, inner_dice="authors", batch=False)


def test_last_inner_loss_is_the_wrapped_loss_on_its_own_scale():
    """The segmentation bundles log it as train/dice_loss: ALL's value (~14 untrained) beside a 0..1 Dice loss."""
    gen = torch.Generator().manual_seed(0)
    logits, mask = torch.randn(2, 1, 8, 8, generator=gen), (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    loss = AdaptiveLogarithmicLoss(DiceLoss(sigmoid=True))
    assert loss.last_inner_loss is None
    value = loss(logits, mask)
    dice = DiceLoss(sigmoid=True)(logits, mask)
    torch.testing.assert_close(loss.last_inner_loss, dice)
    assert not loss.last_inner_loss.requires_grad and 0 <= loss.last_inner_loss <= 1
    torch.testing.assert_close(value, adaptive_log_loss(dice))
    per_image = AdaptiveLogarithmicLoss(DiceLoss(sigmoid=True, reduction="none"))
    per_image(logits, mask)
    torch.testing.assert_close(per_image.last_inner_loss, DiceLoss(sigmoid=True, reduction="none")(logits, mask).mean())
