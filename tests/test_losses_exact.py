"""Combo and focal losses against reference formulas evaluated with 80 significant digits (``decimal``).

The logit gaps 0, 5, 16.6, 20, 37 and 50 straddle the points where ``ln(1 - p)`` computed from ``ln p`` rounds to
``ln 0``: a class leading by ~16.6 logits in float32 and ~37 in float64. Each gap appears with the leading class
right and wrong, in 2- and 3-channel softmax outputs and one-channel sigmoid outputs, for float16, float32 and float64
logits. Gradients are compared with
central differences of the same 80-digit reference.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import numpy as np
import pytest
import torch

from monai_imbalance.losses import ComboLoss, FocalLoss

GAPS = (0.0, 5.0, 16.6, 20.0, 37.0, 50.0)
CONTEXT = decimal.Context(prec=80)


def _gap_logits(channels: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(1, C, 2 * len(GAPS))``: per gap one pixel whose true class leads by the gap, one whose wrong class
    leads by it (true class 0); returned as ``dtype`` and the labels ``(1, 1, N)``."""
    columns = []
    for gap in GAPS:
        right = [gap] + [0.0] * (channels - 1)
        wrong = [0.0, gap] + [-1.0] * (channels - 2)
        columns += [right, wrong]
    logits = torch.tensor(columns, dtype=torch.float64).t().unsqueeze(0).to(dtype)
    return logits, torch.zeros(1, 1, logits.shape[2], dtype=torch.long)


def _softmax(x: list[Decimal]) -> list[Decimal]:
    exps = [CONTEXT.exp(v) for v in x]
    total = sum(exps, Decimal(0))
    return [CONTEXT.divide(e, total) for e in exps]


def _dec(value) -> Decimal:
    """A logit as a ``Decimal``: exactly the float it holds (or the perturbed ``Decimal`` of a difference)."""
    return value if isinstance(value, Decimal) else Decimal(float(value))


def _ln(value: Decimal) -> Decimal:
    return CONTEXT.ln(value)


def _reference_combo(x: np.ndarray, labels: np.ndarray, alpha: float = 0.5, beta: float = 0.5) -> Decimal:
    """Combo loss of the module docstring (per image and class, 'mean'), softmax, smooth 1, in 80 digits."""
    with decimal.localcontext(CONTEXT):
        channels, pixels = x.shape
        probs = [_softmax([_dec(x[c, i]) for c in range(channels)]) for i in range(pixels)]
        a, b, total = Decimal(alpha), Decimal(beta), Decimal(0)
        for c in range(channels):
            ce, tp, psum, tsum = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
            for i in range(pixels):
                p, t = probs[i][c], Decimal(int(labels[i] == c))
                ce -= b * t * _ln(p) + (1 - b) * (1 - t) * _ln(1 - p)
                tp, psum, tsum = tp + p * t, psum + p, tsum + t
            dice = (2 * tp + 1) / (psum + tsum + 1)
            total += a * ce / pixels - (1 - a) * dice
        return total / channels


def _reference_focal(x: np.ndarray, labels: np.ndarray, gamma: float = 2.0) -> Decimal:
    """Softmax focal loss ``-(1 - p_t)^gamma ln p_t``, 'mean' over the pixels, in 80 digits."""
    with decimal.localcontext(CONTEXT):
        channels, pixels = x.shape
        total = Decimal(0)
        for i in range(pixels):
            p = _softmax([_dec(x[c, i]) for c in range(channels)])[int(labels[i])]
            total -= (1 - p) ** Decimal(gamma) * _ln(p)
        return total / pixels


