"""Tests of monai_imbalance.networks.dropout: find/set/add dropout in MONAI networks, MC-dropout mode."""

from __future__ import annotations

import io

import pytest
import torch
from monai.networks.nets import DenseNet, DenseNet121, EfficientNetBN, UNet, resnet10
from torch import nn

from monai_imbalance.networks import add_dropout, find_dropout_modules, mc_dropout_mode, set_dropout


def _small_densenet(dropout_prob: float = 0.0) -> DenseNet121:
    return DenseNet121(spatial_dims=2, in_channels=1, out_channels=3, dropout_prob=dropout_prob)


def test_find_dropout_modules_covers_all_dropout_types():
    net = nn.Sequential(
        nn.Dropout(0.1), nn.Dropout2d(0.2), nn.AlphaDropout(0.3), nn.FeatureAlphaDropout(0.4), nn.ReLU()
    )
    assert [m.p for m in find_dropout_modules(net)] == [0.1, 0.2, 0.3, 0.4]
    assert find_dropout_modules(nn.Linear(2, 2)) == []


def test_set_dropout_sets_every_rate_and_returns_network():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.Dropout2d(0.1)))
    assert set_dropout(net, 0.25) is net
    assert [m.p for m in find_dropout_modules(net)] == [0.25, 0.25]


def test_set_dropout_without_dropout_names_add_dropout():
    with pytest.raises(ValueError, match="add_dropout"):
        set_dropout(nn.Linear(2, 2), 0.1)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_rate_raises(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        add_dropout(nn.Sequential(nn.Linear(2, 2)), p)


def test_bad_types_raise():
    with pytest.raises(TypeError, match="rate"):
        set_dropout(nn.Dropout(), "0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"nn\.Module"):
        add_dropout(lambda x: x, 0.1)  # type: ignore[arg-type]


def test_densenet_gets_what_dropout_prob_builds():
    reference = _small_densenet(dropout_prob=0.1)
    net = add_dropout(_small_densenet(), 0.1)
    ref_modules = [(n, type(m), getattr(m, "p", None)) for n, m in reference.named_modules()]
    new_modules = [(n, type(m), getattr(m, "p", None)) for n, m in net.named_modules()]
    assert new_modules == ref_modules
    assert len(find_dropout_modules(net)) == 58 and all(isinstance(m, nn.Dropout2d) for m in find_dropout_modules(net))
    assert list(net.state_dict()) == list(reference.state_dict())


def test_densenet_with_added_dropout_computes_like_dropout_prob():
    def tiny(dropout_prob: float) -> DenseNet:
        return DenseNet(2, 1, 3, init_features=4, growth_rate=4, block_config=(2, 2), dropout_prob=dropout_prob)

    reference, net = tiny(0.3), add_dropout(tiny(0.0), 0.3)
    net.load_state_dict(reference.state_dict())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), reference.eval()(x))
        torch.manual_seed(1)
        a = reference.train()(x)
        torch.manual_seed(1)
        b = net.train()(x)
    assert torch.equal(a, b)  # same dropout layers in the same places draw the same masks


def test_densenet_with_dropout_prob_is_only_reset():
    net = add_dropout(_small_densenet(dropout_prob=0.2), 0.05)
    assert len(find_dropout_modules(net)) == 58
    assert {m.p for m in find_dropout_modules(net)} == {0.05}


