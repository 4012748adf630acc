"""get_network: architectures, dropout, heads and pretrained weights (never downloaded here)."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
from monai.networks.nets import DenseNet121, EfficientNetBN, ResNet
from monai.networks.nets.resnet import ResNetBottleneck
from torch import nn

from monai_imbalance.networks.dropout import find_dropout_modules
from monai_imbalance.networks.factory import NETWORK_NAMES, PretrainedWeightsUnavailableError, get_network
from monai_imbalance.networks.heads import NormedLinear
from monai_imbalance.networks.small_cnn import SmallCNN


@pytest.fixture(scope="module")
def densenet() -> DenseNet121:
    """One DenseNet121 (the slowest network to build) shared by the tests that only read it."""
    torch.manual_seed(1)
    return get_network("densenet121", in_channels=3, out_channels=2, dropout_prob=0.2)


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty torch hub cache and a download that fails as it does offline."""
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return calls


@pytest.mark.parametrize(("name", "cls"), [("resnet18", ResNet), ("small_cnn", SmallCNN)])
def test_builds_each_family_with_the_right_output(name, cls):
    torch.manual_seed(0)
    net = get_network(name, spatial_dims=2, in_channels=1, out_channels=4)
    assert isinstance(net, cls)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_builds_efficientnet_without_downloading(no_download):
    # MONAI's EfficientNetBN defaults to pretrained=True; get_network must not ask for weights
    # (its first forward pass JIT-compiles the swish for seconds, so only the layers are checked)
    net = get_network("efficientnet-b3", in_channels=1, out_channels=4)
    assert isinstance(net, EfficientNetBN) and no_download == []
    assert net._conv_stem.in_channels == 1 and net._fc.out_features == 4 and net._fc.in_features == 1536


