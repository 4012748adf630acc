"""Focal loss: values against numpy, equivalences at gamma = 0, gradients, alpha semantics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import FocalLoss as MonaiFocalLoss

from monai_imbalance.losses import FocalLoss, focal_loss, sigmoid_focal_loss, softmax_focal_loss


def _np_log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _np_softmax_focal(logits, labels, gamma, alpha=None, weight=None):
    """Per-sample -alpha_y w_y (1 - p_y)^gamma log p_y and the F.cross_entropy normaliser sum w_y."""
    logp = _np_log_softmax(logits.astype(np.float64))
    lp = logp[np.arange(len(labels)), labels]
    w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
    a = np.ones(logits.shape[1]) if alpha is None else np.asarray(alpha, dtype=np.float64)
    per_sample = -a[labels] * w[labels] * (1.0 - np.exp(lp)) ** gamma * lp
    return per_sample, w[labels].sum()


def _np_sigmoid_focal(logits, target, gamma, alpha):
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    p_t = np.where(target == 1, p, 1.0 - p)
    alpha_t = np.where(target == 1, alpha, 1.0 - alpha)
    return -alpha_t * (1.0 - p_t) ** gamma * np.log(p_t)


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(12, 4, generator=gen), torch.randint(0, 4, (12,), generator=gen)


def test_softmax_values_match_numpy(batch):
    logits, labels = batch
    alpha, weight = [0.25, 0.5, 0.75, 1.0], [1.0, 2.0, 0.5, 3.0]
    per_sample, norm = _np_softmax_focal(logits.numpy(), labels.numpy(), 2.0, alpha, weight)
    none = focal_loss(logits, labels, gamma=2.0, alpha=alpha, weight=weight, reduction="none")
    assert none.shape == (12,)
    np.testing.assert_allclose(none.numpy(), per_sample, rtol=1e-5)
    # 'mean' divides by the summed class weights (not by alpha), as F.cross_entropy does
    mean = focal_loss(logits, labels, gamma=2.0, alpha=alpha, weight=weight)
    assert mean.item() == pytest.approx(per_sample.sum() / norm, rel=1e-5)
    total = focal_loss(logits, labels, gamma=2.0, alpha=alpha, weight=weight, reduction="sum")
    assert total.item() == pytest.approx(per_sample.sum(), rel=1e-5)


def test_focal_factor_uses_unweighted_pt(batch):
    """p_t comes from log_softmax, not from exp(-weighted CE) as in some public code."""
    logits, labels = batch
    weight = torch.tensor([5.0, 0.2, 1.0, 3.0])
    none = focal_loss(logits, labels, gamma=2.0, weight=weight, reduction="none")
    ce = F.cross_entropy(logits, labels, reduction="none")
    expected = weight[labels] * (1 - torch.exp(-ce)) ** 2 * ce
    torch.testing.assert_close(none, expected)
    wrong = (1 - torch.exp(-weight[labels] * ce)) ** 2 * weight[labels] * ce
    assert not torch.allclose(none, wrong)


def test_focal_factor_is_per_sample_not_on_batch_mean(batch):
    logits, labels = batch
    mean = focal_loss(logits, labels, gamma=2.0)
    ce = F.cross_entropy(logits, labels)
    on_batch_mean = (1 - torch.exp(-ce)) ** 2 * ce  # the pitfall of the public LMF code
    assert mean.item() == pytest.approx(focal_loss(logits, labels, gamma=2.0, reduction="none").mean().item())
    assert mean.item() != pytest.approx(on_batch_mean.item(), rel=1e-3)


@pytest.mark.parametrize("shape", [(6, 5), (2, 5, 4, 3), (2, 5, 3, 2, 2)])
def test_gamma_zero_equals_cross_entropy(shape):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(*shape, generator=gen)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    labels[0].view(-1)[0] = 255  # one ignored element
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1])
    expected = F.cross_entropy(logits, labels, weight=weight, ignore_index=255)
    # label maps with a channel axis, in float as MONAI delivers them
    got = focal_loss(logits, labels.unsqueeze(1).float(), gamma=0.0, weight=weight, ignore_index=255)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    got_none = focal_loss(logits, labels, gamma=0.0, weight=weight, ignore_index=255, reduction="none")
    expected_none = F.cross_entropy(logits, labels, weight=weight, ignore_index=255, reduction="none")
    torch.testing.assert_close(got_none, expected_none)


def test_dense_one_hot_target_equals_labels(batch):
    """Without class weights a one-hot target gives the class indices' value; with them 'mean' divides by the
    element count (F.cross_entropy's probability-target rule) instead of the summed weights."""
    logits, labels = batch
    onehot = F.one_hot(labels, 4).float()
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    for gamma in (0.0, 2.0):
        kwargs = {"gamma": gamma, "alpha": [0.1, 0.2, 0.3, 0.4]}
        torch.testing.assert_close(focal_loss(logits, onehot, **kwargs), focal_loss(logits, labels, **kwargs))
        summed = focal_loss(logits, labels, weight=weight, reduction="sum", **kwargs)
        torch.testing.assert_close(focal_loss(logits, onehot, weight=weight, **kwargs), summed / len(labels))
    # soft targets: -sum_c t_c (1 - p_c)^g log p_c, mean over samples without weights
    soft = torch.softmax(torch.randn(12, 4), dim=1)
    logp = torch.log_softmax(logits, 1)
    expected = -(soft * (1 - logp.exp()) ** 2 * logp).sum(1).mean()
    torch.testing.assert_close(focal_loss(logits, soft, gamma=2.0), expected)


def test_include_background_false_is_zero_background_weight():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, 5, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 5, 5), generator=gen)
    excluded = focal_loss(logits, labels, gamma=2.0, include_background=False)
    weighted = focal_loss(logits, labels, gamma=2.0, weight=[0.0, 1.0, 1.0])
    assert excluded.item() == pytest.approx(weighted.item(), rel=1e-6)


