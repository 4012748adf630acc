"""MacroF1 / ClassificationReportHandler / PredictionCSVWriter on a tiny SupervisedEvaluator with known outputs.

The "network" flattens its input, and every image holds the log of the class probabilities we want, so
after softmax the evaluator's ``pred`` is exactly the probability table below.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd, AsDiscreted, Compose
from PIL import Image
from torch import nn

from monai_imbalance.handlers.classification_metric import BalancedAccuracy, ClassificationScore, MacroF1
from monai_imbalance.handlers.classification_report import ClassificationReportHandler, plot_confusion_matrix
from monai_imbalance.handlers.prediction_csv import PredictionCSVWriter
from monai_imbalance.inferers.mc_dropout import MCDropoutInferer
from monai_imbalance.reporting import update_metrics_json

# argmax predictions [0, 1, 1, 2, 0, 0] for labels [0, 0, 1, 2, 2, 0]: confusion [[2, 1, 0], [0, 1, 0], [1, 0, 1]],
# per-class F1 2/3 each, balanced accuracy (2/3 + 1 + 1/2) / 3, accuracy 4/6
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.1, 0.7],
        [0.5, 0.1, 0.4],
        [0.6, 0.3, 0.1],
    ]
)
LABELS = [0, 0, 1, 2, 2, 0]
NAMES = ["nv", "mel", "bcc"]


def _data(with_ids: bool = True, one_hot_ready: bool = False):
    items = []
    for i, (p, label) in enumerate(zip(PROBS, LABELS, strict=True)):
        item = {"image": torch.log(torch.tensor(p, dtype=torch.float32)), "label": torch.tensor(label)}
        if one_hot_ready:
            item["label"] = item["label"].reshape(1)
        if with_ids:
            item["id"] = f"case{i}"
        items.append(item)
    return items


def _evaluator(data, handlers, key_metric=None, postprocessing=None, inferer=None, network=None, batch_size=4):
    loader = DataLoader(Dataset(data), batch_size=batch_size, shuffle=False, num_workers=0)
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=network if network is not None else nn.Flatten(),
        inferer=inferer,
        postprocessing=postprocessing if postprocessing is not None else Activationsd(keys="pred", softmax=True),
        key_val_metric=key_metric,
        val_handlers=handlers,
    )


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_macro_f1_and_balanced_accuracy_as_engine_metrics():
    evaluator = _evaluator(_data(), handlers=None, key_metric={"val_f1": MacroF1(num_classes=3)})
    BalancedAccuracy().attach(evaluator, "val_bacc")
    ClassificationScore("auc").attach(evaluator, "val_auc")
    evaluator.run()
    assert evaluator.state.metrics["val_f1"] == pytest.approx(2 / 3)
    assert evaluator.state.metrics["val_bacc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert 0.0 <= evaluator.state.metrics["val_auc"] <= 1.0
    assert evaluator.state.best_metric == pytest.approx(2 / 3)  # the key metric selects the best epoch


def test_metrics_accept_one_hot_labels():
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=3)])
    evaluator = _evaluator(_data(one_hot_ready=True), None, key_metric={"f1": MacroF1()}, postprocessing=post)
    evaluator.run()
    assert evaluator.state.metrics["f1"] == pytest.approx(2 / 3)


def test_metric_refuses_logits():
    evaluator = _evaluator(_data(), None, key_metric={"f1": MacroF1()}, postprocessing=lambda x: x)
    with pytest.raises(ValueError, match="softmax"):
        evaluator.run()


def test_report_handler_writes_json_png_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    metrics_file = tmp_path / "out" / "metrics.json"
    update_metrics_json(metrics_file, {"decision_threshold": {"threshold": 0.3}})  # another handler's entry
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    handler = ClassificationReportHandler(
        metrics_file,
        key="test",
        figure_file=tmp_path / "out" / "confusion_matrix.png",
        summary_writer=writer,
        class_names=NAMES,
    )
    evaluator = _evaluator(_data(), [handler])
    evaluator.run(global_epoch=3)
    writer.close()

    content = json.loads(metrics_file.read_text())
    assert content["decision_threshold"] == {"threshold": 0.3}  # kept
    report = content["test"]
    assert report["epoch"] == 3 and report["num_samples"] == 6 and report["class_names"] == NAMES
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert report["f1_macro"] == pytest.approx(2 / 3)
    assert report["precision_macro"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert report["recall_macro"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert report["per_class"]["mel"]["auc"] == pytest.approx(1.0)
    assert report["per_class"]["bcc"]["support"] == 2
    assert handler.last_report["f1_macro"] == pytest.approx(2 / 3)

    with Image.open(tmp_path / "out" / "confusion_matrix.png") as png:
        assert png.format == "PNG" and min(png.size) > 100
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert events.Images("test/confusion_matrix")[0].step == 3
    assert {"test/accuracy", "test/balanced_accuracy", "test/f1_macro", "test/auc"} <= set(events.Tags()["scalars"])
    assert events.Scalars("test/f1_macro")[0].value == pytest.approx(2 / 3)


def test_report_handler_save_best_only_and_decision_threshold(tmp_path):
    binary = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    data = [
        {"image": torch.log(torch.tensor(p, dtype=torch.float32)), "label": torch.tensor(y)}
        for p, y in zip(binary, [0, 1, 1, 1], strict=True)
    ]
    handler = ClassificationReportHandler(tmp_path / "metrics.json", key="validation", decision_threshold=0.3)
    best_only = ClassificationReportHandler(tmp_path / "best.json", key="validation", save_best_only=True)
    evaluator = _evaluator(data, [handler, best_only], key_metric={"f1": MacroF1()})
    evaluator.run(global_epoch=1)
    evaluator.run(global_epoch=2)  # same metric: not better, epoch 1 stays the best
    report = json.loads((tmp_path / "metrics.json").read_text())["validation"]
    assert report["epoch"] == 2 and report["decision_threshold"] == 0.3
    assert report["accuracy"] == 1.0 and report["recall_positive"] == 1.0 and report["specificity"] == 1.0
    assert json.loads((tmp_path / "best.json").read_text())["validation"]["epoch"] == 1
    assert best_only.last_report["epoch"] == 2  # computed every run, written only for the best


def test_report_handler_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="2 class_names for num_classes=3"):
        ClassificationReportHandler(tmp_path / "m.json", class_names=["a", "b"], num_classes=3)
    with pytest.raises(ValueError, match="binary problems only"):
        ClassificationReportHandler(tmp_path / "m.json", num_classes=3, decision_threshold=0.5)
    with pytest.raises(ValueError, match="key"):
        ClassificationReportHandler(tmp_path / "m.json", key="")
    with pytest.raises(ValueError, match="needs a key metric"):
        _evaluator(_data(), [ClassificationReportHandler(tmp_path / "m.json", save_best_only=True)]).run()
    with pytest.raises(ValueError, match="save_rank=1"):
        _evaluator(_data(), [ClassificationReportHandler(tmp_path / "m.json", save_rank=1)]).run()


def test_plot_confusion_matrix_annotates_the_counts():
    figure = plot_confusion_matrix([[2, 1, 0], [0, 1, 0], [1, 0, 1]], NAMES, title="t")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["2", "1", "0", "0", "1", "0", "1", "0", "1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix([[1, 2]])


def test_prediction_csv_rows(tmp_path):
    path = tmp_path / "predictions.csv"
    _evaluator(_data(), [PredictionCSVWriter(path, class_names=NAMES)]).run()
    rows = _read_csv(path)
    assert rows[0] == ["id", "predicted_class", "prob_nv", "prob_mel", "prob_bcc"]
    assert [r[0] for r in rows[1:]] == [f"case{i}" for i in range(6)]
    assert [r[1] for r in rows[1:]] == ["nv", "mel", "mel", "bcc", "nv", "nv"]
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], dtype=float), PROBS, atol=1e-5)


def test_prediction_csv_ids_from_file_names_or_positions(tmp_path):
    data = _data(with_ids=False)
    for i, item in enumerate(data):
        item["image"] = MetaTensor(item["image"], meta={"filename_or_obj": f"/data/img{i}.png"})
    _evaluator(data, [PredictionCSVWriter(tmp_path / "named.csv")]).run()
    rows = _read_csv(tmp_path / "named.csv")
    assert [r[0] for r in rows[1:]] == [f"/data/img{i}.png" for i in range(6)]
    assert rows[0][2:] == ["prob_0", "prob_1", "prob_2"] and rows[1][1] == "0"  # class indices without names
    _evaluator(_data(with_ids=False), [PredictionCSVWriter(tmp_path / "plain.csv")], batch_size=4).run()
    assert [r[0] for r in _read_csv(tmp_path / "plain.csv")[1:]] == [str(i) for i in range(6)]


def test_prediction_csv_with_mc_dropout_uncertainty(tmp_path):
    # dropout rate 0: every pass is identical, so variance and mutual information are 0 and the entropy is H(p)
    network = nn.Sequential(nn.Flatten(), nn.Dropout(p=0.0))
    evaluator = SupervisedEvaluator(  # the MC output is already a probability: no softmax in postprocessing
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_data()), batch_size=4),
        network=network,
        inferer=MCDropoutInferer(num_samples=3, activation="softmax"),
        val_handlers=[PredictionCSVWriter(tmp_path / "mc.csv", class_names=NAMES)],
    )
    evaluator.run()
    rows = _read_csv(tmp_path / "mc.csv")
    assert rows[0] == [
        "id",
        "predicted_class",
        "prob_nv",
        "prob_mel",
        "prob_bcc",
        "entropy",
        "mutual_information",
        "variance_nv",
        "variance_mel",
        "variance_bcc",
    ]
    values = np.array([r[2:] for r in rows[1:]], dtype=float)
    np.testing.assert_allclose(values[:, :3], PROBS, atol=1e-5)
    np.testing.assert_allclose(values[:, 3], -(PROBS * np.log(PROBS)).sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(values[:, 4:], 0.0, atol=1e-6)


def test_prediction_csv_mc_dropout_with_real_dropout(tmp_path):
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(3, 3), nn.Dropout(p=0.5))
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_data()), batch_size=4),
        network=network,
        inferer=MCDropoutInferer(num_samples=8, activation="softmax", seed=0),
        val_handlers=[PredictionCSVWriter(tmp_path / "mc.csv")],
    )
    evaluator.run()
    values = np.array([r[2:] for r in _read_csv(tmp_path / "mc.csv")[1:]], dtype=float)
    assert values.shape == (6, 3 + 2 + 3)
    np.testing.assert_allclose(values[:, :3].sum(axis=1), 1.0, atol=1e-4)
    assert (values[:, 4] >= 0).all() and (values[:, 4] > 1e-4).any()  # passes disagree: mutual information > 0
    assert (values[:, 5:] > 0).any()


def test_prediction_csv_refuses_to_overwrite(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("user data\n")
    with pytest.raises(FileExistsError, match=r"predictions\.csv already exists.*overwrite=True"):
        PredictionCSVWriter(path)
    assert path.read_text() == "user data\n"
    writer = PredictionCSVWriter(path, overwrite=True)
    evaluator = _evaluator(_data(), [writer])
    evaluator.run()
    assert len(_read_csv(path)) == 7
    fresh = tmp_path / "fresh.csv"
    own = PredictionCSVWriter(fresh)
    evaluator = _evaluator(_data(), [own])
    evaluator.run()
    evaluator.run()  # a later run of the same handler replaces its own file
    assert len(_read_csv(fresh)) == 7
    late = tmp_path / "late.csv"
    handler = PredictionCSVWriter(late)
    late.write_text("written meanwhile\n")  # someone else's file appears during the run
    with pytest.raises(FileExistsError):
        _evaluator(_data(), [handler]).run()
    assert late.read_text() == "written meanwhile\n"


def test_prediction_csv_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        PredictionCSVWriter(tmp_path / "p.csv", class_names=["a", "a"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PredictionCSVWriter(tmp_path / "p.csv", decision_threshold=2.0)
    with pytest.raises(ValueError, match="2 class_names for 3"):
        _evaluator(_data(), [PredictionCSVWriter(tmp_path / "p.csv", class_names=["a", "b"])]).run()
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("rank", [0, 1])
def test_multi_process_gathers_and_only_save_rank_writes(tmp_path, monkeypatch, rank):
    """Rank ``rank`` of 2 (simulated): this process evaluates the even samples, the other rank the odd ones.

    The gathers are replaced by functions that append the other rank's shard, so this checks what each
    handler gathers and who writes; a real 2-process gloo run of the same handlers (torch.multiprocessing,
    ~45 s here) passed too, and the bundles' torchrun test covers it end to end.
    """
    import ignite.distributed as idist
    import monai.metrics.metric

    from monai_imbalance.handlers import prediction_csv

    other = PROBS[1::2]
    remote = {
        (torch.float32, 2): torch.tensor(other, dtype=torch.float32),
        (torch.int64, 1): torch.tensor(LABELS[1::2]),
    }

    def gather(tensor, concat=True):
        return torch.cat([tensor, remote[tensor.dtype, tensor.ndim].to(tensor.dtype)])

    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    monkeypatch.setattr(idist, "get_rank", lambda: rank)
    monkeypatch.setattr(monai.metrics.metric, "evenly_divisible_all_gather", gather)
    monkeypatch.setattr(prediction_csv, "evenly_divisible_all_gather", gather)
    monkeypatch.setattr(prediction_csv, "string_list_all_gather", lambda ids: [*ids, "case1", "case3", "case5"])
    report = ClassificationReportHandler(tmp_path / "metrics.json", key="test", class_names=NAMES)
    writer = PredictionCSVWriter(tmp_path / "predictions.csv", class_names=NAMES)
    _evaluator(_data()[0::2], [report, writer], batch_size=2).run()

    assert report.last_report["num_samples"] == 6  # every rank gathers the whole split
    assert report.last_report["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    if rank == 1:
        assert list(tmp_path.iterdir()) == []
        return
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["f1_macro"] == pytest.approx(2 / 3)
    rows = _read_csv(tmp_path / "predictions.csv")
    assert [r[0] for r in rows[1:]] == ["case0", "case2", "case4", "case1", "case3", "case5"]
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], dtype=float), PROBS[[0, 2, 4, 1, 3, 5]], atol=1e-5)


def test_multi_process_needs_sample_ids(tmp_path, monkeypatch):
    import ignite.distributed as idist

    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="multi-process run needs an id"):
        _evaluator(_data(with_ids=False), [PredictionCSVWriter(tmp_path / "p.csv")]).run()
