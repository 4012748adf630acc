"""LMF = alpha * LDAM + beta * focal, with the official defaults."""

from __future__ import annotations

import pytest
import torch

from monai_imbalance.losses import LDAMLoss, LMFLoss, focal_loss, ldam_loss, lmf_loss

COUNTS = [500, 120, 30, 7]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(10, 4), (2, 4, 3, 3)])
def test_equals_weighted_sum_of_ldam_and_focal(reduction, shape):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=gen)
    labels = torch.randint(0, 4, (shape[0], *shape[2:]), generator=gen)
    labels.view(-1)[1] = -7  # ignored
    weight = [0.4, 1.0, 2.0, 3.0]
    kwargs = {"weight": weight, "ignore_index": -7, "reduction": reduction}
    got = lmf_loss(logits, labels, COUNTS, alpha=0.7, beta=1.3, gamma=2.0, **kwargs)
    expected = 0.7 * ldam_loss(logits, labels, COUNTS, **kwargs) + 1.3 * focal_loss(logits, labels, 2.0, **kwargs)
    torch.testing.assert_close(got, expected)


def test_official_defaults():
    loss = LMFLoss(COUNTS)
    assert (loss.alpha, loss.beta, loss.gamma, loss.max_m, loss.s) == (1.5, 1.0, 1.5, 0.5, 30.0)
    logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
    expected = 1.5 * LDAMLoss(COUNTS)(logits, labels) + focal_loss(logits, labels, gamma=1.5)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_zero_focal_weight_reduces_to_ldam():
    """The fused two-term kernel agrees with the single-term (F.cross_entropy) path."""
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    lmf = lmf_loss(logits, labels, COUNTS, alpha=1.0, beta=0.0, weight=[1.0, 2.0, 3.0, 4.0])
    ldam = ldam_loss(logits, labels, COUNTS, weight=[1.0, 2.0, 3.0, 4.0])
    assert lmf.item() == pytest.approx(ldam.item(), rel=1e-6)
    (g_lmf,) = torch.autograd.grad(lmf, logits)
    (g_ldam,) = torch.autograd.grad(ldam, logits)
    torch.testing.assert_close(g_lmf, g_ldam)


def test_zero_ldam_weight_reduces_to_focal():
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    for reduction in ("mean", "none"):
        torch.testing.assert_close(
            lmf_loss(logits, labels, COUNTS, alpha=0.0, beta=1.0, gamma=2.0, reduction=reduction),
            focal_loss(logits, labels, 2.0, reduction=reduction),
        )


def test_gradcheck_float64():
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([3, 0, 2, 1, 3])
    loss = LMFLoss(COUNTS, s=4.0, weight=[2.0, 1.0, 1.0, 0.5])
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))
    seg = torch.randn(2, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    seg_labels = torch.randint(0, 4, (2, 1, 2, 2))
    none = LMFLoss(COUNTS, s=4.0, reduction="none")
    assert torch.autograd.gradcheck(lambda x: none(x, seg_labels), (seg,))


def test_second_derivative_is_refused_not_silently_wrong():
    logits = torch.randn(4, 4, requires_grad=True)
    loss = LMFLoss(COUNTS)(logits, torch.tensor([0, 1, 2, 3]))
    (grad,) = torch.autograd.grad(loss, logits, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|does not require grad"):
        grad.sum().backward()


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        LMFLoss(COUNTS, alpha=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        LMFLoss(COUNTS, gamma=-0.5)
    with pytest.raises(ValueError, match="counts > 0"):
        LMFLoss([3, 0, 1])
    with pytest.raises(ValueError, match="cls_num_list has 4 entries"):
        LMFLoss(COUNTS)(torch.randn(2, 5), torch.tensor([0, 1]))
