"""NormedLinear cosine head and the swap of a network's final linear layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet, EfficientNetBN, ResNet
from torch import nn

from monai_imbalance.networks.dropout import add_dropout, find_dropout_modules
from monai_imbalance.networks.heads import NormedLinear, find_final_linear, replace_with_cosine_head


def test_normed_linear_is_the_scaled_cosine_similarity():
    torch.manual_seed(0)
    head = NormedLinear(5, 3, scale=2.0)
    x = torch.randn(4, 5)
    out = head(x)
    xn = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    w = head.weight.detach().numpy()
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    np.testing.assert_allclose(out.detach().numpy(), 2.0 * xn @ wn.T, rtol=1e-5, atol=1e-6)
    assert out.shape == (4, 3) and out.dtype == torch.float32
    assert out.abs().max() <= 2.0 + 1e-6
    # invariant to the feature scale, and the initial class vectors have unit norm (LDAM-DRW init)
    torch.testing.assert_close(head(10 * x), out)
    torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(3))


def test_normed_linear_gradients_and_zero_input():
    head = NormedLinear(6, 2)
    x = torch.randn(3, 6, requires_grad=True)
    head(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert torch.equal(head(torch.zeros(2, 6)), torch.zeros(2, 2))  # no NaN for a zero feature vector


def test_normed_linear_float32_under_autocast():
    head = NormedLinear(8, 3)
    x = torch.randn(2, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head(x.float()))


def test_normed_linear_bad_arguments():
    with pytest.raises(ValueError, match="in_features"):
        NormedLinear(0, 3)
    with pytest.raises(ValueError, match="scale"):
        NormedLinear(3, 3, scale=0)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        NormedLinear(4, 2)(torch.randn(2, 5))


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (DenseNet(2, 1, 3, init_features=4, growth_rate=2, block_config=(1, 1)), "class_layers.out"),
        (ResNet("basic", [1, 1, 1, 1], [4, 4, 4, 4], spatial_dims=2, n_input_channels=1, num_classes=3), "fc"),
        (EfficientNetBN("efficientnet-b0", pretrained=False, in_channels=1, num_classes=3), "_fc"),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), "2"),
    ],
)
def test_replace_with_cosine_head_on_monai_networks(network, expected):
    assert find_final_linear(network) == expected
    replace_with_cosine_head(network, scale=1.0)
    head = network.get_submodule(expected)
    assert isinstance(head, NormedLinear) and head.out_features == 3
    x = torch.randn(2, 4) if isinstance(network, nn.Sequential) else torch.randn(2, 1, 32, 32)
    network.eval()
    out = network(x)
    assert out.shape == (2, 3) and out.abs().max() <= 1.0 + 1e-6


def test_replace_keeps_input_dropout_added_before():
    net = ResNet("basic", [1, 1, 1, 1], [4, 4, 4, 4], spatial_dims=2, n_input_channels=1, num_classes=2)
    add_dropout(net, p=0.3)
    replace_with_cosine_head(net)
    assert isinstance(net.fc, NormedLinear)
    assert [m.p for m in find_dropout_modules(net)] == [0.3]
    # the dropout still acts on the head's input: in train mode, p close to 1 zeroes features -> zero logits
    add_dropout(net, p=0.999)
    net.train()
    torch.manual_seed(0)
    assert net(torch.randn(2, 1, 32, 32)).abs().max() == 0


def test_replace_with_cosine_head_errors():
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        replace_with_cosine_head(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match=r"must name an nn\.Linear"):
        replace_with_cosine_head(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), layer_name="1")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        replace_with_cosine_head("densenet")
