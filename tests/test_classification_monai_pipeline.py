"""This package's classification handlers in a plain MONAI pipeline, with MONAI's post-transforms.

As the MONAI tutorials do: a ``SupervisedTrainer`` with a ``ValidationHandler`` running a ``SupervisedEvaluator``
whose postprocessing is ``Activationsd(softmax=True)`` -> ``AsDiscreted(argmax=True)`` ->
``AsDiscreted(to_onehot=C)``. ``CopyItemsd`` keeps each stage, so every handler reads the form it is given;
every value must equal scikit-learn's on the final model's outputs.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ValidationHandler, from_engine
from monai.transforms import Activationsd, AsDiscreted, Compose, CopyItemsd
from sklearn import metrics as skm
from torch import nn

from monai_imbalance.handlers import (
    BalancedAccuracy,
    ClassificationReportHandler,
    ClassificationScore,
    MacroF1,
    PredictionCSVWriter,
    ThresholdSelector,
)

C = 3


def _data(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (n,), generator=g)
    images = torch.randn(n, 1, 4, 4, generator=g) + labels[:, None, None, None].float()
    return [{"image": images[i], "label": labels[i], "id": f"s{seed}_{i}"} for i in range(n)]


def _postprocessing() -> Compose:
    return Compose(
        [
            Activationsd(keys="pred", softmax=True),
            CopyItemsd(keys=("pred", "label"), names=("prob", "label_index")),
            AsDiscreted(keys="pred", argmax=True),
            CopyItemsd(keys="pred", names="pred_index"),
            AsDiscreted(keys=("pred", "label"), to_onehot=C),
        ]
    )


def _pipeline(tmp_path) -> tuple[nn.Module, SupervisedTrainer, SupervisedEvaluator, list[dict]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, C))
    val_data = _data(30, seed=1)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(val_data, batch_size=7),
        network=net,
        postprocessing=_postprocessing(),
        key_val_metric={"val_f1_onehot": MacroF1()},  # default from_engine(["pred", "label"]): one-hot both
        additional_metrics={
            "f1_index": MacroF1(output_transform=from_engine(["pred_index", "label_index"])),
            "f1_prob": MacroF1(output_transform=from_engine(["prob", "label"])),
            "balanced_accuracy_index": BalancedAccuracy(output_transform=from_engine(["pred_index", "label"])),
            "accuracy_onehot": ClassificationScore("accuracy"),
            "recall_index": ClassificationScore(
                "recall_macro", num_classes=C, output_transform=from_engine(["pred_index", "label_index"])
            ),
            "auc_prob": ClassificationScore("auc", output_transform=from_engine(["prob", "label_index"])),
        },
        val_handlers=[
            ClassificationReportHandler(
                tmp_path / "metrics.json",
                key="from_index",
                class_names=["a", "b", "c"],
                output_transform=from_engine(["pred_index", "label_index"]),
            ),
            ClassificationReportHandler(
                tmp_path / "metrics.json", key="from_prob", output_transform=from_engine(["prob", "label"])
            ),
        ],
    )
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=DataLoader(_data(60, seed=0), batch_size=10, shuffle=True),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-2),
        loss_function=nn.CrossEntropyLoss(),
        postprocessing=_postprocessing(),
        key_train_metric={"train_f1": MacroF1()},  # on MONAI's one-hot decisions, as tutorials log Accuracy
        train_handlers=[ValidationHandler(validator=evaluator, interval=1, epoch_level=True)],
    )
    return net, trainer, evaluator, val_data


def test_handlers_read_probabilities_indices_and_one_hot_in_a_monai_pipeline(tmp_path):
    net, trainer, evaluator, val_data = _pipeline(tmp_path)
    with pytest.warns(UserWarning, match="AUC needs class probabilities"):  # the report fed with class indices
        trainer.run()

    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(torch.stack([d["image"] for d in val_data])), dim=1).numpy()
    y = np.array([int(d["label"]) for d in val_data])
    predicted = probs.argmax(axis=1)
    f1 = skm.f1_score(y, predicted, average="macro", zero_division=0)
    m = evaluator.state.metrics
    assert m["val_f1_onehot"] == pytest.approx(f1)
    assert m["f1_index"] == pytest.approx(f1) and m["f1_prob"] == pytest.approx(f1)
    assert m["balanced_accuracy_index"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    assert m["accuracy_onehot"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert m["recall_index"] == pytest.approx(skm.recall_score(y, predicted, average="macro", zero_division=0))
    assert m["auc_prob"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"), abs=1e-6)
    assert "train_f1" in trainer.state.metrics and 0 <= trainer.state.metrics["train_f1"] <= 1

    stored = json.loads((tmp_path / "metrics.json").read_text())
    from_index, from_prob = stored["from_index"], stored["from_prob"]
    assert from_index["y_pred_form"] == "class indices" and from_prob["y_pred_form"] == "probabilities"
    assert from_index["confusion_matrix"] == skm.confusion_matrix(y, predicted, labels=[0, 1, 2]).tolist()
    assert from_index["f1_macro"] == pytest.approx(f1) and from_prob["f1_macro"] == pytest.approx(f1)
    assert from_index["auc"] is None or np.isnan(from_index["auc"])
    assert from_prob["auc"] == pytest.approx(m["auc_prob"])


@pytest.mark.parametrize(
    "handler",
    [
        lambda tmp: ClassificationScore("auc", output_transform=from_engine(["pred_index", "label"])),
        lambda tmp: ClassificationScore("auc"),  # the default reads the one-hot decisions
        lambda tmp: MacroF1(class_priors=[1, 1, 2], output_transform=from_engine(["pred_index", "label"])),
    ],
)
def test_scores_that_need_probabilities_refuse_decisions_in_the_pipeline(tmp_path, handler):
    _, _, evaluator, _ = _pipeline(tmp_path)
    handler(tmp_path).attach(evaluator, "needs_probabilities")
    with (
        pytest.raises(ValueError, match=r"needs class probabilities.*AsDiscreted"),
        warnings.catch_warnings(action="ignore"),
    ):
        evaluator.run()


def test_threshold_and_csv_handlers_refuse_decisions(tmp_path):
    _, _, evaluator, _ = _pipeline(tmp_path)
    ThresholdSelector(
        tmp_path / "t.json",
        method="prior_correction",
        class_counts=[1, 1, 1],
        only_on_best=False,
        output_transform=from_engine(["pred", "label"]),
    ).attach(evaluator)
    with (
        pytest.raises(
            ValueError, match=r"ThresholdSelector \(decision-threshold choice\) needs class probabilities.*one-hot"
        ),
        warnings.catch_warnings(action="ignore"),
    ):
        evaluator.run()
    _, _, evaluator, _ = _pipeline(tmp_path)
    PredictionCSVWriter(tmp_path / "p.csv", output_transform=from_engine(["pred_index"])).attach(evaluator)
    with (
        pytest.raises(ValueError, match=r"PredictionCSVWriter .* needs class probabilities.*class indices"),
        warnings.catch_warnings(action="ignore"),
    ):
        evaluator.run()
