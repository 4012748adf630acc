"""Conventions every loss of ``monai_imbalance.losses`` keeps: shapes, float32 under autocast, extreme logits,
no state change in forward, MetaTensor inputs, and instantiation from a MONAI bundle config."""

from __future__ import annotations

import warnings

import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.losses import DiceLoss
from monai.losses import FocalLoss as MonaiFocalLoss

import monai_imbalance  # noqa: F401  (registers the short names for the config parser)
from monai_imbalance import losses

COUNTS = [60, 25, 5]

# name -> (constructor, keyword arguments); every loss takes softmax logits with C = 3 and a label map
LOSSES = {
    "CrossEntropyLoss": (losses.CrossEntropyLoss, {"weight": [1.0, 2.0, 3.0]}),
    "FocalLoss": (
        losses.FocalLoss,
        {"gamma": 2.0, "alpha": [0.2, 0.3, 0.5], "weight": [1.0, 2.0, 3.0], "sigmoid": False},
    ),
    "LDAMLoss": (losses.LDAMLoss, {"cls_num_list": COUNTS, "weight": [1.0, 2.0, 3.0]}),
    "LMFLoss": (losses.LMFLoss, {"cls_num_list": COUNTS}),
    "ComboLoss": (losses.ComboLoss, {"softmax": True, "weight": [1.0, 2.0, 3.0]}),
    "FocalTverskyLoss": (losses.FocalTverskyLoss, {"softmax": True}),
    "AdaptiveLogarithmicLoss": (
        losses.AdaptiveLogarithmicLoss,
        {"loss": DiceLoss(softmax=True, to_onehot_y=True)},
    ),
}
SHAPES = [(4, 3), (2, 3, 5, 4), (2, 3, 4, 3, 3)]


def _batch(shape, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=gen).to(dtype).requires_grad_(True)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    labels.view(-1)[:3] = torch.tensor([0, 1, 2])  # every class present
    return logits, labels


@pytest.mark.parametrize("shape", SHAPES, ids=["BC", "BCHW", "BCHWD"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_shapes_values_and_gradients(name, shape):
    factory, kwargs = LOSSES[name]
    logits, labels = _batch(shape)
    loss = factory(**kwargs)(logits, labels)
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad.shape == logits.shape and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_bf16_autocast_computes_in_float32(name):
    factory, kwargs = LOSSES[name]
    logits, labels = _batch((2, 3, 6, 6), dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = factory(**kwargs)(logits * 1.0, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_extreme_logits_give_finite_values_and_gradients(name):
    factory, kwargs = LOSSES[name]
    labels = torch.tensor([[0], [1], [2], [0]])
    logits = torch.tensor([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = factory(**kwargs)(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_forward_leaves_the_state_dict_unchanged(name):
    factory, kwargs = LOSSES[name]
    module = factory(**kwargs)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    logits, labels = _batch((2, 3, 4, 4))
    module(logits, labels)
    after = module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "AdaptiveLogarithmicLoss"])
def test_metatensor_inputs_and_float64_modules(name):
    factory, kwargs = LOSSES[name]
    logits, labels = _batch((2, 3, 4, 4))
    plain = factory(**kwargs)(logits, labels)
    meta = factory(**kwargs)(MetaTensor(logits), MetaTensor(labels.float()))
    assert type(meta) is torch.Tensor
    assert meta.item() == pytest.approx(plain.item(), rel=1e-6)
    module = factory(**kwargs).double()  # buffers follow the module; the math follows the input
    value = module(logits.detach().double(), labels)
    assert value.dtype == torch.float64 and value.item() == pytest.approx(plain.item(), rel=1e-5)


def _config_args(name):
    kwargs = dict(LOSSES[name][1])
    if name == "AdaptiveLogarithmicLoss":
        kwargs["loss"] = {"_target_": "DiceLoss", "softmax": True, "to_onehot_y": True}
    return kwargs


@pytest.mark.parametrize("name", list(LOSSES))
def test_bundle_config_fully_qualified_target(name):
    parser = ConfigParser({"loss": {"_target_": f"monai_imbalance.losses.{name}", **_config_args(name)}})
    loss = parser.get_parsed_content("loss")
    assert type(loss) is LOSSES[name][0]
    logits, labels = _batch((2, 3, 4, 4))
    assert torch.isfinite(loss(logits, labels))


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "FocalLoss"])
def test_bundle_config_short_name_after_import(name):
    parser = ConfigParser({"loss": {"_target_": name, **_config_args(name)}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a unique short name resolves without an ambiguity warning
        loss = parser.get_parsed_content("loss")
    assert type(loss) is LOSSES[name][0]


def test_short_names_clashing_with_monai_resolve_to_monai():
    """Documented: ``FocalLoss`` (and the two functional focal forms) need the fully qualified path."""
    parser = ConfigParser({"loss": {"_target_": "FocalLoss", "gamma": 2.0}})
    with pytest.warns(UserWarning, match="more than 1 component"):
        loss = parser.get_parsed_content("loss")
    assert type(loss) is MonaiFocalLoss
    assert "monai_imbalance.losses.FocalLoss" in losses.__doc__


def test_get_loss_from_a_bundle_config():
    parser = ConfigParser(
        {"loss": {"_target_": "monai_imbalance.losses.get_loss", "name": "lmf", "class_counts": COUNTS, "weight": None}}
    )
    assert type(parser.get_parsed_content("loss")) is losses.LMFLoss


def test_everything_listed_is_importable():
    for name in losses.__all__:
        assert getattr(losses, name) is not None
    assert set(losses.LOSS_NAMES) == {
        "ce", "focal", "ldam", "lmf", "lmf_official", "dice", "jaccard", "tversky", "focal_tversky", "combo", "all"
    }  # fmt: skip
