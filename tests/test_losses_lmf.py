"""LMF = alpha * LDAM + beta * focal, with the official defaults, and the official code's class weighting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_imbalance.losses import LDAMLoss, LMFLoss, focal_loss, get_loss, ldam_loss, ldam_margins, lmf_loss

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


def _official_lmf(logits, labels, counts, alpha=1.5, beta=1.0, gamma=1.5, s=30.0):
    """Transliteration of the official LMF training loss (github.com/Adnan-Sadi/LMFLOSS: ``utils.get_mlist``,
    ``loss_functions.LDAMLoss`` / ``LMFLoss``, ``train.py``; focal loss of AdeelH/pytorch-multi-class-focal-loss),
    CUDA tensor types replaced by CPU ones. The margins m_list are also the class weights of both terms."""
    m_list = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, dtype=np.float64)))
    m_list = torch.tensor(m_list * (0.5 / np.max(m_list)), dtype=logits.dtype)
    # LDAMLoss(cls_num_list=m_list, weight=m_list, s=s)
    index = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)
    batch_m = torch.matmul(m_list[None, :], index.to(logits.dtype).transpose(0, 1)).view((-1, 1))
    output = torch.where(index, logits - batch_m, logits)
    loss_ldam = F.cross_entropy(s * output, labels, weight=m_list)
    # focal_loss(alpha=m_list, gamma=gamma, reduction="mean")
    log_p = F.log_softmax(logits, dim=-1)
    ce = F.nll_loss(log_p, labels, weight=m_list, reduction="none")
    log_pt = log_p[torch.arange(len(logits)), labels]
    loss_focal = ((1 - log_pt.exp()) ** gamma * ce).mean()
    return alpha * loss_ldam + beta * loss_focal


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_official_weighting_equals_the_official_code(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(3, 2000, (7,), generator=gen).tolist()
    logits = (torch.randn(32, 7, generator=gen) * 3).to(dtype).requires_grad_(True)
    labels = torch.randint(0, 7, (32,), generator=gen)
    got = LMFLoss(counts, weighting="official")(logits, labels)
    expected = _official_lmf(logits, labels, counts)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_expected,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(g_got, g_expected, rtol=1e-5, atol=1e-6)
    assert get_loss("lmf_official", class_counts=counts)(logits, labels).item() == pytest.approx(got.item())


def test_official_weighting_differs_from_the_standard_one_and_from_weight_m():
    """The issue's observation: neither the default nor ``weight=m`` gives the official value."""
    gen = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(32, 4, generator=gen) * 3, torch.randint(0, 4, (32,), generator=gen)
    official = _official_lmf(logits, labels, COUNTS)
    assert LMFLoss(COUNTS)(logits, labels).item() != pytest.approx(official.item(), rel=1e-3)
    margins = ldam_margins(COUNTS)
    assert LMFLoss(COUNTS, weight=margins)(logits, labels).item() != pytest.approx(official.item(), rel=1e-3)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_official_weighting_by_hand(reduction):
    """'none' gives m_y (alpha LDAM_i + beta FL_i); 'mean' divides LDAM by sum m_y and focal by N; a weight
    multiplies the margins; an ignored element leaves both normalisers."""
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, -1])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0])
    m = ldam_margins(COUNTS).float() * weight
    kw = {"ignore_index": -1, "reduction": "none"}
    ldam = ldam_loss(logits, labels, COUNTS, **kw)
    focal = focal_loss(logits, labels, 1.5, **kw)
    valid = labels != -1
    m_y = torch.where(valid, m[labels.clamp_min(0)], torch.zeros(()))
    if reduction == "none":
        expected = m_y * (1.5 * ldam + focal)
    elif reduction == "sum":
        expected = (m_y * (1.5 * ldam + focal)).sum()
    else:
        expected = 1.5 * (m_y * ldam).sum() / m_y.sum() + (m_y * focal).sum() / valid.sum()
    got = LMFLoss(COUNTS, weight=weight, weighting="official", ignore_index=-1, reduction=reduction)(logits, labels)
    torch.testing.assert_close(got, expected)


def test_unknown_weighting_is_refused():
    with pytest.raises(ValueError, match="weighting must be 'standard'"):
        LMFLoss(COUNTS, weighting="paper")
