"""get_loss: names, the common-keyword table, keyword pass-through and clear errors."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, TverskyLoss

from monai_imbalance.errors import UserError
from monai_imbalance.losses import (
    LOSS_NAMES,
    AdaptiveLogarithmicLoss,
    ComboLoss,
    CrossEntropyLoss,
    FocalLoss,
    FocalTverskyLoss,
    LDAMLoss,
    LMFLoss,
    LossSettingError,
    get_loss,
)

COUNTS = [70, 20, 10]
WEIGHT = [0.5, 1.0, 1.5]


def _classification():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 3, generator=gen, requires_grad=True), torch.tensor([0, 1, 2, 0, 1, 2])


def _segmentation(channels):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, channels, 8, 8, generator=gen, requires_grad=True)
    labels = torch.randint(0, max(channels, 2), (2, 1, 8, 8), generator=gen).float()
    return logits, labels


@pytest.mark.parametrize("name", ["ce", "focal", "ldam", "lmf", "lmf_official"])
@pytest.mark.parametrize("weight", [None, WEIGHT])
def test_classification_bundle_call(name, weight):
    """Classification bundles always pass class_counts and weight and switch only the name."""
    loss = get_loss(name, class_counts=COUNTS, weight=weight)
    if weight is not None:
        torch.testing.assert_close(loss.weight, torch.tensor(WEIGHT, dtype=torch.float64))
    logits, labels = _classification()
    for target in (labels, labels.unsqueeze(1)):
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_binary_segmentation_bundle_call(name):
    """Binary segmentation bundles call get_loss(name, sigmoid=True) with one output channel."""
    if name in ("ldam", "lmf", "lmf_official"):
        with pytest.raises(ValueError, match="sigmoid=True is invalid"):
            get_loss(name, sigmoid=True, class_counts=COUNTS)
        return
    logits, mask = _segmentation(1)
    value = get_loss(name, sigmoid=True)(logits, mask)
    value.backward()
    assert value.shape == () and torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_multiclass_segmentation_bundle_call(name):
    kwargs = {"class_counts": COUNTS} if name in ("ldam", "lmf", "lmf_official") else {}
    loss = get_loss(name, softmax=True, to_onehot_y=True, **kwargs)
    logits, labels = _segmentation(3)
    value = loss(logits, labels)
    value.backward()
    assert value.shape == () and torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_names_map_to_configured_modules():
    assert type(get_loss("ce")) is CrossEntropyLoss
    assert get_loss("ce", sigmoid=True).sigmoid
    assert type(get_loss("Focal", gamma=0.5)) is FocalLoss and get_loss("focal", gamma=0.5).gamma == 0.5
    ldam = get_loss("ldam", class_counts=COUNTS, max_m=0.3, s=10)
    assert type(ldam) is LDAMLoss and (ldam.max_m, ldam.s) == (0.3, 10.0)
    assert type(get_loss("lmf", class_counts=COUNTS, alpha=1.0, beta=1.0)) is LMFLoss
    official = get_loss("lmf_official", class_counts=COUNTS)
    assert type(official) is LMFLoss and official.weighting == "official" and official.alpha == 1.5
    with pytest.raises(ValueError, match="set by the loss name"):
        get_loss("lmf_official", class_counts=COUNTS, weighting="standard")
    dice, jaccard = get_loss("dice", softmax=True), get_loss("jaccard", softmax=True)
    assert isinstance(dice, DiceLoss) and not dice.jaccard and jaccard.jaccard and jaccard.softmax
    tversky = get_loss("tversky", sigmoid=True)
    assert isinstance(tversky, TverskyLoss) and (tversky.alpha, tversky.beta) == (0.3, 0.7)
    assert get_loss("tversky", alpha=0.5, beta=0.5).alpha == 0.5
    ftl = get_loss("focal_tversky", softmax=True, include_background=False, gamma=1.0)
    assert type(ftl) is FocalTverskyLoss and not ftl.include_background and ftl.gamma == 1.0
    combo = get_loss("combo", sigmoid=True, weight=[2.0], alpha=0.3)
    assert type(combo) is ComboLoss and combo.alpha == 0.3 and combo.weight.tolist() == [2.0]
    adaptive = get_loss("all", softmax=True, to_onehot_y=True, delta=0.2, smooth_nr=0.0, batch=True)
    assert type(adaptive) is AdaptiveLogarithmicLoss and adaptive.delta == 0.2
    assert isinstance(adaptive.loss, DiceLoss) and adaptive.loss.batch and adaptive.loss.to_onehot_y


def test_all_applies_to_what_the_dice_loss_returns():
    logits, labels = _segmentation(3)
    unreduced = get_loss("all", softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    assert unreduced.shape == (2, 3, 1, 1)
    reduced = get_loss("all", softmax=True, to_onehot_y=True)(logits, labels)
    dice = DiceLoss(softmax=True, to_onehot_y=True)(logits, labels)
    expected = AdaptiveLogarithmicLoss(DiceLoss(softmax=True, to_onehot_y=True))(logits, labels)
    assert reduced.item() == pytest.approx(expected.item()) and reduced.item() != pytest.approx(dice.item())


def test_common_keywords_not_used_by_a_loss_are_dropped():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(get_loss("focal", class_counts=COUNTS, weight=None)) is FocalLoss
        assert isinstance(get_loss("dice", class_counts=COUNTS, weight=None, sigmoid=True), DiceLoss)
    with pytest.warns(UserWarning, match="class weights are not used"):
        get_loss("dice", weight=WEIGHT, softmax=True)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("cross_entropy", {}, "unknown loss name"),
        ("ldam", {}, "needs class_counts"),
        ("focal", {"sigmoid": True, "softmax": True}, "sigmoid=True and softmax=True contradict"),
        ("focal", {"softmax": False}, "takes logits"),
        ("focal", {"gammma": 2.0}, r"unknown keyword\(s\) \['gammma'\].*'gamma'"),
        ("dice", {"omega": 10.0}, "unknown keyword"),
        ("jaccard", {"jaccard": False}, "set by the loss name"),
        ("all", {"gamma": 2.0}, "unknown keyword"),
    ],
)
def test_bad_requests_raise_clear_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_loss(name, **kwargs)


def _kwargs_for(name, channels):
    kwargs = {"class_counts": COUNTS} if name in ("ldam", "lmf", "lmf_official") else {}
    if channels == 1:
        return {"sigmoid": True, **kwargs}
    return {"softmax": True, "to_onehot_y": True, **kwargs}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_an_empty_batch_gives_zero_loss_and_zero_gradient_in_every_loss(name, channels, reduction):
    """One rule for all: B = 0 gives 0 (not nan) with a zero gradient (classification and segmentation)."""
    if channels == 1 and name in ("ldam", "lmf", "lmf_official"):
        return  # softmax-only losses
    loss = get_loss(name, reduction=reduction, **_kwargs_for(name, channels))
    for shape in ((0, channels), (0, channels, 4, 4)):
        if len(shape) == 2 and name not in ("ce", "focal", "ldam", "lmf", "lmf_official"):
            continue  # overlap losses are for images
        logits = torch.randn(*shape, requires_grad=True)
        target = torch.zeros(0, 1, *shape[2:])
        value = loss(logits, target)
        value.backward()
        assert value.shape == () and value.item() == 0.0, (name, shape, value)
        assert logits.grad is not None and logits.grad.shape == logits.shape


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_non_integral_labels_are_refused_not_truncated(name):
    """[0., 1.9] used to score as [0, 1]; now a ValueError naming the problem."""
    loss = get_loss(name, **_kwargs_for(name, 3))
    labels = torch.zeros(2, 1, 4, 4)
    labels[1, 0, 0, 0] = 1.9
    with pytest.raises(ValueError, match=r"non-integral class label 1\.9"):
        loss(torch.randn(2, 3, 4, 4), labels)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_labels_beyond_the_class_count_are_refused(name):
    loss = get_loss(name, **_kwargs_for(name, 3))
    labels = torch.zeros(2, 1, 4, 4)
    labels[0, 0, 1, 1] = 1e9  # no huge allocation, a clear error
    with pytest.raises(ValueError, match=r"class index 1000000000; expected indices in \[0, 2\]"):
        loss(torch.randn(2, 3, 4, 4), labels)


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if n not in ("ldam", "lmf", "lmf_official")])
def test_masks_outside_the_unit_interval_are_refused(name):
    """0/255 masks: get_loss('all') returned a negative loss; every loss now refuses them."""
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float() * 255
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        get_loss(name, sigmoid=True)(torch.randn(2, 1, 4, 4), mask)


def test_monai_losses_keep_monai_values():
    logits, labels = _segmentation(3)
    for name, reference in (("dice", DiceLoss), ("tversky", TverskyLoss)):
        ours = get_loss(name, softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7) if name == "tversky" else None
        ours = ours or get_loss(name, softmax=True, to_onehot_y=True)
        kwargs = {"alpha": 0.3, "beta": 0.7} if name == "tversky" else {}
        expected = reference(softmax=True, to_onehot_y=True, **kwargs)(logits, labels)
        torch.testing.assert_close(ours(logits, labels), expected)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize(
    ("flags", "extra", "named"),
    [
        ({"sigmoid": True, "softmax": True}, {}, "sigmoid=True and softmax=True"),
        ({"sigmoid": True}, {"other_act": torch.tanh}, "sigmoid=True and other_act"),
        ({"softmax": True}, {"other_act": torch.tanh}, "softmax=True and other_act"),
    ],
)
def test_contradictory_activation_flags_are_refused_for_every_loss(name, flags, extra, named):
    """Every loss name: two activations end in one UserError naming both flags (never one silently dropped)."""
    kwargs = {"class_counts": COUNTS} if name in ("ldam", "lmf", "lmf_official") else {}
    with pytest.raises(LossSettingError, match=rf"{re.escape(named)} contradict each other"):
        get_loss(name, **flags, **kwargs, **extra)
    assert issubclass(LossSettingError, UserError) and issubclass(LossSettingError, ValueError)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"sigmoid": True, "use_softmax": True}, "sigmoid=True and use_softmax=True"),
        ({"softmax": True, "use_softmax": False}, "softmax=True and use_softmax=False"),
    ],
)
def test_focal_use_softmax_against_the_bundle_activation_is_refused(flags, named):
    """The nuclei bundle calls get_loss(name, sigmoid=True, **loss_kwargs); loss_kwargs={use_softmax: true} used to
    drop sigmoid=True and give a softmax over one channel: a loss of exactly 0 with zero gradient."""
    with pytest.raises(LossSettingError, match=rf"{re.escape(named)} contradict each other"):
        get_loss("focal", **flags)


def test_focal_use_softmax_agreeing_with_the_bundle_activation_is_accepted():
    logits = torch.randn(2, 1, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    loss = get_loss("focal", sigmoid=True, use_softmax=False)
    assert loss.monai_semantics and loss.sigmoid
    assert loss(logits, mask) > 0
    assert get_loss("focal", softmax=True, use_softmax=True).monai_semantics
    assert get_loss("focal", sigmoid=True, use_softmax=None).sigmoid  # None: not given


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky", "combo", "all"])
def test_a_softmax_over_one_channel_is_refused(name):
    """MONAI only warns and uses the raw logits (Dice family); the loss would be constant with zero gradient."""
    loss = get_loss(name, softmax=True)
    with pytest.raises(LossSettingError, match=r"softmax=True on a one-channel output"):
        loss(torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float())


def test_monai_focal_softmax_over_one_channel_is_refused():
    with pytest.raises(LossSettingError, match=r"use_softmax=True on a one-channel output"):
        FocalLoss(use_softmax=True)(torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float())
    with pytest.raises(ValueError, match="at least 2 channels"):  # the package's softmax losses refused it already
        get_loss("focal")(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("name", ["ce", "focal", "ldam", "lmf", "lmf_official", "combo"])
def test_class_weights_alpha_and_margins_follow_float64_input(name):
    """Buffers are stored in float64 and cast to the input's dtype at use: float64 input matches a float64
    reference to 1e-12 on sums (float32 buffers were 1e-6 off ``F.cross_entropy``)."""
    weight = [1 / 3, 2 / 3, 1.1]
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (64,), generator=gen)
    kwargs = {"class_counts": COUNTS} if name in ("ldam", "lmf", "lmf_official") else {}
    if name == "combo":
        kwargs["softmax"] = True
    loss = get_loss(name, weight=weight, reduction="sum", **kwargs)
    for buffer in (loss.weight, getattr(loss, "margins", None)):
        assert buffer is None or buffer.dtype == torch.float64
    if name == "ce":
        expected = F.cross_entropy(logits, labels, weight=torch.tensor(weight, dtype=torch.float64), reduction="sum")
        assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-13)
    # float64 in, float64 out, and the same value as the loss built on float64 vectors
    assert loss(logits, labels).dtype == torch.float64
    float32 = loss(logits.float(), labels)
    assert float32.dtype == torch.float32
    assert float32.item() == pytest.approx(loss(logits, labels).item(), rel=1e-5)


def test_focal_alpha_vector_follows_float64_input():
    alpha = [1 / 3, 2 / 3, 0.1]
    logits, labels = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 3, (16,))
    loss = FocalLoss(gamma=0.0, alpha=alpha, sigmoid=False, reduction="none")
    assert loss.alpha_vector.dtype == torch.float64
    expected = F.cross_entropy(logits, labels, reduction="none") * torch.tensor(alpha, dtype=torch.float64)[labels]
    torch.testing.assert_close(loss(logits, labels), expected, rtol=1e-14, atol=0)
