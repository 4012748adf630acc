"""Tests of monai_imbalance.inferers.MCDropoutInferer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.networks.nets import UNet
from torch import nn

from monai_imbalance.inferers import MCDropoutInferer


class SmallNet(nn.Module):
    """Conv -> BatchNorm -> ReLU -> pool -> Dropout -> Linear: the layers MC dropout must tell apart."""

    def __init__(self, p: float = 0.5, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(p)
        self.fc = nn.Linear(4, classes)
        self.modes: list[tuple[bool, bool]] = []  # (bn.training, drop.training) seen in each forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append((self.bn.training, self.drop.training))
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.fc(self.drop(h))


def _net(p: float = 0.5, classes: int = 3) -> SmallNet:
    torch.manual_seed(0)
    net = SmallNet(p, classes)
    with torch.no_grad():  # non-trivial running statistics, so that train-mode batch norm would change outputs
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _x(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_inside_supervised_evaluator_batch_norm_stays_eval_and_dropout_is_on():
    net = _net()
    data = [{"image": img, "label": torch.tensor(i % 3)} for i, img in enumerate(_x(6))]
    # full passes: every pass calls forward, which records the modes (prefix reuse runs a traced graph instead)
    inferer = MCDropoutInferer(num_samples=5, seed=0, reuse_prefix=False)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=DataLoader(data, batch_size=3), network=net, inferer=inferer
    )
    preds = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: preds.extend(o["pred"] for o in e.state.output))
    net.train()  # the evaluator switches to eval and back; MC mode must not leak out
    evaluator.run()
    assert len(net.modes) == 2 * 5 and set(net.modes) == {(False, True)}
    assert net.training and net.bn.training and net.drop.training
    probs = torch.stack(preds)
    assert probs.shape == (6, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(6))
    assert inferer.last_output["mean"].shape == (3, 3)
    assert inferer.last_output["variance"].max() > 0  # the passes differed


def test_samples_vary_and_uncertainty_matches_numpy():
    net = _net(p=0.5)
    inferer = MCDropoutInferer(num_samples=20, seed=3, keep_samples=True)
    with torch.no_grad():
        mean = inferer(_x(), net)
    out = inferer.last_output
    samples = out["samples"].numpy().astype(np.float64)
    assert samples.shape == (20, 4, 3)
    assert not np.allclose(samples[0], samples[1])  # the passes differ
    np.testing.assert_allclose(mean.numpy(), samples.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["variance"].numpy(), samples.var(0), rtol=1e-4, atol=1e-7)
    p_bar = samples.mean(0)
    entropy = -(p_bar * np.log(p_bar)).sum(1, keepdims=True)
    expected_entropy = -(samples * np.log(samples)).sum(2, keepdims=True).mean(0)
    np.testing.assert_allclose(out["entropy"].numpy(), entropy, rtol=1e-5)
    np.testing.assert_allclose(out["mutual_information"].numpy(), entropy - expected_entropy, rtol=1e-4, atol=1e-6)
    assert (out["mutual_information"] > 0).all()


def test_dropout_rate_zero_gives_exactly_the_deterministic_output():
    net = _net(p=0.0)
    x = _x()
    with torch.no_grad():
        deterministic = torch.softmax(net(x).float(), dim=1)
        inferer = MCDropoutInferer(num_samples=7)
        mean = inferer(x, net)
        batched = MCDropoutInferer(num_samples=7, mc_batch_size=3)(x, net)
    assert torch.equal(mean, deterministic)
    assert torch.equal(inferer.last_output["variance"], torch.zeros_like(mean))
    assert torch.equal(inferer.last_output["mutual_information"], torch.zeros(4, 1))
    torch.testing.assert_close(batched, deterministic)  # other batch size: equal up to float rounding


def test_batched_passes_keep_every_image_with_its_own_samples():
    # dropout on the input, then max over features: every pass gives exactly 2 * (b + 1) for image b
    net = nn.Sequential(nn.Dropout(0.5), nn.Flatten(), nn.Identity())
    x = torch.arange(1, 4, dtype=torch.float32)[:, None, None].expand(3, 1, 64).contiguous()

    class MaxOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.net(inputs).amax(dim=1, keepdim=True)

    inferer = MCDropoutInferer(num_samples=10, activation=None, mc_batch_size=4, keep_samples=True, seed=0)
    with torch.no_grad():
        mean = inferer(x, MaxOut())
    expected = torch.tensor([[2.0], [4.0], [6.0]])
    assert torch.equal(mean, expected)
    assert torch.equal(inferer.last_output["samples"], expected.expand(10, 3, 1))
    assert inferer.last_output["entropy"] is None and inferer.last_output["mutual_information"] is None


def test_seeded_runs_are_reproducible_and_leave_the_global_generator_alone():
    net, x = _net(), _x()
    state = torch.get_rng_state()
    with torch.no_grad():
        a = MCDropoutInferer(num_samples=6, seed=11)(x, net)
        b = MCDropoutInferer(num_samples=6, seed=11)(x, net)
        c = MCDropoutInferer(num_samples=6, seed=12)(x, net)
        d = MCDropoutInferer(num_samples=6, seed=11, mc_batch_size=3)(x, net)
        e = MCDropoutInferer(num_samples=6, seed=11, mc_batch_size=3)(x, net)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(d, e)
    assert torch.equal(torch.get_rng_state(), state)
    with torch.no_grad():
        MCDropoutInferer(num_samples=2)(x, net)  # unseeded: uses (and advances) the global generator
    assert not torch.equal(torch.get_rng_state(), state)


def test_modes_are_restored_after_an_exception():
    class Failing(SmallNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if len(self.modes) == 2:
                raise RuntimeError("out of memory (simulated)")
            return super().forward(x)

    net = Failing()
    net.train()
    net.conv.eval()
    before = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError, match="simulated"):
        MCDropoutInferer(num_samples=5, reuse_prefix=False)(_x(), net)
    assert [m.training for m in net.modules()] == before


def test_modes_are_restored_after_an_exception_in_the_reused_suffix():
    net = _net()
    calls = []

    def fail_on_third_call(module, args):
        calls.append(args[0].shape[0])
        if len(calls) == 3:
            raise RuntimeError("out of memory (simulated)")

    net.fc.register_forward_pre_hook(fail_on_third_call)
    net.train()
    before = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError, match="simulated"):
        MCDropoutInferer(num_samples=5, seed=0)(_x(), net)
    assert [m.training for m in net.modules()] == before


def test_network_without_dropout_raises_naming_the_fix():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match="add_dropout"):
        MCDropoutInferer(num_samples=2)(_x(), net)


def test_sliding_window_wrapping_on_a_2d_segmentation_unet():
    torch.manual_seed(0)
    unet = UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=1, dropout=0.2).eval()
    x = torch.randn(2, 1, 24, 20)
    window = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=2, overlap=0.25)
    inferer = MCDropoutInferer(num_samples=4, inferer=window, mc_batch_size=2, seed=0)
    with torch.no_grad():
        mean = inferer(x, unet)
    assert mean.shape == (2, 2, 24, 20)
    torch.testing.assert_close(mean.sum(dim=1), torch.ones(2, 24, 20))
    assert inferer.last_output["entropy"].shape == (2, 1, 24, 20)
    assert inferer.last_output["variance"].max() > 0
    # rate 0: exactly the deterministic sliding-window prediction
    for m in unet.modules():
        if isinstance(m, nn.Dropout2d | nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        deterministic = torch.softmax(window(x, unet), dim=1)
        assert torch.equal(MCDropoutInferer(num_samples=3, inferer=window)(x, unet), deterministic)


def test_sigmoid_activation_gives_per_channel_uncertainty():
    net = _net(classes=2)
    inferer = MCDropoutInferer(num_samples=4, activation="Sigmoid", seed=0)
    with torch.no_grad():
        mean = inferer(_x(), net)
    assert inferer.activation == "sigmoid"
    assert ((mean > 0) & (mean < 1)).all() and not torch.allclose(mean.sum(1), torch.ones(4))
    assert inferer.last_output["entropy"].shape == (4, 2)
    assert (inferer.last_output["entropy"] <= np.log(2) + 1e-6).all()


def test_predict_returns_the_dict_and_samples_on_request():
    inferer = MCDropoutInferer(num_samples=3, seed=0)
    with torch.no_grad():
        result = inferer.predict(_x(), _net(), return_samples=True)
    assert set(result) == {"mean", "variance", "entropy", "mutual_information", "samples"}
    assert result["samples"].shape == (3, 4, 3)
    assert inferer.last_output["samples"] is not None


def test_float32_output_under_autocast_and_meta_tensor_kept():
    net = _net()
    x = MetaTensor(_x(), meta={"filename_or_obj": ["a", "b", "c", "d"]})
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mean = MCDropoutInferer(num_samples=2, seed=0, mc_batch_size=2)(x, net)
    assert mean.dtype == torch.float32
    assert isinstance(mean, MetaTensor) and mean.meta["filename_or_obj"] == ["a", "b", "c", "d"]
    with torch.no_grad():  # the mean keeps float32 even when the input has another dtype
        mean64 = MCDropoutInferer(num_samples=2)(MetaTensor(_x().double()), net.double())
    assert mean64.dtype == torch.float32


def test_default_inner_inferer_and_clamped_batch_size():
    inferer = MCDropoutInferer(num_samples=3, mc_batch_size=10)
    assert isinstance(inferer.inferer, SimpleInferer) and inferer.mc_batch_size == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": 2.5}, ValueError, "num_samples"),
        ({"activation": "relu"}, ValueError, "activation"),
        ({"mc_batch_size": 0}, ValueError, "mc_batch_size"),
        ({"seed": "1"}, TypeError, "seed"),
        ({"inferer": 3}, TypeError, "inferer"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MCDropoutInferer(**kwargs)


def test_bad_network_or_output():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        MCDropoutInferer(num_samples=2)(_x(), lambda x: x)
    net = nn.Sequential(nn.Dropout(0.1))
    with pytest.raises(TypeError, match="tensor output"):
        MCDropoutInferer(num_samples=2, inferer=lambda x, n: (n(x), n(x)))(_x(), net)
    with pytest.raises(TypeError, match="inputs"):
        MCDropoutInferer(num_samples=2)(np.zeros((1, 1)), net)
