"""FocusNet: output shapes, gradients through both branches, dropout behaviour and bad input."""

from __future__ import annotations

import pytest
import torch
from monai.networks.blocks import ChannelSELayer, ResidualUnit, UpSample

from monai_imbalance.networks import FocusNet

SMALL = {"channels": (8, 16, 32), "se_reduction": 2, "side_channels": 8}


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "size"),
    [(1, 1, (8, 8)), (3, 1, (16, 24)), (1, 2, (32, 32)), (3, 3, (40, 16))],
)
def test_output_shape_is_input_size_with_out_channels(in_channels, out_channels, size):
    torch.manual_seed(0)
    net = FocusNet(in_channels=in_channels, out_channels=out_channels, **SMALL)
    y = net(torch.randn(2, in_channels, *size))
    assert y.shape == (2, out_channels, *size)
    assert torch.isfinite(y).all()


def test_default_network_has_four_levels_and_runs_on_divisible_sizes():
    net = FocusNet(in_channels=3, out_channels=1).eval()
    assert net.channels == (16, 32, 64, 128)
    assert net.divisor == 16
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 48)).shape == (1, 1, 32, 48)


def test_every_parameter_gets_a_finite_gradient():
    """Both branches are in the graph: the attention branch only reaches the output through the gates."""
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, **SMALL)
    x = torch.randn(2, 1, 16, 16, requires_grad=True)
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    attention_grad = sum(p.grad.abs().sum() for n, p in net.named_parameters() if n.startswith("attention_"))
    assert attention_grad > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gates_multiply_the_recalibrated_features():
    """Forcing every gate to zero (sigmoid of a huge negative) must change the output: the gates are used."""
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, dropout=0.0, **SMALL).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        reference = net(x)
        net.attention_decoder[0].register_forward_hook(lambda m, i, o: torch.full_like(o, -1e4))
        gated_off = net(x)
    assert not torch.allclose(reference, gated_off)


def test_reuses_monai_blocks():
    net = FocusNet(**SMALL)
    kinds = {type(m) for m in net.modules()}
    assert {ResidualUnit, ChannelSELayer, UpSample} <= kinds


def test_eval_is_deterministic_and_train_mode_dropout_is_stochastic():
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, dropout=0.2, **SMALL)
    x = torch.randn(2, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        # MC dropout: only the dropout modules in train mode, batch norm stays in eval
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()
        assert not torch.allclose(net(x), net(x))


def test_without_dropout_train_mode_is_deterministic():
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, dropout=0.0, **SMALL).train()
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x))


def test_instance_norm_and_other_activation():
    net = FocusNet(in_channels=1, out_channels=1, norm="instance", act="prelu", **SMALL)
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_three_dimensional_input():
    net = FocusNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8), se_reduction=2, side_channels=4)
    assert net(torch.randn(2, 1, 8, 4, 12)).shape == (2, 2, 8, 4, 12)


@pytest.mark.parametrize("size", [(20, 16), (16, 12), (7, 8)])
def test_sizes_not_divisible_by_two_to_the_depth_are_rejected(size):
    net = FocusNet(in_channels=1, out_channels=1, **SMALL)
    with pytest.raises(ValueError, match=r"divisible by 8.*" + str(size).replace("(", r"\(").replace(")", r"\)")):
        net(torch.randn(2, 1, *size))


def test_bad_input_shape_and_channels_are_rejected():
    net = FocusNet(in_channels=3, out_channels=1, **SMALL)
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        net(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="expects input of shape"):
        net(torch.randn(3, 16, 16))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spatial_dims": 1}, "spatial_dims 2 or 3"),
        ({"channels": (16,)}, "at least two"),
        ({"channels": (16, 0)}, "at least two ints"),
        ({"dropout": 1.0}, "dropout"),
        ({"channels": (4, 8), "se_reduction": 8}, "se_reduction"),
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 1.5}, "out_channels"),
        ({"side_channels": 0}, "side_channels"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FocusNet(**kwargs)


def test_trains_on_a_toy_problem():
    """Adam steps on a fixed batch bring the BCE well below the entropy of the foreground rate (0.62 nats).

    Only learning the prior would stall at that entropy; getting below it needs the pixel-wise path.
    """
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, dropout=0.0, **SMALL)
    x = torch.randn(4, 1, 16, 16)
    target = (x > 0.5).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), target)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.45


def test_side_sigmoid_option_squashes_the_side_outputs():
    torch.manual_seed(0)
    net = FocusNet(in_channels=1, out_channels=1, side_sigmoid=True, **SMALL).eval()
    seen = []
    net.fusion.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        net(torch.randn(1, 1, 16, 16))
    assert seen[0].shape == (1, 3, 16, 16)
    assert seen[0].min() > 0 and seen[0].max() < 1
