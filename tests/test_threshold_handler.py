from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.metrics import Accuracy
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd
from sklearn.metrics import f1_score

from monai_imbalance.handlers import ThresholdSelector
from monai_imbalance.handlers.threshold import stack_samples
from monai_imbalance.transforms import ApplyThresholdd, prior_correction, select_threshold


class Scale(torch.nn.Module):
    """The "network": logits = factor * image, so a test can make the model better or worse between epochs."""

    def __init__(self, factor: float = 1.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def make_evaluator(logits, labels, handlers, key_metric=True, decollate=True, batch_size=4):
    data = [{"image": torch.as_tensor(x), "label": int(y)} for x, y in zip(logits, labels, strict=True)]
    loader = DataLoader(Dataset(data), batch_size=batch_size, shuffle=False)
    metric = None
    if key_metric:
        if decollate:

            def stacked(out):
                # decollating turns 0-d label tensors into Python numbers
                return torch.stack([d["pred"] for d in out]), torch.as_tensor([d["label"] for d in out])
        else:

            def stacked(out):
                return out["pred"], out["label"]

        metric = {"accuracy": Accuracy(output_transform=stacked)}
    softmax = Activationsd(keys="pred", softmax=True)
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=Scale(),
        postprocessing=softmax if decollate else (lambda d: {**d, "pred": d["pred"].softmax(dim=1)}),
        key_val_metric=metric,
        val_handlers=handlers,
        decollate=decollate,
    )


def binary_data(seed=0, n=30):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    margin = rng.normal(loc=labels * 1.5 - 0.5, scale=1.0)
    logits = np.stack([np.zeros(n), margin], axis=1).astype(np.float32)
    return logits, labels


# --- stacking the engine output ----------------------------------------------------------------------------------
def test_stack_samples_classification_layouts():
    preds = [torch.tensor([0.7, 0.3]), torch.tensor([0.2, 0.8])]
    expected = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    for labels in ([0, 1], [torch.tensor(0), torch.tensor(1)], [torch.tensor([0]), torch.tensor([1])]):
        p, y = stack_samples(preds, labels)
        torch.testing.assert_close(p, expected)
        assert y.tolist() == [0, 1] and y.dtype == torch.int64
    onehot = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]
    assert stack_samples(preds, onehot)[1].tolist() == [0, 1]
    batched = stack_samples(torch.stack(preds), torch.tensor([[0], [1]]))  # decollate=False
    assert batched[1].tolist() == [0, 1]


def test_stack_samples_segmentation_maps_become_pixel_samples():
    pred = torch.rand(2, 1, 3, 3)  # sigmoid maps
    label = (torch.rand(2, 1, 3, 3) > 0.5).float()
    p, y = stack_samples(list(pred), list(label))
    assert p.shape == (18, 1) and y.shape == (18,)
    torch.testing.assert_close(p[:, 0], pred.reshape(-1))
    assert y.tolist() == label.reshape(-1).long().tolist()


def test_stack_samples_errors():
    with pytest.raises(ValueError, match=r"label shape \(2, 3\) does not match pred shape \(2, 2\)"):
        stack_samples(torch.rand(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="non-integer"):
        stack_samples(torch.rand(2, 2), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="channel-first"):
        stack_samples(torch.rand(2), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="non-empty list"):
        stack_samples([], [])


# --- the handler in a SupervisedEvaluator ------------------------------------------------------------------------
@pytest.mark.parametrize("decollate", [True, False])
def test_binary_threshold_written_to_the_metrics_json(tmp_path, decollate):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"accuracy": 0.5}))  # an entry of another handler, which must survive
    logits, labels = binary_data()
    selector = ThresholdSelector(path, method="youden")
    make_evaluator(logits, labels, [selector], decollate=decollate).run(global_epoch=3)
    probs = torch.as_tensor(logits).softmax(dim=1)
    threshold, score = select_threshold(probs, labels, "youden")
    content = json.loads(path.read_text())
    assert content["accuracy"] == 0.5
    entry = content["decision_threshold"]
    assert entry == {
        "method": "youden",
        "threshold": pytest.approx(threshold),
        "score": pytest.approx(score),
        "num_samples": 30,
        "epoch": 3,
    }
    assert selector.result == {"decision_threshold": entry}