def test_ignore_index_all_ignored_is_connected_zero():
    logits = torch.randn(3, 4, requires_grad=True)
    for gamma in (0.0, 2.0):
        loss = focal_loss(logits, torch.full((3,), -1), gamma=gamma, ignore_index=-1)
        assert loss.item() == 0.0 and loss.requires_grad
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.count_nonzero(grad) == 0
    mask_logits = torch.randn(2, 1, 3, 3, requires_grad=True)
    loss = focal_loss(mask_logits, torch.full((2, 1, 3, 3), 255.0), sigmoid=True, ignore_index=255)
    assert loss.item() == 0.0 and loss.requires_grad
    (grad,) = torch.autograd.grad(loss, mask_logits)
    assert torch.count_nonzero(grad) == 0


def test_sigmoid_values_match_numpy_and_alpha_weights_positives():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 1, 6, 6, generator=gen)
    mask = (torch.rand(4, 1, 6, 6, generator=gen) > 0.7).float()
    expected = _np_sigmoid_focal(logits.numpy(), mask.numpy(), 2.0, 0.25)
    got = sigmoid_focal_loss(logits, mask, gamma=2.0, alpha=0.25, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    # the mask may come without its channel axis
    torch.testing.assert_close(sigmoid_focal_loss(logits, mask[:, 0], alpha=0.25), got.mean())


def test_sigmoid_equals_monai_at_equal_semantics():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 8, 8, generator=gen)
    target = (torch.rand(2, 3, 8, 8, generator=gen) > 0.5).float()
    ours = focal_loss(logits, target, gamma=2.0, alpha=0.25, sigmoid=True)
    theirs = MonaiFocalLoss(gamma=2.0, alpha=0.25)(logits, target)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_softmax_matches_monai_up_to_its_channel_mean():
    """MONAI's softmax focal loss averages over channels too: ours = C * MONAI's without alpha."""
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 8, 8, generator=gen)
    labels = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)
    ours = focal_loss(logits, labels, gamma=2.0)
    theirs = MonaiFocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)(logits, labels)
    assert ours.item() == pytest.approx(3 * theirs.item(), rel=1e-5)


def test_sigmoid_gamma_zero_is_weighted_bce_and_labels_become_one_hot():
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 4, 5, generator=gen)
    labels = torch.randint(0, 4, (3, 1, 5), generator=gen)
    onehot = F.one_hot(labels[:, 0], 4).permute(0, 2, 1).float()
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = F.binary_cross_entropy_with_logits(logits, onehot, weight=weight.view(1, 4, 1))
    got = focal_loss(logits, labels, gamma=0.0, weight=weight, sigmoid=True)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    dropped = focal_loss(logits, labels, gamma=0.0, sigmoid=True, include_background=False, reduction="none")
    assert dropped.shape == (3, 3, 5)


def test_sigmoid_ignore_index_on_a_mask():
    logits = torch.randn(2, 1, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    mask[0, 0, 0] = 255.0
    keep = mask != 255
    expected = F.binary_cross_entropy_with_logits(logits[keep], mask[keep])
    assert focal_loss(logits, mask, gamma=0.0, sigmoid=True, ignore_index=255).item() == pytest.approx(
        expected.item(), abs=1e-6
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_gradcheck_float64(gamma):
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2, -1])
    weight = [1.0, 2.0, 0.5]
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(
            lambda x, r=reduction: focal_loss(x, labels, gamma, [0.3, 0.6, 0.9], weight, ignore_index=-1, reduction=r),
            (logits,),
        )
    seg = torch.randn(2, 3, 2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    soft = torch.softmax(torch.randn(2, 3, 2, 2, dtype=torch.float64, generator=gen), 1)
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, soft, gamma), (seg,))
    mask = (torch.rand(2, 3, 2, 2, generator=gen) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, mask, gamma, 0.25, sigmoid=True), (seg,))


