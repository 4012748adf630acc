"""SegmentationUncertaintyHandler: pixel uncertainty-error AUROC and image-level referral against numpy/sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from monai_imbalance.handlers import SegmentationUncertaintyHandler, image_uncertainty
from monai_imbalance.inferers import MCDropoutInferer


def _batch(seed: int, n: int = 5, size: int = 12):
    g = torch.Generator().manual_seed(seed)
    probs = (torch.randint(0, 65, (n, 1, size, size), generator=g) / 64.0).float()  # on a grid: exact pixel AUC
    labels = (torch.rand(n, 1, size, size, generator=g) < probs * 0.8 + 0.1).float()
    fov = torch.zeros(n, 1, size, size)
    fov[..., 1:-1, 2:-2] = 1
    return probs, labels, fov


def _run(handler, probs, labels, fov, batch_size=2, inferer=None):
    def step(engine, batch):
        p, y, m = batch
        return [{"pred": a, "label": b, "fov": c} for a, b, c in zip(p, y, m, strict=True)]

    engine = Engine(step)
    if inferer is not None:
        engine.inferer = inferer
    handler.attach(engine)
    batches = [
        (probs[i : i + batch_size], labels[i : i + batch_size], fov[i : i + batch_size])
        for i in range(0, len(probs), batch_size)
    ]
    engine.run(batches, max_epochs=1)
    return engine


def test_pixel_auroc_and_image_referral_match_numpy(tmp_path):
    probs, labels, fov = _batch(0)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test": {"dice": 0.7}}))
    handler = SegmentationUncertaintyHandler(
        path, key="test", threshold=0.5, mask_transform=lambda out: [d["fov"] for d in out]
    )
    _run(handler, probs, labels, fov)
    test = json.loads(path.read_text())["test"]
    assert test["dice"] == 0.7  # the report's entry is extended
    p, y, m = probs.numpy(), labels.numpy() > 0.5, fov.numpy() > 0
    fg = p >= 0.5
    u = 1 - np.maximum(p, 1 - p)
    wrong = fg != y
    expected_auc = roc_auc_score(wrong[m], u[m])
    assert test["pixel_uncertainty_auroc"] == pytest.approx(expected_auc, abs=1e-12)
    dice, image_u = [], []
    for i in range(len(p)):
        f, t, k = fg[i] & m[i], y[i] & m[i], m[i]
        tp, fp, fn = (f & t).sum(), (f & ~t).sum(), (~f & t & k).sum()
        dice.append(1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
        region = f if f.any() else k
        image_u.append(u[i][region].mean())
    order = np.argsort(image_u, kind="stable")
    for rate, row in test["referral"].items():
        keep = order[: 5 - int(np.floor(float(rate) * 5 + 0.5))]
        assert row["num_retained"] == len(keep)
        assert row["dice"] == pytest.approx(np.mean(np.array(dice)[keep]))
    assert test["uncertainty_score"] == "max_probability" and test["mc_dropout"] is False
    entropy_auc = test["uncertainty_scores"]["entropy"]["pixel_uncertainty_auroc"]
    assert entropy_auc == pytest.approx(expected_auc, abs=1e-4)  # entropy is monotone in 1 - max(p, 1 - p)


def test_image_uncertainty_falls_back_to_the_field_of_view():
    u = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]])
    assert image_uncertainty(u, torch.tensor([[[True, False], [False, True]]])) == pytest.approx(0.25)
    nothing = torch.zeros(1, 2, 2, dtype=torch.bool)
    assert image_uncertainty(u, nothing) == pytest.approx(0.25)
    assert image_uncertainty(u, nothing, torch.tensor([[[False, True], [True, False]]])) == pytest.approx(0.25)
    assert image_uncertainty(u, nothing, torch.tensor([[[True, True], [False, False]]])) == pytest.approx(0.15)


def test_monte_carlo_scores_are_used(tmp_path):
    probs, labels, _ = _batch(1, n=4, size=8)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Dropout(0.3))
    inferer = MCDropoutInferer(num_samples=3, activation="sigmoid", seed=0)

    def step(engine, batch):
        p, y = batch
        mean = inferer(p, net)  # what an evaluator with the MC inferer puts in "pred"
        return [{"pred": a, "label": b} for a, b in zip(mean, y, strict=True)]

    engine = Engine(step)
    engine.inferer = inferer
    handler = SegmentationUncertaintyHandler(tmp_path / "m.json", score="mutual_information")
    handler.attach(engine)
    engine.run([(probs[:2], labels[:2]), (probs[2:], labels[2:])], max_epochs=1)
    report = handler.last_report
    assert report["uncertainty_score"] == "mutual_information" and report["mc_dropout"] is True
    assert set(report["uncertainty_scores"]) == {"max_probability", "entropy", "mutual_information", "variance"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="uncertainty score"):
        SegmentationUncertaintyHandler("m.json", score="std")
    with pytest.raises(ValueError, match="threshold"):
        SegmentationUncertaintyHandler("m.json", threshold=1.5)
