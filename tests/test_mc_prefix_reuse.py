"""Prefix reuse in MCDropoutInferer: same results as full passes, fewer prefix computations, honest fallbacks."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import DenseNet121, UNet
from torch import nn

from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.inferers.prefix_reuse import PrefixSplit, split_at_first_dropout
from monai_imbalance.networks import add_dropout, get_network
from monai_imbalance.networks.dropout import mc_dropout_mode

LOGGER = "monai_imbalance.inferers"


def _x(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _built(build, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build().eval()


def _count_samples(module: nn.Module) -> list[int]:
    """Batch sizes seen by ``module`` (a forward hook)."""
    seen: list[int] = []
    module.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    return seen


def _predict_both(net: nn.Module, x: torch.Tensor, counted: nn.Module, **kwargs) -> tuple[dict, dict, int, int]:
    """Full passes and prefix reuse with the same seed; also the samples the counted prefix module processed."""
    seen = _count_samples(counted)
    results = []
    counts = []
    for reuse in (False, True):
        inferer = MCDropoutInferer(seed=0, keep_samples=True, reuse_prefix=reuse, **kwargs)
        seen.clear()
        with torch.no_grad():
            results.append(inferer.predict(x, net))
        counts.append(sum(seen))
    return results[0], results[1], counts[0], counts[1]


def _assert_equal_results(full: dict, reused: dict) -> None:
    assert full.keys() == reused.keys()
    for key, value in full.items():
        if value is None:
            assert reused[key] is None, key
        else:
            torch.testing.assert_close(reused[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert full["samples"].std(dim=0).max() > 0  # the passes differ: dropout was on in both modes


def _efficientnet() -> nn.Module:
    net = get_network("efficientnet-b0", in_channels=1, out_channels=3, dropout_prob=0.3)
    with torch.no_grad():  # untrained, the blocks' output is ~1e-14: give the head something to drop out
        net._bn1.bias.normal_()
        net._fc.weight.normal_()
    return net


# (network builder, input shape, path of a module that runs before the first dropout, samples per input)
NETWORKS = {
    "resnet18": (lambda: get_network("resnet18", in_channels=1, out_channels=3, dropout_prob=0.3), (3, 1, 33, 27)),
    "efficientnet-b0": (_efficientnet, (3, 1, 32, 40)),
    "small_cnn": (lambda: get_network("small_cnn", in_channels=1, out_channels=3, dropout_prob=0.3), (3, 1, 20, 28)),
    "densenet121 (dropout in every dense layer)": (
        lambda: get_network("densenet121", in_channels=1, out_channels=3, dropout_prob=0.3),
        (2, 1, 32, 36),
    ),
    "densenet121, add_dropout(before='class_layers.out')": (
        lambda: add_dropout(DenseNet121(2, 1, 3), 0.3, before="class_layers.out"),
        (2, 1, 32, 32),
    ),
    "resnet18, add_dropout(before='layer3') (a hooked container)": (
        lambda: add_dropout(get_network("resnet18", in_channels=1, out_channels=3), 0.3, before="layer3"),
        (3, 1, 24, 32),
    ),
    "unet 2d": (
        lambda: UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.3),
        (2, 1, 16, 20),
    ),
    "unet 3d": (
        lambda: UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=2, dropout=0.3),
        (2, 1, 16, 12, 20),
    ),
}


def _first_conv(net: nn.Module) -> nn.Module:
    return next(m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd))


@pytest.mark.parametrize("mc_batch_size", [1, 4])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_reuse_equals_full_passes_and_runs_the_prefix_once(name, mc_batch_size):
    build, shape = NETWORKS[name]
    net = _built(build)
    x = _x(*shape)
    full, reused, full_count, reused_count = _predict_both(
        net, x, _first_conv(net), num_samples=6, mc_batch_size=mc_batch_size
    )
    _assert_equal_results(full, reused)
    batch = shape[0]
    assert full_count == 6 * batch  # full passes: the first convolution sees every copy of every image
    # reuse: each image once (plus at most 5 samples of the one-off check of the split)
    assert batch <= reused_count <= batch + 5


def test_another_spatial_shape_reuses_the_traced_split():
    net = _built(NETWORKS["resnet18"][0])
    inferer = MCDropoutInferer(num_samples=5, mc_batch_size=2, seed=0, keep_samples=True)
    full = MCDropoutInferer(num_samples=5, mc_batch_size=2, seed=0, keep_samples=True, reuse_prefix=False)
    for shape in ((2, 1, 24, 24), (4, 1, 40, 17)):
        x = _x(*shape)
        with torch.no_grad():
            _assert_equal_results(full.predict(x, net), inferer.predict(x, net))
    with mc_dropout_mode(net):
        split = split_at_first_dropout(net)
        assert split is split_at_first_dropout(net)  # cached
    assert isinstance(split, PrefixSplit) and split.cut_before == "fc" and split.checked is True


def test_sliding_window_unet_equals_full_passes_and_computes_each_window_once():
    net = _built(lambda: UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, dropout=0.3))
    window = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=3, overlap=0.25)
    x = _x(2, 1, 28, 20)
    full, reused, full_count, reused_count = _predict_both(
        net, x, _first_conv(net), num_samples=5, inferer=window, mc_batch_size=2, activation="sigmoid"
    )
    _assert_equal_results(full, reused)
    windows = full_count // 5  # windows of both images in one pass
    assert windows > 2
    assert windows <= reused_count <= windows + 5


def test_head_dropout_segmentation_with_sliding_windows_reuses_the_whole_body():
    net = _built(lambda: UNet(2, 1, 3, channels=(4, 8), strides=(2,), num_res_units=1))
    add_dropout(net, 0.3, before="model.2")  # dropout on the input of the last up-sampling layer
    window = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=2, overlap=0.5)
    x = _x(1, 1, 24, 24)
    full, reused, full_count, reused_count = _predict_both(
        net, x, _first_conv(net), num_samples=4, inferer=window, mc_batch_size=3
    )
    _assert_equal_results(full, reused)
    assert reused_count <= full_count // 4 + 5


def test_batch_with_repeated_images_is_computed_once_per_distinct_image():
    net = _built(NETWORKS["small_cnn"][0])
    image = _x(1, 1, 16, 16)
    x = torch.cat([image, _x(1, 1, 16, 16, seed=2), image])
    full, reused, _, reused_count = _predict_both(net, x, _first_conv(net), num_samples=4, mc_batch_size=2)
    _assert_equal_results(full, reused)
    assert reused_count <= 2 + 5
    # the prefix of the repeated image ran once, yet both copies got their own dropout masks
    assert not torch.equal(reused["samples"][:, 0], reused["samples"][:, 2])


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).mean(dim=(2, 3))
        if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            h = -h
        return self.fc(self.drop(h))


class _InputDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.drop(x)).mean(dim=(2, 3))


class _BatchStatistics(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(), nn.Dropout(0.5)
        )


class _RandomConstant(nn.Module):
    """``torch.rand`` with a shape but no tensor argument: tracing would freeze it into a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x) + torch.rand(2, 1, 1)
        return self.drop(h).mean(dim=(2, 3))


