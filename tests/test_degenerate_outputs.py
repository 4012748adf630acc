"""Degenerate outputs: one class for (almost) every image, masks that are (almost) all one class (issue 19, Why 8)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.transforms import Activationsd, CopyItemsd
from torch import nn

from monai_imbalance.handlers import ClassificationReportHandler, MetricsReportHandler
from monai_imbalance.metrics import (
    DEGENERATE_SHARE,
    foreground_counts,
    mask_share_warnings,
    masked_output_transform,
    prediction_share_warnings,
)
from monai_imbalance.reporting import print_metrics_table


# --- classification ------------------------------------------------------------------------------------------------
def test_one_class_for_99_percent_of_the_predictions_is_named():
    # 100 samples, labels 70/20/10, 99 predicted 'nv'
    cm = np.zeros((3, 3), dtype=int)
    cm[0, 0], cm[1, 0], cm[2, 0], cm[2, 2] = 70, 20, 9, 1
    (message,) = prediction_share_warnings(cm, ["nv", "mel", "bcc"])
    assert "class 'nv' takes 99.0% of the 100 predictions (labels: 70.0%)" in message
    cm[2, 0], cm[2, 2] = 8, 2  # 98%: no warning
    assert prediction_share_warnings(cm, ["nv", "mel", "bcc"]) == []
    assert DEGENERATE_SHARE == 0.99


def test_no_warning_when_the_labels_are_as_skewed_or_too_few_samples():
    assert prediction_share_warnings([[100, 0], [0, 0]]) == []  # the predictions follow the data
    assert prediction_share_warnings([[1, 0], [0, 0]]) == []  # one sample says nothing
    assert prediction_share_warnings([[0, 1], [0, 1]]) == ["degenerate predictions: class '1' takes 100.0% of the 2 "
                                                            "predictions (labels: 50.0%); the network may predict one "
                                                            "class for every image"]  # fmt: skip
    with pytest.raises(ValueError, match="square"):
        prediction_share_warnings([[1, 2, 3]])
    with pytest.raises(ValueError, match="share"):
        prediction_share_warnings([[1, 0], [0, 1]], share=0.3)


# --- segmentation --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("predicted", "labelled", "pixels", "expected"),
    [
        (0, 1200, 10000, "all background"),
        (12, 1200, 10000, "all background"),  # 1% of the labels' foreground
        (13, 1200, 10000, None),
        (10000, 1200, 10000, "all foreground"),
        (9912, 1200, 10000, "all foreground"),  # 88 background pixels = 1% of 8800
        (9911, 1200, 10000, None),
        (0, 0, 10000, None),  # nothing to find: an empty prediction is right
        (10000, 10000, 10000, None),
        (0, 0, 0, None),
        (50, 60, 10000, None),  # small structures: 0.5% predicted of 0.6% labelled is no warning
    ],
)
def test_mask_share_rule(predicted, labelled, pixels, expected):
    messages = mask_share_warnings(predicted, labelled, pixels)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0]
        assert f"labels {labelled / pixels:.2%}" in messages[0]


def test_foreground_counts_binary_fov_multiclass_and_decollated():
    pred = torch.tensor([[[[0.9, 0.2], [0.6, 0.4]]]])  # (1, 1, 2, 2): foreground at 2 pixels
    label = torch.tensor([[[[1.0, 1.0], [-1.0, 0.0]]]])  # one pixel outside the FOV (-1)
    assert foreground_counts(pred, label, ignore_index=-1).tolist() == [1, 2, 3]
    assert foreground_counts(pred, label.clamp_min(0)).tolist() == [2, 2, 4]
    assert foreground_counts(pred, label.clamp_min(0), threshold=0.95).tolist() == [0, 2, 4]
    assert foreground_counts([pred[0], pred[0]], [label[0], label[0]], ignore_index=-1).tolist() == [2, 4, 6]
    assert foreground_counts([], []).tolist() == [0, 0, 0]
    scores = torch.tensor([[[[2.0, 0.0]], [[1.0, 3.0]], [[0.0, 1.0]]]])  # (1, 3, 1, 2): argmax 0 and 1
    one_hot = torch.tensor([[[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]]]])  # second pixel all zero: not counted
    assert foreground_counts(scores, one_hot).tolist() == [0, 1, 1]
    assert foreground_counts(scores, torch.tensor([[[[2, 0]]]])).tolist() == [1, 1, 2]


# --- in the report handlers, the log, metrics.json and the final table --------------------------------------------
def _classification_evaluator(handler):
    logits = torch.tensor([[3.0, 0.0, 0.0]] * 5)  # every image predicted class 0
    labels = [0, 1, 2, 0, 1]
    data = [{"image": x, "label": torch.tensor(y)} for x, y in zip(logits, labels, strict=True)]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=2),
        network=nn.Identity(),
        postprocessing=Activationsd(keys="pred", softmax=True),
        val_handlers=[handler],
    )


def test_classification_report_handler_warns_in_json_log_and_table(tmp_path, caplog, capsys):
    path = tmp_path / "metrics.json"
    handler = ClassificationReportHandler(path, key="test", class_names=["nv", "mel", "bcc"])
    with caplog.at_level(logging.WARNING):
        _classification_evaluator(handler).run()
    (message,) = json.loads(path.read_text())["test"]["warnings"]
    assert "class 'nv' takes 100.0% of the 5 predictions (labels: 40.0%)" in message
    assert message in caplog.text
    text = print_metrics_table(path, ["test"])
    assert f"WARNING:\n  - {message}" in text and message in capsys.readouterr().out


def _segmentation_evaluator(handler, probability):
    labels = torch.zeros(3, 1, 8, 8)
    labels[:, :, 2:5, 2:5] = 1
    data = [{"image": torch.full((1, 8, 8), probability), "label": y} for y in labels]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=2),
        network=nn.Identity(),
        val_handlers=[handler],
    )


@pytest.mark.parametrize(("probability", "expected"), [(0.1, "all background"), (0.9, "all foreground"), (None, None)])
def test_metrics_report_handler_warns_about_degenerate_masks(tmp_path, caplog, probability, expected):
    path = tmp_path / "metrics.json"
    handler = MetricsReportHandler(path, key="test", foreground_transform=from_engine(["pred", "label"]))
    if probability is None:  # a perfect prediction
        labels = torch.zeros(2, 1, 8, 8)
        labels[:, :, 2:5, 2:5] = 1
        data = [{"image": y.clone(), "label": y} for y in labels]
        evaluator = SupervisedEvaluator(torch.device("cpu"), DataLoader(Dataset(data), batch_size=2), nn.Identity(),
                                        val_handlers=[handler])  # fmt: skip
    else:
        evaluator = _segmentation_evaluator(handler, probability)
    with caplog.at_level(logging.WARNING):
        evaluator.run()
    report = json.loads(path.read_text())["test"]
    assert report["foreground_share_labels"] == pytest.approx(9 / 64)
    if expected is None:
        assert report["warnings"] == [] and report["foreground_share_predicted"] == pytest.approx(9 / 64)
        assert "degenerate" not in caplog.text
    else:
        (message,) = report["warnings"]
        assert expected in message and message in caplog.text
        assert report["foreground_share_predicted"] == (0.0 if probability < 0.5 else 1.0)


def test_metrics_report_handler_counts_only_the_field_of_view(tmp_path):
    """DRIVE: the metrics' output transform writes -1 outside the FOV; those pixels do not count."""
    labels = torch.zeros(2, 1, 4, 4)
    labels[:, :, :2, :2] = 1
    fov = torch.ones(2, 1, 4, 4)
    fov[..., 3] = 0
    data = [{"image": torch.full((1, 4, 4), 0.9), "label": y, "mask": m} for y, m in zip(labels, fov, strict=True)]
    handler = MetricsReportHandler(
        tmp_path / "m.json",
        key="test",
        foreground_transform=masked_output_transform(mask_key="fov", ignore_index=-1),
        ignore_index=-1,
    )
    SupervisedEvaluator(
        torch.device("cpu"),
        DataLoader(Dataset(data), batch_size=2),
        nn.Identity(),
        postprocessing=CopyItemsd(keys="mask", names="fov"),
        val_handlers=[handler],
    ).run()
    report = json.loads((tmp_path / "m.json").read_text())["test"]
    assert report["foreground_share_predicted"] == 1.0 and report["foreground_share_labels"] == pytest.approx(4 / 12)
    assert "all foreground" in report["warnings"][0]
