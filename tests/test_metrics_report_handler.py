"""MetricsReportHandler on a tiny SupervisedEvaluator whose "network" returns the probabilities it is given.

Three 4 x 4 images; the prediction (>= 0.5) and the label differ in known pixels, and a field-of-view
mask leaves out the last column, so every score can be counted by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import IgniteMetricHandler, from_engine
from monai.transforms import CopyItemsd
from torch import nn

from monai_imbalance.handlers import MetricsReportHandler
from monai_imbalance.metrics import MaskedConfusionMatrixMetric, PixelROCAUCMetric, masked_output_transform


def _data():
    rng = np.random.default_rng(0)
    items = []
    for _ in range(3):
        label = (rng.random((1, 4, 4)) > 0.5).astype(np.float32)
        prob = np.where(rng.random((1, 4, 4)) > 0.3, label * 0.8 + 0.1, 0.6).astype(np.float32)
        mask = np.ones((1, 4, 4), np.float32)
        mask[..., 3] = 0
        items.append(
            {"image": torch.from_numpy(prob), "label": torch.from_numpy(label), "mask": torch.from_numpy(mask)}
        )
    return items


def _expected(items, inside_only):
    pred = np.stack([i["image"].numpy() >= 0.5 for i in items])
    truth = np.stack([i["label"].numpy() > 0.5 for i in items])
    keep = np.stack([i["mask"].numpy() > 0 for i in items]) if inside_only else np.ones_like(pred)
    tp, fp = np.sum(pred & truth & keep), np.sum(pred & ~truth & keep)
    fn, tn = np.sum(~pred & truth & keep), np.sum(~pred & ~truth & keep)
    return {"jaccard": tp / (tp + fp + fn), "dice": 2 * tp / (2 * tp + fp + fn), "specificity": tn / (tn + fp)}


def _metric(name, output_transform, ignore_index=None):
    fn = MaskedConfusionMatrixMetric(metric_name=name, threshold=0.5, ignore_index=ignore_index)
    return IgniteMetricHandler(metric_fn=fn, output_transform=output_transform)


def _evaluator(data, handlers, fov=False, batch_size=2):
    output = masked_output_transform(mask_key="fov") if fov else from_engine(["pred", "label"])
    ignore = -1 if fov else None
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=batch_size, shuffle=False, num_workers=0),
        network=nn.Identity(),
        postprocessing=CopyItemsd(keys="mask", names="fov") if fov else None,
        key_val_metric={"jaccard": _metric("jaccard", output, ignore)},
        additional_metrics={
            "dice": _metric("dice", output, ignore),
            "specificity": _metric("specificity", output, ignore),
            "auc": IgniteMetricHandler(metric_fn=PixelROCAUCMetric(ignore_index=ignore), output_transform=output),
        },
        val_handlers=handlers,
    )


@pytest.mark.parametrize("fov", [False, True])
def test_writes_the_scores_counted_by_hand(tmp_path, fov):
    data = _data()
    handler = MetricsReportHandler(tmp_path / "metrics.json", key="test", extra={"threshold": 0.5, "loss": "all"})
    _evaluator(data, [handler], fov=fov).run()
    report = json.loads((tmp_path / "metrics.json").read_text())["test"]
    for name, value in _expected(data, inside_only=fov).items():
        assert report[name] == pytest.approx(value), name
    assert 0 <= report["auc"] <= 1
    assert report["num_samples"] == 3 and report["epoch"] == 1
    assert report["threshold"] == 0.5 and report["loss"] == "all"
    assert set(report) == {"jaccard", "dice", "specificity", "auc", "num_samples", "epoch", "threshold", "loss"}


def test_keeps_other_entries_writes_chosen_metrics_and_nan_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"validation": {"jaccard": 0.5}}))
    handler = MetricsReportHandler(path, key="test", metric_names=["dice"])
    evaluator = _evaluator(_data(), [handler])
    evaluator.run()
    content = json.loads(path.read_text())
    assert content["validation"] == {"jaccard": 0.5}
    assert set(content["test"]) == {"dice", "epoch", "num_samples"}

    from ignite.engine import Events

    evaluator = SupervisedEvaluator(torch.device("cpu"), DataLoader(Dataset(_data()), batch_size=2), nn.Identity())
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(odd=float("nan")))
    MetricsReportHandler(path, key="late", metric_names=["odd"]).attach(evaluator)  # runs after the NaN appears
    evaluator.run()
    assert json.loads(path.read_text())["late"]["odd"] is None


def test_save_best_only_writes_the_best_epoch(tmp_path):
    handler = MetricsReportHandler(tmp_path / "metrics.json", key="validation", save_best_only=True)
    evaluator = _evaluator(_data(), [handler])
    evaluator.run(global_epoch=1)
    evaluator.run(global_epoch=2)  # the same score is not better: epoch 1 stays the best
    assert json.loads((tmp_path / "metrics.json").read_text())["validation"]["epoch"] == 1
    assert handler.last_report["epoch"] == 2  # computed every run


def test_bad_arguments_and_missing_metrics(tmp_path):
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        MetricsReportHandler(tmp_path / "m.json", key="")
    with pytest.raises(ValueError, match=r"\['epoch'\] are written by the handler"):
        MetricsReportHandler(tmp_path / "m.json", key="test", extra={"epoch": 3})
    with pytest.raises(ValueError, match=r"metric\(s\) \['iou'\] not computed.*'dice'"):
        _evaluator(_data(), [MetricsReportHandler(tmp_path / "m.json", key="test", metric_names="iou")]).run()
    loader = DataLoader(Dataset(_data()), batch_size=2)
    plain = SupervisedEvaluator(
        torch.device("cpu"),
        loader,
        nn.Identity(),
        val_handlers=[MetricsReportHandler(tmp_path / "m.json", key="v", save_best_only=True)],
    )
    with pytest.raises(ValueError, match="needs a key metric"):
        plain.run()
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("rank", [0, 1])
def test_multi_process_sums_the_samples_and_only_save_rank_writes(tmp_path, monkeypatch, rank):
    import ignite.distributed as idist

    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    monkeypatch.setattr(idist, "get_rank", lambda: rank)
    monkeypatch.setattr(idist, "all_reduce", lambda value: value + 5)  # the other rank evaluated 5 samples
    handler = MetricsReportHandler(tmp_path / "metrics.json", key="test", metric_names=[])
    evaluator = SupervisedEvaluator(
        torch.device("cpu"), DataLoader(Dataset(_data()), batch_size=2), nn.Identity(), val_handlers=[handler]
    )
    evaluator.run()
    assert handler.last_report["num_samples"] == 8
    assert (tmp_path / "metrics.json").exists() == (rank == 0)
