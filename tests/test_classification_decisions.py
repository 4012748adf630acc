"""Classification metrics given MONAI's post-processed decisions: class indices and one-hot rows.

``AsDiscreted(argmax=True)`` turns probabilities into ``(N, 1)`` class indices, ``AsDiscreted(to_onehot=C)`` into
one-hot rows. Every decision-based score must equal scikit-learn's; the scores that need probabilities (AUC,
decision rules) must say so.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from monai_imbalance.metrics import (
    ClassificationMetric,
    accuracy,
    balanced_accuracy,
    check_probabilities,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    predicted_classes,
    prediction_form,
    recall_score,
    roc_auc,
)

C = 4


def _data(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, (n,), generator=g)
    logits = torch.randn(n, C, generator=g) + 1.5 * torch.nn.functional.one_hot(labels, C)
    return torch.softmax(logits, dim=1), labels


def _forms(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    classes = probs.argmax(dim=1)
    return {
        "indices (N, 1) float": classes[:, None].float(),  # AsDiscreted(argmax=True)
        "indices (N,) int": classes,
        "one-hot float": torch.nn.functional.one_hot(classes, C).float(),  # AsDiscreted(to_onehot=C)
        "one-hot int": torch.nn.functional.one_hot(classes, C),
    }


@pytest.mark.parametrize("form", list(_forms(torch.eye(C))))
def test_decision_scores_equal_sklearn_for_every_form(form):
    probs, labels = _data()
    y_pred = _forms(probs)[form]
    predicted = probs.argmax(dim=1).numpy()
    y = labels.numpy()
    assert accuracy(y_pred, labels) == pytest.approx(skm.accuracy_score(y, predicted))
    assert balanced_accuracy(y_pred, labels) == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    for ours, theirs in (
        (f1_score, skm.f1_score),
        (precision_score, skm.precision_score),
        (recall_score, skm.recall_score),
    ):
        assert ours(y_pred, labels) == pytest.approx(theirs(y, predicted, average="macro", zero_division=0))
    expected_cm = skm.confusion_matrix(y, predicted, labels=list(range(C)))
    np.testing.assert_array_equal(confusion_matrix(y_pred, labels, num_classes=C).numpy(), expected_cm)
    # one-hot labels (AsDiscreted(keys="label", to_onehot=C)) give the same numbers
    assert f1_score(y_pred, torch.nn.functional.one_hot(labels, C)) == pytest.approx(f1_score(probs, labels))
    np.testing.assert_array_equal(predicted_classes(y_pred).numpy(), predicted)


def test_forms_are_recognised():
    probs, _ = _data()
    assert prediction_form(probs) == "probabilities"
    assert [prediction_form(v) for v in _forms(probs).values()] == ["class indices"] * 2 + ["one-hot"] * 2
    assert prediction_form(torch.tensor([[0.3], [0.9]])) == "probabilities"  # a sigmoid output


def test_scores_that_need_probabilities_say_so():
    probs, labels = _data()
    for y_pred in _forms(probs).values():
        with pytest.raises(ValueError, match=r"the AUC needs class probabilities.*AsDiscreted"):
            roc_auc(y_pred, labels)
        with pytest.raises(ValueError, match=r"decision rule.*needs class probabilities"):
            accuracy(y_pred, labels, class_priors=[1, 2, 3, 4])
        metric = ClassificationMetric("auc")
        metric(y_pred, labels)
        with pytest.raises(ValueError, match="metric 'auc' needs class probabilities"):
            metric.aggregate()
    with pytest.raises(ValueError, match=r"PredictionCSVWriter needs class probabilities.*class indices"):
        check_probabilities(probs.argmax(dim=1, keepdim=True).float(), purpose="PredictionCSVWriter")
    with pytest.raises(ValueError, match=r"non-integer values.*\[1 - p, p\].*whole numbers"):
        accuracy(torch.tensor([[0.2], [0.7]]), torch.tensor([0, 1]))


def test_report_from_decisions_has_nan_auc_and_warns():
    probs, labels = _data()
    indices = probs.argmax(dim=1, keepdim=True).float()
    with pytest.warns(UserWarning, match="AUC needs class probabilities.*AUC is NaN"):
        report = classification_report(indices, labels, class_names=list("abcd"))
    expected = classification_report(probs, labels, class_names=list("abcd"))
    assert report["y_pred_form"] == "class indices" and expected["y_pred_form"] == "probabilities"
    assert math.isnan(report["auc"]) and all(math.isnan(v["auc"]) for v in report["per_class"].values())
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "confusion_matrix"):
        assert report[key] == expected[key]


def test_class_indices_infer_the_number_of_classes():
    labels = torch.tensor([0, 1, 1, 0])
    indices = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    assert confusion_matrix(indices, labels).shape == (2, 2)  # largest class seen + 1
    assert confusion_matrix(indices, labels, num_classes=3).shape == (3, 3)
    assert confusion_matrix(indices, torch.nn.functional.one_hot(labels, 5)).shape == (5, 5)  # one-hot width
    with pytest.warns(UserWarning, match="AUC"):
        report = classification_report(indices, labels, class_names=["a", "b", "c"])
    assert report["num_classes"] == 3 and report["per_class"]["c"]["support"] == 0
    with pytest.raises(ValueError, match=r"class indices \[3\] are outside the 3 classes"):
        confusion_matrix(torch.tensor([[3.0]]), torch.tensor([0]), num_classes=3)
    with pytest.raises(ValueError, match="negative class indices"):
        accuracy(torch.tensor([-1, 0]), torch.tensor([0, 0]))


def test_cumulative_metric_over_decision_batches():
    probs, labels = _data(n=30)
    classes = probs.argmax(dim=1)
    metric = ClassificationMetric("f1_macro")
    for start in range(0, 30, 8):  # decollated items (1,) as after AsDiscreted(argmax=True), one-hot labels
        metric(
            [c[None].float() for c in classes[start : start + 8]],
            torch.nn.functional.one_hot(labels[start : start + 8], C),
        )
    assert metric.aggregate() == pytest.approx(f1_score(probs, labels))
    assert metric.aggregate("balanced_accuracy") == pytest.approx(
        skm.balanced_accuracy_score(labels.numpy(), classes.numpy())
    )
    with pytest.warns(UserWarning, match="AUC"):
        assert metric.report()["num_classes"] == C  # from the one-hot label width
    with pytest.raises(ValueError, match="same form"):
        metric(probs[:2], labels[:2])