def test_densenet121_is_the_default_with_dropout_in_every_dense_layer(densenet):
    assert isinstance(densenet, DenseNet121) and get_network.__defaults__[0] == "densenet121"
    dropouts = find_dropout_modules(densenet)
    assert len(dropouts) == 6 + 12 + 24 + 16 and {m.p for m in dropouts} == {0.2}  # one per dense layer
    densenet.eval()
    with torch.no_grad():
        assert densenet(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_resnet_depths_and_a_3d_network():
    net = get_network("ResNet50", in_channels=1, out_channels=3)
    assert isinstance(net.layer1[0], ResNetBottleneck) and [len(net.layer3), net.fc.in_features] == [6, 2048]
    assert len(get_network("resnet34", out_channels=2).layer3) == 6
    net3d = get_network("small_cnn", spatial_dims=3, in_channels=2, out_channels=3)
    assert net3d.eval()(torch.randn(1, 2, 16, 16, 16)).shape == (1, 3)


def test_names_are_forgiving_and_unknown_names_listed():
    assert isinstance(get_network("Small-CNN"), SmallCNN)
    assert get_network("efficientnet_b0", out_channels=3)._fc.out_features == 3
    assert "densenet121" in NETWORK_NAMES and "efficientnet-b7" in NETWORK_NAMES
    with pytest.raises(ValueError, match=r"unknown network 'vgg16'.*densenet121"):
        get_network("vgg16")


def test_dropout_for_each_family():
    resnet = get_network("resnet18", dropout_prob=0.1)
    assert [m.p for m in find_dropout_modules(resnet)] == [0.1]
    assert getattr(resnet.fc, "mc_dropout", None) is not None  # before the final layer
    assert [m.p for m in find_dropout_modules(get_network("efficientnet-b0"))] == [0.2]  # None: its own rate
    assert [m.p for m in find_dropout_modules(get_network("efficientnet-b0", dropout_prob=0.1))] == [0.1]
    assert find_dropout_modules(get_network("small_cnn", dropout_prob=0.0)) == []  # 0: nothing added
    small = get_network("small_cnn", dropout_prob=0.5)
    assert [m.p for m in find_dropout_modules(small)] == [0.5]
    x = torch.randn(4, 3, 16, 16)
    small.eval()
    torch.testing.assert_close(small(x), small(x))
    small.train()
    torch.manual_seed(0)
    assert not torch.allclose(small(x), small(x))  # stochastic in train mode: MC dropout works
    with pytest.raises(ValueError, match="dropout_prob"):
        get_network("small_cnn", dropout_prob=1.0)


def test_cosine_head_with_dropout():
    net = get_network("resnet18", in_channels=1, out_channels=3, head="cosine", dropout_prob=0.1)
    assert isinstance(net.fc, NormedLinear) and [m.p for m in find_dropout_modules(net)] == [0.1]
    net.eval()
    assert net(torch.randn(2, 1, 32, 32)).abs().max() <= 1.0 + 1e-6
    scaled = get_network("small_cnn", out_channels=3, head="cosine", head_scale=30.0)
    assert scaled[-1].scale == 30.0
    with pytest.raises(ValueError, match="head must be"):
        get_network("small_cnn", head="mlp")


def test_bad_arguments():
    with pytest.raises(ValueError, match="out_channels"):
        get_network("small_cnn", out_channels=0)
    with pytest.raises(ValueError, match="spatial_dims"):
        get_network("small_cnn", spatial_dims=4)
    with pytest.raises(TypeError, match="'num_classes' is set by get_network"):
        get_network("resnet18", num_classes=3)
    with pytest.raises(TypeError, match="pretrained must be"):
        get_network("small_cnn", pretrained=1.5)
    with pytest.raises(TypeError):
        get_network("small_cnn", growth_rate=4)  # not an argument of SmallCNN


@pytest.mark.parametrize(("name", "spatial_dims"), [("resnet18", 2), ("small_cnn", 2), ("densenet121", 3)])
def test_pretrained_true_where_no_weights_exist(no_download, name, spatial_dims):
    with pytest.raises(ValueError, match="pretrained"):
        get_network(name, spatial_dims=spatial_dims, pretrained=True)
    assert no_download == []


def test_pretrained_true_offline_without_cache_fails_clearly(no_download, tmp_path):
    expected = str(tmp_path / "hub" / "checkpoints" / "densenet121-a639ec97.pth")
    with pytest.raises(PretrainedWeightsUnavailableError, match=re.escape(expected)) as info:
        get_network("densenet121", pretrained=True)
    assert "pretrained='/path/to/weights.pth'" in str(info.value)
    with pytest.warns(UserWarning, match="in_channels=1"), pytest.raises(PretrainedWeightsUnavailableError):
        get_network("efficientnet-b0", in_channels=1, pretrained=True)
    assert len(no_download) == 2  # one attempt each, both failing as offline


def test_pretrained_true_reads_the_torch_hub_cache(no_download, tmp_path, densenet):
    # a cached file in the key layout of the hub file (denselayerN.norm.1.weight), which MONAI's loader
    # renames to its own (denselayerN.layers.norm1.weight); a few tensors keep the file small
    shapes = densenet.state_dict()
    wanted = {
        "features.conv0.weight": "features.conv0.weight",
        "features.denseblock2.denselayer3.norm.1.weight": "features.denseblock2.denselayer3.layers.norm1.weight",
        "features.denseblock4.denselayer16.conv.2.weight": "features.denseblock4.denselayer16.layers.conv2.weight",
    }
    cached = {hub_key: torch.full_like(shapes[key], 0.125 * (i + 1)) for i, (hub_key, key) in enumerate(wanted.items())}
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(cached, cache / "densenet121-a639ec97.pth")
    loaded = get_network("densenet121", out_channels=2, pretrained=True).state_dict()
    assert no_download == []
    for hub_key, key in wanted.items():
        torch.testing.assert_close(loaded[key], cached[hub_key])


def test_pretrained_from_a_file(tmp_path):
    torch.manual_seed(2)
    source = get_network("small_cnn", in_channels=1, out_channels=3)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    loaded = get_network("small_cnn", in_channels=1, out_channels=3, pretrained=str(path))
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(loaded.eval()(x), source.eval()(x))
    # a MONAI CheckpointSaver file with several objects, and a new number of classes: the head stays new
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"network": source.state_dict(), "optimizer": {"state": {}, "param_groups": []}}, checkpoint)
    with pytest.warns(UserWarning, match=r"ignored 2 from the file .*'11.weight'"):
        other = get_network("small_cnn", in_channels=1, out_channels=5, pretrained=checkpoint)
    torch.testing.assert_close(other[0].conv.weight, source[0].conv.weight)
    # a cosine-head network loads its own cosine-head checkpoint completely
    cosine = get_network("small_cnn", in_channels=1, out_channels=3, head="cosine")
    torch.save(cosine.state_dict(), tmp_path / "cosine.pt")
    reloaded = get_network("small_cnn", in_channels=1, out_channels=3, head="cosine", pretrained=tmp_path / "cosine.pt")
    torch.testing.assert_close(reloaded[-1].weight, cosine[-1].weight)


def test_pretrained_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        get_network("small_cnn", pretrained=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        get_network("small_cnn", pretrained=garbage)
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 3).state_dict(), other)
    with pytest.raises(ValueError, match=r"no tensor in .*other\.pt matches"):
        get_network("small_cnn", pretrained=other)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ValueError, match="holds no state dict"):
        get_network("small_cnn", pretrained=empty)


def test_pretrained_switch_strings_are_not_file_names():
    # "--pretrained false" on the bundle command line arrives as a string
    network = get_network("small_cnn", in_channels=1, out_channels=2, pretrained="false")
    assert network(torch.zeros(1, 1, 16, 16)).shape == (1, 2)