def test_resnet_dropout_before_fc_keeps_state_dict_keys():
    torch.manual_seed(0)
    plain = resnet10(spatial_dims=2, n_input_channels=1, num_classes=3)
    net = resnet10(spatial_dims=2, n_input_channels=1, num_classes=3)
    net.load_state_dict(plain.state_dict())
    add_dropout(net, 0.5)
    assert list(net.state_dict()) == list(plain.state_dict())
    assert [type(m) for m in find_dropout_modules(net)] == [nn.Dropout]
    assert net.fc.mc_dropout.p == 0.5

    seen = {}
    net.fc.register_forward_hook(lambda module, args, out: seen.update(fc_input=args[0]))
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), plain.eval()(x))  # eval: dropout is the identity
        features = seen["fc_input"].clone()
        net.eval()
        net.fc.mc_dropout.train()
        net(x)
    dropped = seen["fc_input"]
    zero = dropped == 0
    assert 0.3 < zero.float().mean() < 0.7  # about half of the fc input is dropped
    torch.testing.assert_close(dropped[~zero], 2 * features[~zero])  # kept values scaled by 1 / (1 - p)


def test_add_dropout_twice_only_changes_the_rate():
    net = add_dropout(resnet10(spatial_dims=2, n_input_channels=1, num_classes=2), 0.1)
    add_dropout(net, 0.3)
    assert [m.p for m in find_dropout_modules(net)] == [0.3]
    assert len(net.fc._forward_pre_hooks) == 1


def test_checkpoint_loads_both_ways():
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with_dropout = add_dropout(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), 0.2)
    with_dropout.load_state_dict(plain.state_dict())
    plain.load_state_dict(with_dropout.state_dict())
    assert isinstance(with_dropout[2].mc_dropout, nn.Dropout)


def test_efficientnet_and_unet_rates_are_set():
    eff = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=1, num_classes=2)
    add_dropout(eff, 0.1)
    assert eff._dropout.p == 0.1
    unet = UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)  # dropout=0.0 still builds the layers
    add_dropout(unet, 0.3)
    assert len(find_dropout_modules(unet)) == 2 and {m.p for m in find_dropout_modules(unet)} == {0.3}


def test_sequential_dropout_before_last_linear_or_last_layer_with_parameters():
    seq = add_dropout(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Softmax(dim=1)), 0.1)
    assert hasattr(seq[2], "mc_dropout") and not hasattr(seq[0], "mc_dropout")
    conv = add_dropout(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 1), nn.Sigmoid()), 0.1)
    assert hasattr(conv[2], "mc_dropout")
    with pytest.raises(ValueError, match="no layer with parameters"):
        add_dropout(nn.Sequential(nn.ReLU()), 0.1)


def test_before_names_any_submodule():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.body(x))

    with pytest.raises(ValueError, match="pass before="):
        add_dropout(Net(), 0.1)
    net = add_dropout(Net(), 0.2, before="head")
    assert [m.p for m in find_dropout_modules(net)] == [0.2]
    with pytest.raises(ValueError, match="no submodule named 'tail'"):
        add_dropout(Net(), 0.2, before="tail")


def test_network_with_added_dropout_survives_torch_save():
    net = add_dropout(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)), 0.5)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded[1].mc_dropout, nn.Dropout)
    loaded.train()
    seen = {}
    loaded[1].register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    loaded(torch.ones(16, 4))
    assert (seen["x"] == 0).any()  # the pre-hook still drops the input


def test_mc_dropout_mode_switches_only_dropout_and_restores_mixed_modes():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout2d(0.5), nn.Sequential(nn.Dropout(0.1)))
    net.train()
    net[1].eval()  # a mixed state that must come back exactly
    before = [m.training for m in net.modules()]
    with mc_dropout_mode(net) as inside:
        assert inside is net
        assert [m.training for m in net.modules()] == [False, False, False, True, False, True]
    assert [m.training for m in net.modules()] == before


def test_mc_dropout_mode_restores_after_exception():
    net = nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(0.5)).eval()
    with pytest.raises(RuntimeError, match="boom"), mc_dropout_mode(net):
        assert net[1].training
        raise RuntimeError("boom")
    assert not any(m.training for m in net.modules())


def test_mc_dropout_mode_without_dropout_names_the_fix():
    net = nn.Sequential(nn.Linear(2, 2)).train()
    with pytest.raises(ValueError, match="add_dropout"), mc_dropout_mode(net):
        pass
    assert net.training
