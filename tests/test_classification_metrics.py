"""Classification metrics against hand computations and scikit-learn."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import ConfusionMatrixMetric
from sklearn import metrics as skm

from monai_imbalance.metrics.classification import (
    CLASSIFICATION_METRIC_NAMES,
    ClassificationMetric,
    MacroF1Metric,
    accuracy,
    balanced_accuracy,
    check_decision_rule,
    check_probabilities,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    predicted_classes,
    recall_score,
    roc_auc,
)

# 3 classes, 6 samples; argmax predictions [0, 1, 1, 2, 0, 0] for labels [0, 0, 1, 2, 2, 0]
PROBS = torch.tensor(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.1, 0.7],
        [0.5, 0.1, 0.4],
        [0.6, 0.3, 0.1],
    ]
)
LABELS = torch.tensor([0, 0, 1, 2, 2, 0])


def _random_case(seed: int, num_classes: int, n: int = 40, drop_class: bool = False, ties: bool = False):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, num_classes, generator=g), dim=1)
    if ties:  # coarse probabilities: many tied scores for the AUC
        probs = (probs * 4).round() + 0.01
        probs = probs / probs.sum(dim=1, keepdim=True)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    if drop_class:
        labels[labels == num_classes - 1] = 0
    return probs, labels


def test_hand_computed_three_class_example():
    cm = confusion_matrix(PROBS, LABELS)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert accuracy(PROBS, LABELS) == pytest.approx(4 / 6)
    # per class: precision 2/3, 1/2, 1/1; recall 2/3, 1/1, 1/2; F1 2TP/(2TP+FP+FN) = 4/6, 2/3, 2/3
    assert precision_score(PROBS, LABELS, average="none").tolist() == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert recall_score(PROBS, LABELS, average="none").tolist() == pytest.approx([2 / 3, 1.0, 1 / 2])
    assert f1_score(PROBS, LABELS, average="none").tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert f1_score(PROBS, LABELS) == pytest.approx(2 / 3)
    assert balanced_accuracy(PROBS, LABELS) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    # one-vs-rest AUC of class 1 (positive: sample 2 with 0.8; negatives 0.2 0.6 0.1 0.1 0.3): 5/5
    assert roc_auc(PROBS, LABELS, average="none")[1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("num_classes", [2, 3, 7])
@pytest.mark.parametrize("seed", range(6))
def test_scores_match_sklearn(num_classes, seed):
    probs, labels = _random_case(seed, num_classes, drop_class=seed % 3 == 0, ties=seed % 2 == 0)
    predicted = probs.argmax(dim=1).numpy()
    y = labels.numpy()
    report = classification_report(probs, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about absent classes, as intended here
        assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
        assert report["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted), abs=1e-12)
        for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)):
            assert report[f"{name}_macro"] == pytest.approx(fn(y, predicted, average="macro", zero_division=0), 1e-12)
            per_class = fn(y, predicted, average=None, labels=range(num_classes), zero_division=0)
            ours = [report["per_class"][str(c)][name] for c in range(num_classes)]
            present = np.isin(range(num_classes), np.union1d(y, predicted))
            np.testing.assert_allclose(np.asarray(ours)[present], per_class[present], atol=1e-12)
            assert all(math.isnan(v) for v in np.asarray(ours)[~present])
    assert report["confusion_matrix"] == skm.confusion_matrix(y, predicted, labels=range(num_classes)).tolist()
    if num_classes == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn: AUC undefined when the labels have one class
            expected = skm.roc_auc_score(y, probs[:, 1].numpy())
        assert report["auc"] == pytest.approx(expected, abs=1e-9, nan_ok=True)
        assert report["f1_positive"] == pytest.approx(skm.f1_score(y, predicted, zero_division=0), abs=1e-12)
        assert report["specificity"] == pytest.approx(skm.recall_score(1 - y, 1 - predicted), abs=1e-12)
    elif len(np.unique(y)) == num_classes:
        expected = skm.roc_auc_score(y, probs.double().numpy(), multi_class="ovr", average="macro")
        assert report["auc"] == pytest.approx(expected, abs=1e-9)
    else:  # absent class: macro over the classes with positives and negatives
        present = np.unique(y)
        expected = np.mean([skm.roc_auc_score(y == c, probs[:, c].numpy()) for c in present])
        assert report["auc"] == pytest.approx(expected, abs=1e-9)
        assert math.isnan(report["per_class"][str(num_classes - 1)]["auc"])


def test_macro_precision_counts_a_never_predicted_class_as_zero_unlike_monai():
    # class 2 is present but never predicted: precision 0/0 -> counts as 0 in the macro mean
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.3, 0.1], [0.1, 0.7, 0.2]])
    labels = torch.tensor([0, 1, 2, 2])
    ours = precision_score(probs, labels)
    assert ours == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert ours == pytest.approx(skm.precision_score(labels, probs.argmax(1), average="macro", zero_division=0))
    monai_metric = ConfusionMatrixMetric(metric_name="precision", reduction="mean")
    monai_metric(torch.nn.functional.one_hot(probs.argmax(1), 3), torch.nn.functional.one_hot(labels, 3))
    assert monai_metric.aggregate()[0].item() == pytest.approx(1 / 2)  # MONAI drops the class: flattering


def test_binary_threshold_and_class_priors():
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 1, 1])
    assert predicted_classes(probs).tolist() == [0, 0, 0, 1]
    assert predicted_classes(probs, decision_threshold=0.3).tolist() == [0, 1, 1, 1]
    assert accuracy(probs, labels, decision_threshold=0.3) == 1.0
    assert recall_score(probs, labels, average="binary") == pytest.approx(1 / 3)
    # priors (0.75, 0.25): p / pi -> class 1 wins iff p1 > 0.25
    assert predicted_classes(probs, class_priors=[3, 1]).tolist() == [0, 1, 1, 1]
    report = classification_report(probs, labels, class_priors=[3, 1])
    assert report["class_priors"] == pytest.approx([0.75, 0.25]) and report["decision_threshold"] is None
    assert report["accuracy"] == 1.0
    assert report["auc"] == pytest.approx(1.0)  # AUC ignores the decision rule
    three = PROBS
    assert predicted_classes(three, class_priors=[0.8, 0.1, 0.1]).tolist() == [1, 1, 1, 2, 2, 1]
    assert check_decision_rule(0.4) == (0.4, None)
    assert check_decision_rule(class_priors=[1, 3]) == (None, [0.25, 0.75])


def test_one_hot_and_column_labels_give_the_same_report():
    one_hot = torch.nn.functional.one_hot(LABELS, 3).float()
    base = classification_report(PROBS, LABELS)
    assert classification_report(PROBS, one_hot) == base
    assert classification_report(PROBS.numpy(), LABELS[:, None].float().numpy()) == base


def test_report_structure_and_class_names():
    report = classification_report(PROBS, LABELS, class_names=["nv", "mel", "bcc"])
    assert report["class_names"] == ["nv", "mel", "bcc"]
    assert report["num_samples"] == 6 and report["num_classes"] == 3
    assert report["per_class"]["mel"] == {
        "precision": pytest.approx(0.5),
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "auc": 1.0,
        "support": 1,
    }
    assert "f1_positive" not in report
    with pytest.raises(ValueError, match="2 class_names"):
        classification_report(PROBS, LABELS, class_names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        classification_report(PROBS, LABELS, class_names=["a", "a", "b"])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="softmax"):
        accuracy(torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        accuracy(torch.rand(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="at least 2 class columns"):
        accuracy(torch.full((3, 1), 0.7), torch.zeros(3))
    with pytest.raises(ValueError, match=r"label values \[3\]"):
        accuracy(PROBS, torch.tensor([0, 0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="5 samples"):
        accuracy(PROBS, LABELS[:5])
    with pytest.raises(ValueError, match="integer class labels"):
        accuracy(PROBS, LABELS.float() + 0.5)
    with pytest.raises(ValueError, match="not one-hot"):
        accuracy(PROBS, torch.ones(6, 3))
    with pytest.raises(TypeError, match="floating-point"):
        accuracy(torch.ones(2, 2, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        check_probabilities(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="binary problems only"):
        accuracy(PROBS, LABELS, decision_threshold=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        predicted_classes(torch.tensor([[0.5, 0.5]]), decision_threshold=1.5)
    with pytest.raises(ValueError, match="not both"):
        predicted_classes(torch.tensor([[0.5, 0.5]]), decision_threshold=0.5, class_priors=[1, 1])
    with pytest.raises(ValueError, match="2 class_priors for 3 classes"):
        predicted_classes(PROBS, class_priors=[1, 1])
    with pytest.raises(ValueError, match="positive"):
        check_decision_rule(class_priors=[1, 0])
    with pytest.raises(ValueError, match="no samples"):
        accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="'binary' needs 2 classes"):
        f1_score(PROBS, LABELS, average="binary")
    with pytest.raises(ValueError, match="average must be"):
        roc_auc(PROBS, LABELS, average="weighted")


def test_cumulative_metric_over_batches_and_decollated_lists():
    probs, labels = _random_case(3, 4, n=30)
    metric = ClassificationMetric("balanced_accuracy", num_classes=4)
    metric(probs[:10], labels[:10])
    metric(list(probs[10:20]), [label.reshape(1) for label in labels[10:20]])  # decollated channel-first items
    metric(probs[20:], torch.nn.functional.one_hot(labels[20:], 4))
    assert metric.aggregate() == pytest.approx(balanced_accuracy(probs, labels))
    for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "auc"):
        assert metric.aggregate(name) == pytest.approx(classification_report(probs, labels)[name])
    assert metric.report(class_names=list("abcd")) == classification_report(probs, labels, class_names=list("abcd"))
    metric.reset()
    with pytest.raises(ValueError, match="no data"):
        metric.aggregate()


def test_cumulative_metric_binary_only_names_and_bad_construction():
    probs, labels = _random_case(5, 2, n=20)
    metric = MacroF1Metric(decision_threshold=0.4)
    metric(probs, labels)
    assert metric.aggregate() == pytest.approx(f1_score(probs, labels, decision_threshold=0.4))
    assert metric.aggregate("specificity") == pytest.approx(
        classification_report(probs, labels, decision_threshold=0.4)["specificity"]
    )
    assert set(CLASSIFICATION_METRIC_NAMES) >= {"f1_macro", "balanced_accuracy", "auc"}
    with pytest.raises(ValueError, match="unknown metric_name"):
        ClassificationMetric("f2")
    with pytest.raises(ValueError, match="binary problems"):
        ClassificationMetric("f1_positive", num_classes=3)
    with pytest.raises(ValueError, match="expected num_classes=3"):
        ClassificationMetric(num_classes=3)(probs, labels)
    three = ClassificationMetric()
    three(PROBS, LABELS)
    with pytest.raises(ValueError, match="binary problems"):
        three.aggregate("specificity")
