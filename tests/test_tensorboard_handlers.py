"""LazySummaryWriter, write_hparams, TensorBoardMetrics and ClassificationTensorBoard, read back with EventAccumulator.

The classification evaluator is the one of ``test_classification_handlers``: every image holds the log of the class
probabilities we want, so after softmax ``pred`` is the table PROBS, with the confusion matrix
[[2, 1, 0], [0, 1, 0], [1, 0, 1]] (rows true, columns predicted).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.metrics import compute_roc_auc
from monai.transforms import Activationsd, AsDiscreted, Compose
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from torch import nn

from monai_imbalance.handlers import (
    ClassificationTensorBoard,
    LazySummaryWriter,
    MacroF1,
    TensorBoardMetrics,
    phase_tag,
    roc_curve,
    write_hparams,
)

PROBS = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.5, 0.1, 0.4], [0.6, 0.3, 0.1]])
LABELS = [0, 0, 1, 2, 2, 0]
NAMES = ["nv", "mel", "basal cell"]


def _evaluator(handlers, key_metric=None, postprocessing=None):
    data = [
        {"image": torch.log(torch.tensor(p, dtype=torch.float32)), "label": torch.tensor(label)}
        for p, label in zip(PROBS, LABELS, strict=True)
    ]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=4, shuffle=False, num_workers=0),
        network=nn.Flatten(),
        postprocessing=postprocessing or Activationsd(keys="pred", softmax=True),
        key_val_metric=key_metric,
        val_handlers=handlers,
    )


def _events(folder):
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    events.Reload()
    return events


def _event_files(folder):
    return sorted(folder.rglob("events.out.tfevents.*"))


def test_lazy_writer_creates_no_file_until_the_first_write(tmp_path):
    writer = LazySummaryWriter(tmp_path / "logs")
    copy.deepcopy(writer), pickle.dumps(writer), repr(writer)  # none of these writes
    writer.flush()
    writer.close()
    assert not writer.created and not (tmp_path / "logs").exists()

    writer.add_scalar("train/loss", 0.5, 1)
    writer.close()
    assert writer.created and len(_event_files(tmp_path)) == 1
    assert _events(tmp_path / "logs").Scalars("train/loss")[0].value == pytest.approx(0.5)


def test_write_hparams_writes_one_session_start_into_the_run_folder(tmp_path):
    writer = LazySummaryWriter(tmp_path / "logs")
    settings = {"loss": "lmf", "seed": 1, "lr": 1e-3, "augment": True, "class_weights": None, "sizes": [28, 28]}
    flat = write_hparams(writer, {**settings, "overrides": {"num_epochs": 2}})
    writer.close()
    assert not (tmp_path / "logs").exists()  # kept until the first write
    writer.add_scalar("val/f1_macro", 0.5, 1)
    writer.close()
    assert flat["sizes"] == "[28, 28]" and flat["class_weights"] == "null" and flat["overrides/num_epochs"] == 2

    assert [p.parent for p in _event_files(tmp_path)] == [tmp_path / "logs"]  # no sub-run as add_hparams makes
    events = _events(tmp_path / "logs")
    # the session start only: an experiment summary would hide the metrics and the other runs' settings
    hparams = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert list(hparams) == [hparams_metadata.SESSION_START_INFO_TAG]
    content = hparams[hparams_metadata.SESSION_START_INFO_TAG]
    recorded = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
    assert recorded["loss"].string_value == "lmf" and recorded["seed"].number_value == 1
    assert recorded["augment"].bool_value is True and recorded["overrides/num_epochs"].number_value == 2
    with pytest.raises(TypeError, match="mapping"):
        write_hparams(writer, [("loss", "ce")])


def test_phase_tag_drops_the_phase_prefix():
    assert phase_tag("val", "val_f1_macro") == "val/f1_macro"
    assert phase_tag("val", "jaccard") == "val/jaccard"
    assert phase_tag("test", "val_auc") == "test/val_auc"  # another phase's prefix is kept
    assert phase_tag("val", "val_") == "val/val_"


def test_tensorboard_metrics_writes_the_engine_metrics_under_the_phase(tmp_path):
    writer = LazySummaryWriter(tmp_path / "logs")
    evaluator = _evaluator([TensorBoardMetrics(writer, "val")], key_metric={"val_f1_macro": MacroF1()})
    evaluator.run(global_epoch=4)
    writer.close()
    events = _events(tmp_path / "logs")
    assert events.Tags()["scalars"] == ["val/f1_macro"]
    (point,) = events.Scalars("val/f1_macro")
    assert point.step == 4 and point.value == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="without '/'"):
        TensorBoardMetrics(writer, "val/")
    with pytest.raises(ValueError, match="summary_writer is None"):
        TensorBoardMetrics(None, "val")


def test_classification_tensorboard_scores_per_class_and_curves(tmp_path):
    writer = LazySummaryWriter(tmp_path / "logs")
    evaluator = _evaluator([ClassificationTensorBoard(writer, "test", class_names=NAMES)])
    evaluator.run(global_epoch=2)
    writer.close()
    events = _events(tmp_path / "logs")
    scalars = set(events.Tags()["scalars"])
    assert all(tag.startswith("test/") for tag in scalars)

    def value(tag):
        (point,) = events.Scalars(tag)
        assert point.step == 2
        return point.value

    assert value("test/accuracy") == pytest.approx(4 / 6)
    assert value("test/balanced_accuracy") == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert value("test/f1_macro") == pytest.approx(2 / 3)
    # per class from the confusion matrix: precision = TP / column sum, recall = TP / row sum
    assert value("test/precision/nv") == pytest.approx(2 / 3) and value("test/recall/nv") == pytest.approx(2 / 3)
    assert value("test/precision/mel") == pytest.approx(1 / 2) and value("test/recall/mel") == pytest.approx(1.0)
    assert value("test/precision/basal_cell") == pytest.approx(1.0)  # the space of the name becomes _
    assert value("test/recall/basal_cell") == pytest.approx(1 / 2) and value("test/f1/basal_cell") == pytest.approx(
        2 / 3
    )
    assert value("test/auc/mel") == pytest.approx(1.0)  # mel's probability ranks its one image first
    assert "test/specificity" not in scalars  # binary only
    assert {f"test/pr_curve/{n}" for n in ("nv", "mel", "basal_cell")} <= set(events.Tags()["tensors"])
    assert events.Images("test/roc_curve")[0].step == 2


def test_classification_tensorboard_without_probabilities_writes_no_curves(tmp_path):
    writer = LazySummaryWriter(tmp_path / "logs")
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="pred", argmax=True)])
    handler = ClassificationTensorBoard(writer, "val", class_names=NAMES, curves=True)
    with pytest.warns(UserWarning, match="AUC"):
        _evaluator([handler], postprocessing=post).run()
    writer.close()
    events = _events(tmp_path / "logs")
    assert events.Scalars("val/f1_macro")[0].value == pytest.approx(2 / 3)
    assert "val/auc" not in events.Tags()["scalars"] and not events.Tags()["tensors"] and not events.Tags()["images"]


def test_roc_curve_matches_sklearn_and_its_area_is_the_auc():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(40), 1)  # ties
    positive = rng.random(40) < 0.3
    fpr, tpr = roc_curve(torch.tensor(scores), torch.tensor(positive))
    expected_fpr, expected_tpr, _ = sklearn_metrics.roc_curve(positive, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), expected_fpr)
    np.testing.assert_allclose(tpr.numpy(), expected_tpr)
    auc = float(compute_roc_auc(torch.tensor(scores), torch.tensor(positive).long()))
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(auc)
    with pytest.raises(ValueError, match="one positive and one negative"):
        roc_curve(torch.tensor([0.1, 0.2]), torch.tensor([True, True]))
