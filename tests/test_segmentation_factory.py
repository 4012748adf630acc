"""get_segmentation_network / segmentation_size_divisor: U-Net and FocusNet with dropout, sizes, bad input."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet
from torch import nn

from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.networks import FocusNet, find_dropout_modules
from monai_imbalance.networks.segmentation_factory import (
    SEGMENTATION_NETWORK_NAMES,
    UNetWithHead,
    get_segmentation_network,
    segmentation_size_divisor,
)


@pytest.mark.parametrize(("name", "cls"), [("unet", UNetWithHead), ("FocusNet", FocusNet)])
@pytest.mark.parametrize("size", [(16, 16), (32, 48)])
def test_logits_have_the_input_size_and_gradients_reach_every_parameter(name, cls, size):
    torch.manual_seed(0)
    extra = {"se_reduction": 2} if cls is FocusNet else {}  # 4 channels leave no SE hidden unit at ratio 8
    net = get_segmentation_network(name, in_channels=3, out_channels=1, channels=(4, 8, 16), dropout=0.1, **extra)
    assert isinstance(net, cls)
    x = torch.randn(2, 3, *size)
    out = net(x)
    assert out.shape == (2, 1, *size)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)


def test_unet_defaults_follow_the_paper_description():
    net = get_segmentation_network("unet", in_channels=3)
    assert isinstance(net.unet, UNet) and net.unet.out_channels == 16 and net.head.out_channels == 1
    assert net.head.kernel_size == (1, 1)
    assert net.unet.channels == (16, 32, 64, 128, 256) and net.unet.strides == (2, 2, 2, 2)  # strided downsampling
    assert net.unet.num_res_units == 2
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, nn.ReLU) for m in net.modules())
    dropout = find_dropout_modules(net)
    assert dropout and all(m.p == 0.1 for m in dropout)
    assert segmentation_size_divisor(net) == 16


def test_focusnet_defaults_and_dropout_rate():
    net = get_segmentation_network("focusnet", in_channels=1, dropout=0.25)
    assert net.channels == (16, 32, 64, 128) and segmentation_size_divisor(net) == 16
    assert {m.p for m in find_dropout_modules(net)} == {0.25}


@pytest.mark.parametrize("name", SEGMENTATION_NETWORK_NAMES)
def test_mc_dropout_passes_differ(name):
    torch.manual_seed(0)
    net = get_segmentation_network(name, in_channels=1, channels=(8, 16), dropout=0.3).eval()
    inferer = MCDropoutInferer(num_samples=4, activation="sigmoid", keep_samples=True)
    with torch.no_grad():
        inferer(torch.randn(1, 1, 16, 16), net)
    samples = inferer.last_output["samples"]
    assert samples.shape == (4, 1, 1, 16, 16) and not torch.allclose(samples[0], samples[1])


def test_divisor_of_custom_strides_and_a_wrapped_network():
    net = get_segmentation_network("unet", channels=(4, 8, 16), strides=(2, 4))
    assert segmentation_size_divisor(net) == 8 and segmentation_size_divisor(net.unet) == 8
    assert net(torch.randn(2, 1, 8, 16)).shape == (2, 1, 8, 16)

    class Wrapper(nn.Module):  # what DistributedDataParallel looks like from outside
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    assert segmentation_size_divisor(Wrapper(get_segmentation_network("focusnet", channels=(8, 16, 32)))) == 8
    with pytest.raises(TypeError, match="UNet, UNetWithHead and FocusNet"):
        segmentation_size_divisor(nn.Conv2d(1, 1, 3))


def test_network_specific_keywords_reach_the_constructor():
    net = get_segmentation_network("unet", channels=(4, 8), num_res_units=0, act="prelu", norm="instance")
    assert net.unet.num_res_units == 0 and any(isinstance(m, nn.PReLU) for m in net.modules())
    assert any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
    focus = get_segmentation_network("focusnet", channels=(8, 16), side_sigmoid=True)
    assert focus.side_sigmoid


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "vnet"}, ValueError, "unknown segmentation network 'vnet'"),
        ({"dropout": 1.0}, ValueError, "dropout must be"),
        ({"dropout": True}, ValueError, "dropout must be"),
        ({"in_channels": 0}, ValueError, "in_channels"),
        ({"out_channels": 1.5}, ValueError, "out_channels"),
        ({"spatial_dims": 1}, ValueError, "spatial_dims"),
        ({"channels": (8,)}, ValueError, "at least two"),
        ({"se_reduction": 2}, TypeError, r"unknown argument\(s\) \['se_reduction'\].*num_res_units"),
        ({"name": "focusnet", "strides": (2, 2)}, TypeError, r"\['strides'\].*se_reduction"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        get_segmentation_network(**{"name": "unet", **kwargs})


@pytest.mark.parametrize(("name", "steps"), [("unet", 100), ("focusnet", 50)])
def test_fits_an_all_background_target(name, steps):
    """Regression: MONAI's UNet with one output channel (no head) kept background probabilities near 0.4."""
    torch.manual_seed(0)
    net = get_segmentation_network(name, channels=(8, 16, 32))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(4, 1, 16, 16), torch.zeros(4, 1, 16, 16)
    for _ in range(steps):  # after 100 steps the head-less UNet was still at 0.47
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert torch.sigmoid(net.eval()(x)).mean() < 0.1


def test_unet_with_head_bad_input():
    with pytest.raises(TypeError, match=r"monai\.networks\.nets\.UNet"):
        UNetWithHead(nn.Conv2d(1, 1, 1), 1)
    unet = UNet(2, 1, 4, channels=(4, 8), strides=(2,))
    with pytest.raises(ValueError, match="out_channels"):
        UNetWithHead(unet, 0)
    net = UNetWithHead(unet, 3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3, 8, 8)