class _RandomLikeInPrefix(nn.Module):
    """A traced random function before the dropout module: the cut moves before it, still exact."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = h + 0.1 * torch.randn_like(h)
        return self.drop(h).mean(dim=(2, 3))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (_DataDependent, "torch.fx cannot trace it"),
        (_InputDropout, "acts on the input: there is nothing to reuse"),
        (_BatchStatistics, "batch statistics"),
        (_RandomConstant, "does not reproduce the network's output"),
    ],
)
def test_networks_that_cannot_be_split_run_full_passes_and_say_why(build, reason, caplog):
    net = _built(build)
    x = _x(3, 1, 8, 8)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        full, reused, full_count, reused_count = _predict_both(
            net, x, _first_conv(net), num_samples=4, mc_batch_size=2, activation=None
        )
    assert any("full passes" in r.getMessage() and reason in r.getMessage() for r in caplog.records), caplog.text
    _assert_equal_results(full, reused)
    assert reused_count >= full_count  # nothing reused


def test_traced_random_function_moves_the_cut_before_it():
    net = _built(_RandomLikeInPrefix)
    with mc_dropout_mode(net):
        split = split_at_first_dropout(net)
    assert isinstance(split, PrefixSplit) and split.cut_before.startswith("randn_like")
    full, reused, _, _ = _predict_both(net, _x(3, 1, 8, 8), net.conv, num_samples=4, activation=None)
    _assert_equal_results(full, reused)


def test_extra_network_arguments_fall_back_to_full_passes(caplog):
    class WithScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return self.drop(self.conv(x) * scale).mean(dim=(2, 3))

    net = _built(WithScale)
    x = _x(2, 1, 8, 8)
    with torch.no_grad(), caplog.at_level(logging.DEBUG, logger="monai_imbalance.inferers.mc_dropout"):
        a = MCDropoutInferer(num_samples=3, seed=0, activation=None)(x, net, scale=2.0)
        b = MCDropoutInferer(num_samples=3, seed=0, activation=None, reuse_prefix=False)(x, net, scale=2.0)
    assert torch.equal(a, b)
    assert "extra arguments" in caplog.text


def test_split_follows_changes_to_the_network():
    net = _built(lambda: get_network("resnet18", in_channels=1, out_channels=3))
    add_dropout(net, 0.3)  # before fc
    with mc_dropout_mode(net):
        first = split_at_first_dropout(net)
    add_dropout(net, 0.3, before="layer4")
    with mc_dropout_mode(net):
        second = split_at_first_dropout(net)
    assert first.cut_before == "fc" and second.cut_before == "layer4"


def test_progress_bar_over_the_passes(capsys):
    net = _built(NETWORKS["small_cnn"][0])
    with torch.no_grad():
        MCDropoutInferer(num_samples=4, progress=True, seed=0)(_x(2, 1, 16, 16), net)
    assert "MC dropout" in capsys.readouterr().err
    with torch.no_grad():
        MCDropoutInferer(num_samples=4, seed=0)(_x(2, 1, 16, 16), net)
    assert "MC dropout" not in capsys.readouterr().err  # off by default


def test_switches_accept_command_line_strings_and_reject_others():
    inferer = MCDropoutInferer(reuse_prefix="false", progress="true")
    assert inferer.reuse_prefix is False and inferer.progress is True
    assert MCDropoutInferer().reuse_prefix is True and MCDropoutInferer().progress is False
    with pytest.raises(ValueError, match="switch"):
        MCDropoutInferer(progress="maybe")


def test_beyond_the_memory_limit_results_stay_exact():
    net = _built(NETWORKS["small_cnn"][0])
    x = _x(3, 1, 16, 16)
    seen = _count_samples(_first_conv(net))
    limited = MCDropoutInferer(num_samples=4, seed=0, keep_samples=True)
    limited.prefix_cache_limit_bytes = 0  # nothing is remembered: the prefix runs again in every pass
    with torch.no_grad():
        full = MCDropoutInferer(num_samples=4, seed=0, keep_samples=True, reuse_prefix=False).predict(x, net)
        seen.clear()
        reused = limited.predict(x, net)
    _assert_equal_results(full, reused)
    assert sum(seen) >= 4 * 3
