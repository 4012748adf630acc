"""LDAM loss: margins, values against a re-implementation of the reference code, gradients, bad counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_imbalance.losses import LDAMLoss, ldam_loss, ldam_margins

COUNTS = [400, 100, 25, 4]


def _reference_ldam(logits, labels, counts, max_m=0.5, s=30.0, weight=None):
    """The official LDAM computation, written for any device (the public code hard-codes CUDA tensors)."""
    m_list = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, dtype=np.float64)))
    m_list = torch.as_tensor(m_list * (max_m / m_list.max()), dtype=logits.dtype)
    index = F.one_hot(labels, len(counts)).bool()
    batch_m = (m_list[None, :] * index).sum(1, keepdim=True)
    output = torch.where(index, logits - batch_m, logits)
    return F.cross_entropy(s * output, labels, weight=weight)


def test_margins_proportional_to_quarter_power():
    margins = ldam_margins(COUNTS, max_m=0.5)
    expected = np.asarray(COUNTS, dtype=np.float64) ** -0.25
    np.testing.assert_allclose(margins.numpy(), 0.5 * expected / expected.max(), rtol=1e-6)
    assert margins.max().item() == pytest.approx(0.5)
    assert int(margins.argmax()) == 3  # the rarest class gets the largest margin


def test_values_match_reference_with_and_without_weights():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, dtype=torch.float64, generator=gen)
    labels = torch.randint(0, 4, (32,), generator=gen)
    weight = torch.tensor([0.2, 0.5, 1.0, 2.3], dtype=torch.float64)
    assert LDAMLoss(COUNTS)(logits, labels).item() == pytest.approx(
        _reference_ldam(logits, labels, COUNTS).item(), rel=1e-6
    )
    got = ldam_loss(logits, labels.unsqueeze(1), COUNTS, max_m=0.3, s=10.0, weight=weight)
    assert got.item() == pytest.approx(_reference_ldam(logits, labels, COUNTS, 0.3, 10.0, weight).item(), rel=1e-6)


def test_hand_computed_value():
    # two classes, counts 16 and 1: margins 0.25 (class 0) and 0.5 (class 1), s = 1
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    z0 = np.array([1.0 - 0.25, 0.0])
    z1 = np.array([0.0, 1.0 - 0.5])
    expected = 0.5 * (np.log(np.exp(z0).sum()) - z0[0] + np.log(np.exp(z1).sum()) - z1[1])
    assert ldam_loss(logits, labels, [16, 1], max_m=0.5, s=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_one_hot_and_segmentation_targets():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, 3, generator=gen)
    labels = torch.randint(0, 4, (2, 1, 3, 3), generator=gen)
    onehot = F.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).float()
    loss = LDAMLoss(COUNTS, reduction="none")
    assert loss(logits, labels).shape == (2, 3, 3)
    torch.testing.assert_close(loss(logits, labels), loss(logits, onehot))
    with pytest.raises(ValueError, match="one-hot"):
        loss(logits, torch.softmax(logits, 1))


def test_gradcheck_and_double_backward():
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 3, 9])
    loss = LDAMLoss(COUNTS, weight=[1.0, 2.0, 3.0, 4.0], ignore_index=9, s=5.0)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))
    assert torch.autograd.gradgradcheck(lambda x: loss(x, labels), (logits,))


def test_weight_buffer_and_margins_not_in_state_dict():
    loss = LDAMLoss(COUNTS, weight=[1.0, 1.0, 1.0, 1.0])
    assert set(loss.state_dict()) == {"weight"}
    assert "margins" in dict(loss.named_buffers())


@pytest.mark.parametrize(
    ("counts", "kwargs", "match"),
    [
        ([10, 0, 3], {}, "counts > 0"),
        ([10, -2, 3], {}, "counts > 0"),
        ([10], {}, ">= 2 classes"),
        ([[10, 2]], {}, "1-D"),
        ([10, 2], {"max_m": 0.0}, "max_m"),
        ([10, 2], {"s": -1.0}, "scale"),
        ([10, 2], {"weight": [1.0, 2.0, 3.0]}, "weight has 3 entries"),
    ],
)
def test_bad_arguments(counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LDAMLoss(counts, **kwargs)


def test_wrong_length_counts_at_forward():
    with pytest.raises(ValueError, match="cls_num_list has 4 entries but the input has 3 channels"):
        LDAMLoss(COUNTS)(torch.randn(2, 3), torch.tensor([0, 1]))
