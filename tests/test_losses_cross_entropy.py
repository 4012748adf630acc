"""Cross-entropy with the package's conventions equals PyTorch's cross-entropy / BCE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_imbalance.losses import CrossEntropyLoss, cross_entropy_loss


@pytest.mark.parametrize("label_shape", ["flat", "channel"])
def test_classification_equals_torch(label_shape):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=gen, requires_grad=True)
    labels = torch.randint(0, 7, (16,), generator=gen)
    weight = torch.rand(7, generator=gen) + 0.1
    target = labels if label_shape == "flat" else labels.unsqueeze(1)
    loss = CrossEntropyLoss(weight=weight)
    ours = loss(logits, target)
    expected = F.cross_entropy(logits, labels, weight=weight)
    assert ours.item() == pytest.approx(expected.item(), abs=1e-6)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_torch,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(g_ours, g_torch)
    for reduction in ("sum", "none"):
        torch.testing.assert_close(
            cross_entropy_loss(logits, target, weight, reduction=reduction),
            F.cross_entropy(logits, labels, weight=weight, reduction=reduction),
        )


def test_segmentation_label_map_and_ignore_index():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 6, 5, generator=gen)
    labels = torch.randint(0, 3, (2, 6, 5), generator=gen)
    labels[1, :2] = -100
    ours = cross_entropy_loss(logits, labels.unsqueeze(1).float(), ignore_index=-100)
    assert ours.item() == pytest.approx(F.cross_entropy(logits, labels).item(), abs=1e-6)
    onehot = F.one_hot(labels.clamp_min(0), 3).permute(0, 3, 1, 2).float()
    onehot[1, :, :2] = 0.0  # an all-zero target row adds nothing but is counted, as in F.cross_entropy
    assert cross_entropy_loss(logits, onehot).item() == pytest.approx(F.cross_entropy(logits, onehot).item(), abs=1e-6)


def test_sigmoid_is_bce_with_logits():
    logits = torch.randn(4, 1, 5, 5)
    mask = (torch.rand(4, 1, 5, 5) > 0.8).float()
    ours = CrossEntropyLoss(sigmoid=True)(logits, mask)
    assert ours.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, mask).item(), abs=1e-6)


def test_all_ignored_weighted_mean_is_connected_zero():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = cross_entropy_loss(logits, torch.full((3,), 9), weight=[1.0, 2.0, 3.0, 4.0], ignore_index=9)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_only_zero_weight_classes_give_zero_not_nan():
    logits = torch.randn(3, 4, requires_grad=True)
    for kwargs in ({"include_background": False}, {"weight": [0.0, 1.0, 1.0, 1.0]}):
        loss = cross_entropy_loss(logits, torch.zeros(3, dtype=torch.long), **kwargs)
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss.item() == 0.0 and torch.count_nonzero(grad) == 0
    # with a positive weight somewhere the usual weighted mean applies
    labels = torch.tensor([0, 1, 2])
    expected = F.cross_entropy(logits, labels, weight=torch.tensor([0.0, 1.0, 1.0, 1.0]))
    assert cross_entropy_loss(logits, labels, include_background=False).item() == pytest.approx(expected.item())


def test_double_backward_works():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1, 0])
    assert torch.autograd.gradgradcheck(lambda x: cross_entropy_loss(x, labels, [1.0, 2.0, 3.0]), (logits,))


def test_errors():
    with pytest.raises(ValueError, match="class index 5"):
        cross_entropy_loss(torch.randn(2, 5), torch.tensor([5, 0]))
    with pytest.raises(ValueError, match="weight"):
        CrossEntropyLoss(weight=[1.0, -2.0])
    with pytest.raises(ValueError, match="at least 2 channels"):
        cross_entropy_loss(torch.randn(2, 1), torch.tensor([1, 0]))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("form", ["index", "one_hot", "probability"])
@pytest.mark.parametrize("shape", [(9, 4), (2, 4, 3, 5)])
def test_every_target_form_equals_torch_cross_entropy(form, weighted, reduction, shape):
    """Identical to ``F.cross_entropy`` given the same target: class indices (weighted 'mean' divided by the summed
    weights), or one-hot / probabilities (weighted 'mean' divided by the element count), value and gradient."""
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (shape[0], *shape[2:]), generator=gen)
    weight = torch.tensor([0.3, 1.0, 2.5, 0.7], dtype=torch.float64) if weighted else None
    if form == "index":
        target = labels
    elif form == "one_hot":
        target = F.one_hot(labels, 4).movedim(-1, 1).double()
    else:
        target = torch.softmax(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=1)
    ours = cross_entropy_loss(logits, target, weight, reduction=reduction)
    expected = F.cross_entropy(logits, target, weight=weight, reduction=reduction)
    torch.testing.assert_close(ours.double(), expected)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_torch,) = torch.autograd.grad(expected.sum(), logits)
    torch.testing.assert_close(g_ours, g_torch)


def test_probability_targets_outside_the_unit_interval_are_refused():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        cross_entropy_loss(torch.randn(2, 3), torch.tensor([[0.0, 255.0, 0.0], [1.0, 0.0, 0.0]]))