@pytest.mark.parametrize("sigmoid", [False, True])
def test_gradient_finite_for_small_gamma_at_certain_predictions(sigmoid):
    """gamma < 1 has an unbounded slope at p_t -> 1: the loss must not return nan/inf gradients there."""
    logits = torch.tensor([[1e4, -1e4, 0.0], [30.0, 0.0, 0.0], [0.0, 1e4, -1e4]], requires_grad=True)
    target = torch.tensor([0, 0, 0]) if not sigmoid else torch.tensor([[1.0, 0.0, 0.0]] * 3)
    for gamma in (0.1, 0.5, 0.9):
        loss = focal_loss(logits, target, gamma=gamma, sigmoid=sigmoid)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_module_buffers_follow_the_module_and_repr():
    loss = FocalLoss(gamma=1.0, alpha=[0.2, 0.8], weight=[1.0, 3.0], sigmoid=False)
    assert set(dict(loss.named_buffers())) == {"weight", "alpha_vector"}
    loss = loss.double()
    assert loss.weight.dtype == torch.float64
    assert "gamma=1.0" in repr(loss)
    logits, labels = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    expected = softmax_focal_loss(logits, labels, 1.0, [0.2, 0.8], [1.0, 3.0])
    assert loss(logits, labels).item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -1.0}, "gamma"),
        ({"alpha": 1.5, "sigmoid": True}, "alpha"),
        ({"alpha": [0.5, -0.1, 0.2]}, "alpha"),
        ({"weight": [1.0, float("nan"), 1.0]}, "finite"),
        ({"weight": [[1.0, 2.0]]}, "1-D"),
        ({"reduction": "average"}, "reduction"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalLoss(**{"sigmoid": False, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "in_shape", "target", "match"),
    [
        ({"weight": [1.0, 2.0]}, (4, 3), torch.tensor([0, 1, 2, 0]), "weight has 2 entries"),
        ({}, (4, 3), torch.zeros(5, dtype=torch.long), "does not match input shape"),
        ({}, (2, 3, 4, 4), torch.zeros(2, 1, 4, 5), "does not match input shape"),
        ({"to_onehot_y": False}, (4, 3), torch.zeros(4, 1, dtype=torch.long), "to_onehot_y"),
        ({"to_onehot_y": True}, (4, 3), torch.zeros(4, 3), "to_onehot_y"),
        ({}, (4, 1), torch.zeros(4, dtype=torch.long), "at least 2 channels"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, in_shape, target, match):
    with pytest.raises(ValueError, match=match):
        FocalLoss(sigmoid=False, **kwargs)(torch.randn(*in_shape), target)


def test_labels_out_of_range_and_bad_types():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="class index 3"):
        focal_loss(logits, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="class index -1"):
        focal_loss(logits, torch.tensor([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        focal_loss(torch.randn(4, 1), torch.tensor([[0.0], [2.0], [1.0], [0.0]]), sigmoid=True)
    with pytest.raises(TypeError, match="floating point"):
        focal_loss(torch.ones(4, 3, dtype=torch.long), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor"):
        focal_loss(logits, [0, 1, 2, 1])


def test_sigmoid_soft_targets_follow_monai_semantics():
    """Documented choice: for soft targets the modulating factor is MONAI's sigmoid(x (1 - 2t))^gamma, and alpha_t =
    alpha t + (1 - alpha)(1 - t); equal to MONAI's sigmoid_focal_loss, unlike torchvision's 1 - p_t."""
    from monai.losses.focal_loss import sigmoid_focal_loss as monai_sigmoid_focal_loss

    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64) * 3
    soft = torch.rand(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    ours = sigmoid_focal_loss(logits, soft, gamma=2.0, alpha=0.25, reduction="none")
    torch.testing.assert_close(ours, monai_sigmoid_focal_loss(logits, soft, gamma=2.0, alpha=0.25))
    # torchvision's factor differs for soft targets (and agrees for binary ones)
    p = torch.sigmoid(logits)
    torchvision_factor = (1 - (p * soft + (1 - p) * (1 - soft))) ** 2
    ours_factor = torch.sigmoid(logits * (1 - 2 * soft)) ** 2
    assert not torch.allclose(ours_factor, torchvision_factor)
    binary = (soft > 0.5).double()
    torch.testing.assert_close(
        torch.sigmoid(logits * (1 - 2 * binary)) ** 2, (1 - (p * binary + (1 - p) * (1 - binary))) ** 2
    )