def _reference_gradient(function, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Central differences of an 80-digit reference with step 1e-15 (truncation error ~1e-30; 80 digits leave ~40
    after the cancellation in ``1 - p`` near 1)."""
    step = 1e-15
    grad = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        with decimal.localcontext(CONTEXT):
            plus, minus = x.astype(object), x.astype(object)
            plus[index] = _dec(x[index]) + Decimal(step)
            minus[index] = _dec(x[index]) - Decimal(step)
            high = function(plus, labels)
            low = function(minus, labels)
            grad[index] = float((high - low) / (2 * Decimal(step)))
    return grad


def _sigmoid_gap_logits(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One channel ``(1, 1, 4 * len(GAPS))``: logit +gap and -gap, each with target 1 and 0 (right and wrong)."""
    values = [v for gap in GAPS for v in (gap, gap, -gap, -gap)]
    targets = [1, 0, 0, 1] * len(GAPS)
    logits = torch.tensor(values, dtype=torch.float64).view(1, 1, -1).to(dtype)
    return logits, torch.tensor(targets, dtype=torch.long).view(1, 1, -1)


def _sigmoid(x: Decimal) -> Decimal:
    return 1 / (1 + CONTEXT.exp(-x))


def _reference_sigmoid_combo(x: np.ndarray, labels: np.ndarray, alpha: float = 0.5, beta: float = 0.5) -> Decimal:
    """Combo loss with a sigmoid, one channel, smooth 1, in 80 digits."""
    with decimal.localcontext(CONTEXT):
        pixels = x.shape[1]
        a, b = Decimal(alpha), Decimal(beta)
        ce, tp, psum, tsum = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
        for i in range(pixels):
            p, t = _sigmoid(_dec(x[0, i])), Decimal(int(labels[i]))
            ce -= b * t * _ln(p) + (1 - b) * (1 - t) * _ln(1 - p)
            tp, psum, tsum = tp + p * t, psum + p, tsum + t
        return a * ce / pixels - (1 - a) * (2 * tp + 1) / (psum + tsum + 1)


def _reference_sigmoid_focal(x: np.ndarray, labels: np.ndarray, gamma: float = 2.0) -> Decimal:
    """Binary focal loss ``-[t (1 - p)^gamma ln p + (1 - t) p^gamma ln(1 - p)]``, 'mean', in 80 digits."""
    with decimal.localcontext(CONTEXT):
        pixels, g, total = x.shape[1], Decimal(gamma), Decimal(0)
        for i in range(pixels):
            p = _sigmoid(_dec(x[0, i]))
            total -= (1 - p) ** g * _ln(p) if labels[i] == 1 else p**g * _ln(1 - p)
        return total / pixels


def _check(loss: torch.nn.Module, reference, channels: int, dtype: torch.dtype) -> None:
    logits, labels = _sigmoid_gap_logits(dtype) if channels == 1 else _gap_logits(channels, dtype)
    logits.requires_grad_(True)
    value = loss(logits, labels)
    value.backward()
    x = logits.detach().double().numpy()[0]
    flat_labels = labels.numpy()[0, 0]
    expected = float(reference(x, flat_labels))
    rtol = 1e-6 if dtype == torch.float64 else 2e-6
    assert value.item() == pytest.approx(expected, rel=rtol)
    grad = logits.grad.double().numpy()[0]
    expected_grad = _reference_gradient(reference, x, flat_labels)
    grad_tol = 1e-9 if dtype == torch.float64 else 2e-6 if dtype == torch.float32 else 2e-3
    np.testing.assert_allclose(grad, expected_grad, rtol=grad_tol, atol=grad_tol * np.abs(expected_grad).max())


DTYPES = (torch.float16, torch.float32, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [2, 3])
def test_softmax_combo_matches_the_reference_at_every_logit_gap(channels, dtype):
    _check(ComboLoss(softmax=True), _reference_combo, channels, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [2, 3])
def test_softmax_focal_matches_the_reference_at_every_logit_gap(channels, dtype):
    _check(FocalLoss(gamma=2.0, sigmoid=False), _reference_focal, channels, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_combo_and_focal_match_the_reference_at_every_logit_gap(dtype):
    _check(ComboLoss(sigmoid=True), _reference_sigmoid_combo, 1, dtype)
    _check(FocalLoss(gamma=2.0, sigmoid=True), _reference_sigmoid_focal, 1, dtype)


def test_the_issue_example_is_exact():
    """``ComboLoss(softmax=True)`` with the wrong class 20 logits ahead: 4.75 (it was 13.167, half the gradient)."""
    logits = torch.tensor([0.0, 20.0]).view(1, 2, 1, 1).requires_grad_(True)
    value = ComboLoss(softmax=True)(logits, torch.zeros(1, 1, 1, 1, dtype=torch.long))
    value.backward()
    assert value.item() == pytest.approx(4.75, rel=1e-6)
    torch.testing.assert_close(logits.grad.flatten(), torch.tensor([-0.25, 0.25]))


def test_softmax_combo_gradcheck_at_large_gaps():
    """First and second derivatives in float64 where a class leads by 20 and 30 logits (log-sum-exp branch)."""
    logits, labels = _gap_logits(3, torch.float64)
    logits = logits[..., :8].clone().requires_grad_(True)  # gaps 0, 5, 16.6, 20, right and wrong
    labels = labels[..., :8]
    loss = ComboLoss(softmax=True, alpha=0.7, beta=0.3)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))
    assert torch.autograd.gradgradcheck(lambda x: loss(x, labels), (logits,))


def test_softmax_combo_float32_agrees_with_float64_on_wide_random_logits():
    """Random logits of spread 12: many pixels past the float32 floor of ln(1 - p) (they were +8% to +45%)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64) * 12
    labels = torch.randint(0, 4, (2, 1, 16, 16), generator=gen)
    loss = ComboLoss(softmax=True, reduction="none")
    torch.testing.assert_close(loss(logits.float(), labels).double(), loss(logits, labels), rtol=1e-5, atol=1e-6)
