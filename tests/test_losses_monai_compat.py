"""MONAI-compatible arguments, never a silent difference: MONAI's ``FocalLoss`` calls ported to this package's
``FocalLoss`` give MONAI's value or a clear error (see docs/conventions.md)."""

from __future__ import annotations

import warnings

import pytest
import torch
from monai.losses import FocalLoss as MonaiFocalLoss

from monai_imbalance.losses import FocalLoss, get_loss

ALPHAS = {"none": None, "scalar": 0.25, "per_class": [0.2, 0.3, 0.5]}


def _inputs(to_onehot_y, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, channels, 5, 4, generator=gen) * 2
    labels = torch.randint(0, max(channels, 2), (2, 1, 5, 4), generator=gen)
    if channels == 1:
        return logits, labels.float()
    target = labels.float() if to_onehot_y else torch.zeros_like(logits).scatter_(1, labels, 1.0)
    return logits, target


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha", list(ALPHAS))
@pytest.mark.parametrize("use_softmax", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("to_onehot_y", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_monai_focal_calls_give_monai_values(use_softmax, alpha, reduction, include_background, to_onehot_y, weighted):
    kwargs = {
        "use_softmax": use_softmax,
        "gamma": 2.0,
        "alpha": ALPHAS[alpha],
        "reduction": reduction,
        "include_background": include_background,
        "to_onehot_y": to_onehot_y,
    }
    if not include_background and alpha == "per_class":
        kwargs["alpha"] = [0.3, 0.5]  # MONAI: one value per kept channel
    if weighted:
        kwargs["weight"] = [1.0, 2.0, 0.5] if include_background else [2.0, 0.5]
    logits, target = _inputs(to_onehot_y)
    logits.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns when it ignores a scalar alpha; so does the port
        expected = MonaiFocalLoss(**kwargs)(logits, target)
        ours = FocalLoss(**kwargs)(logits, target)
    torch.testing.assert_close(ours, expected)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_monai,) = torch.autograd.grad(expected.sum(), logits)
    torch.testing.assert_close(g_ours, g_monai)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_monai_binary_and_ignore_index_calls(reduction):
    logits, mask = _inputs(False, channels=1)
    kwargs = {"use_softmax": False, "alpha": 0.25, "reduction": reduction}
    torch.testing.assert_close(FocalLoss(**kwargs)(logits, mask), MonaiFocalLoss(**kwargs)(logits, mask))
    logits, labels = _inputs(True, seed=3)
    labels[0, 0, :2] = 255.0
    kwargs = {"use_softmax": True, "to_onehot_y": True, "ignore_index": 255, "reduction": reduction}
    torch.testing.assert_close(FocalLoss(**kwargs)(logits, labels), MonaiFocalLoss(**kwargs)(logits, labels))


@pytest.mark.parametrize("kwargs", [{}, {"gamma": 2.0, "alpha": 0.25}, {"to_onehot_y": True}])
def test_a_monai_call_without_the_activation_is_refused_not_reinterpreted(kwargs):
    """MONAI's FocalLoss defaults to sigmoid, this package's focal loss was softmax: no silent default."""
    with pytest.raises(ValueError, match=r"needs its activation stated.*use_softmax.*conventions\.md"):
        FocalLoss(**kwargs)


def test_monai_positional_order_is_refused():
    """MONAI: FocalLoss(include_background, to_onehot_y, gamma, ...); here: FocalLoss(gamma, alpha, weight)."""
    with pytest.raises(TypeError, match=r"include_background.*pass keywords"):
        FocalLoss(False, True, 2.0)


def test_both_activation_spellings_are_refused():
    with pytest.raises(ValueError, match="not both"):
        FocalLoss(sigmoid=True, use_softmax=False)


def test_package_semantics_differ_from_monai_only_where_documented():
    """sigmoid=False is this package's softmax focal loss: 'mean' per element (not per element and class),
    reduction='none' of shape (B, *S); MONAI's softmax mean is smaller by the factor C."""
    logits, labels = _inputs(True)
    ours = FocalLoss(sigmoid=False, gamma=2.0)(logits, labels)
    monai = MonaiFocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)(logits, labels)
    torch.testing.assert_close(ours / 3, monai)
    assert FocalLoss(sigmoid=False, reduction="none")(logits, labels).shape == (2, 5, 4)
    assert FocalLoss(use_softmax=True, to_onehot_y=True, reduction="none")(logits, labels).shape == (2, 3, 5, 4)


def test_get_loss_focal_accepts_use_softmax_with_monai_meaning():
    logits, labels = _inputs(True)
    loss = get_loss("focal", use_softmax=True, to_onehot_y=True, gamma=2.0)
    expected = MonaiFocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)(logits, labels)
    torch.testing.assert_close(loss(logits, labels), expected)


def test_monai_semantics_keep_the_target_checks_and_the_empty_batch_rule():
    loss = FocalLoss(use_softmax=True, to_onehot_y=True)
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="non-integral"):
        loss(logits, torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(ValueError, match="class index 7"):
        loss(logits, torch.full((2, 1, 4, 4), 7.0))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        FocalLoss(use_softmax=False)(torch.randn(2, 1, 4, 4), torch.full((2, 1, 4, 4), 255.0))
    empty = torch.randn(0, 3, 4, 4, requires_grad=True)
    value = loss(empty, torch.zeros(0, 1, 4, 4))
    value.backward()
    assert value.item() == 0.0 and empty.grad.shape == empty.shape