def test_threshold_kept_from_the_best_epoch_only(tmp_path):
    path = tmp_path / "metrics.json"
    logits, labels = binary_data(seed=1)
    evaluator = make_evaluator(logits, labels, [ThresholdSelector(path, key="t")])
    evaluator.run(global_epoch=1)
    first = json.loads(path.read_text())["t"]
    assert first["epoch"] == 1
    evaluator.network.factor = -1.0  # a worse model: accuracy drops, the best checkpoint stays at epoch 1
    evaluator.run(global_epoch=2)
    assert json.loads(path.read_text())["t"] == first
    evaluator.network.factor = 1.0  # as good again: not an improvement either
    evaluator.run(global_epoch=3)
    assert json.loads(path.read_text())["t"]["epoch"] == 1

    every = tmp_path / "every.json"
    evaluator = make_evaluator(logits, labels, [ThresholdSelector(every, only_on_best=False)])
    evaluator.run(global_epoch=1)
    evaluator.network.factor = -1.0
    evaluator.run(global_epoch=2)
    assert json.loads(every.read_text())["decision_threshold"]["epoch"] == 2


def test_without_key_metric_every_epoch_is_written(tmp_path):
    path = tmp_path / "metrics.json"
    logits, labels = binary_data()
    evaluator = make_evaluator(logits, labels, [ThresholdSelector(path)], key_metric=False)
    evaluator.run(global_epoch=1)
    evaluator.run(global_epoch=2)
    assert json.loads(path.read_text())["decision_threshold"]["epoch"] == 2


def test_multiclass_prior_correction_entry(tmp_path):
    path = tmp_path / "metrics.json"
    rng = np.random.default_rng(2)
    labels = rng.choice(3, size=40, p=[0.7, 0.2, 0.1])
    logits = (rng.normal(size=(40, 3)) + 1.2 * np.eye(3)[labels] + np.log([0.7, 0.2, 0.1])).astype(np.float32)
    counts = [700, 200, 100]
    make_evaluator(logits, labels, [ThresholdSelector(path, method="prior_correction", class_counts=counts)]).run()
    entry = json.loads(path.read_text())["decision_threshold"]
    probs = torch.as_tensor(logits).softmax(dim=1).numpy()
    corrected = prior_correction(probs, [0.7, 0.2, 0.1])
    assert entry["method"] == "prior_correction" and entry["num_samples"] == 40 and entry["epoch"] == 1
    assert entry["class_priors"] == pytest.approx([0.7, 0.2, 0.1])
    assert entry["macro_f1_argmax"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))
    assert entry["macro_f1_corrected"] == pytest.approx(f1_score(labels, corrected.argmax(1), average="macro"))


def test_threshold_round_trip_into_the_evaluation_transform(tmp_path):
    path = tmp_path / "metrics.json"
    logits, labels = binary_data(seed=3, n=40)
    make_evaluator(logits, labels, [ThresholdSelector(path)]).run()
    threshold = json.loads(path.read_text())["decision_threshold"]["threshold"]
    apply = ApplyThresholdd(keys="pred", metrics_json=path, to_onehot=2)
    probs = torch.as_tensor(logits).softmax(dim=1)
    predicted = [int(apply({"pred": p})["pred"].argmax()) for p in probs]
    assert predicted == (probs[:, 1] >= threshold).long().tolist()
    assert f1_score(labels, predicted) == pytest.approx(json.loads(path.read_text())["decision_threshold"]["score"])


def test_handler_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown threshold method"):
        ThresholdSelector(tmp_path / "m.json", method="accuracy")
    with pytest.raises(ValueError, match="needs the training class_counts"):
        ThresholdSelector(tmp_path / "m.json", method="prior_correction")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 3)).astype(np.float32)
    evaluator = make_evaluator(logits, [0, 1, 2, 0, 1, 2, 0, 1], [ThresholdSelector(tmp_path / "m.json")])
    with pytest.raises(ValueError, match="use prior_correction"):
        evaluator.run()
