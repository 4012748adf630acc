from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import yaml
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from sklearn.metrics import f1_score, roc_curve

import monai_imbalance.transforms.threshold as threshold_module
from monai_imbalance.reporting import update_metrics_json
from monai_imbalance.transforms import (
    ApplyThreshold,
    ApplyThresholdd,
    class_priors,
    prior_correction,
    read_decision_rule,
    select_threshold,
)

# hand-made validation set: sorted scores 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg)
PROBS = [0.1, 0.4, 0.35, 0.8]
LABELS = [0, 0, 1, 1]


# --- binary threshold selection ----------------------------------------------------------------------------------
def test_f1_threshold_by_hand():
    # cut below 0.8: TP 1 FP 0 -> F1 2/3; 0.4: TP 1 FP 1 -> 1/2; 0.35: TP 2 FP 1 -> 4/5; 0.1: TP 2 FP 2 -> 2/3
    threshold, score = select_threshold(PROBS, LABELS, "f1")
    assert threshold == pytest.approx((0.35 + 0.1) / 2) and score == pytest.approx(0.8)
    assert isinstance(threshold, float) and isinstance(score, float)


def test_youden_threshold_by_hand_takes_the_largest_of_tied_thresholds():
    # J = TPR - FPR: 0.8 -> 0.5, 0.4 -> 0, 0.35 -> 0.5, 0.1 -> 0; tie -> the larger threshold
    threshold, score = select_threshold(PROBS, LABELS, "youden")
    assert threshold == pytest.approx((0.8 + 0.4) / 2) and score == pytest.approx(0.5)


def test_lowest_cut_uses_zero_as_the_lower_neighbour():
    # predicting everything positive is best: TP 2 FP 1 -> F1 4/5
    threshold, score = select_threshold([0.2, 0.3, 0.9], [1, 1, 0])
    assert threshold == pytest.approx(0.1) and score == pytest.approx(0.8)


def test_input_layouts_give_the_same_threshold():
    p = torch.tensor(PROBS)
    expected = select_threshold(PROBS, LABELS)
    assert select_threshold(p[:, None], torch.tensor(LABELS)[:, None]) == pytest.approx(expected)  # sigmoid (N, 1)
    softmax = torch.stack([1 - p, p], dim=1)
    onehot = torch.nn.functional.one_hot(torch.tensor(LABELS), 2).float()
    assert select_threshold(softmax, onehot) == pytest.approx(expected)  # softmax + one-hot
    assert select_threshold(np.asarray(PROBS), np.asarray(LABELS, dtype=bool)) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_matches_a_brute_force_search_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.clip(0.35 * y + rng.random(300) * 0.6, 0, 1).round(2)  # ties on purpose
    threshold, score = select_threshold(p, y, "f1")
    best = max(f1_score(y, p >= t) for t in np.unique(p))
    assert score == pytest.approx(best)
    assert f1_score(y, p >= threshold) == pytest.approx(best)
    fpr, tpr, _ = roc_curve(y, p)
    threshold, score = select_threshold(p, y, "youden")
    assert score == pytest.approx(np.max(tpr - fpr))
    predicted = p >= threshold
    assert predicted[y == 1].mean() - predicted[y == 0].mean() == pytest.approx(score)


@pytest.mark.parametrize(
    ("probs", "labels", "kwargs", "match"),
    [
        ([0.2, 1.7], [0, 1], {}, r"probabilities in \[0, 1\].*sigmoid/softmax"),
        ([0.2, float("nan")], [0, 1], {}, "NaN"),
        ([0.2, 0.7], [1, 1], {}, "needs both classes"),
        ([0.2, 0.7, 0.1], [0, 1], {}, "labels has 2 samples but probs has 3"),
        ([0.2, 0.7], [0, 2], {}, "must be 0 or 1"),
        ([[0.2, 0.3, 0.5]], [0], {}, "use prior_correction"),
        ([0.2, 0.7], [0, 1], {"criterion": "accuracy"}, "criterion must be one of"),
        ([], [], {}, "empty"),
        ([0.2, 0.7], [[1, 1], [0, 1]], {}, "not one-hot"),
    ],
)
def test_selection_errors(probs, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_threshold(probs, labels, **kwargs)


def test_integer_probabilities_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        select_threshold([0, 1], [0, 1])


# --- multiclass prior correction ---------------------------------------------------------------------------------
def test_class_priors_by_hand():
    assert class_priors([486, 128, 206, 194, 66]) == pytest.approx(np.array([486, 128, 206, 194, 66]) / 1080)
    with pytest.raises(ValueError, match="positive and finite"):
        class_priors([3, 0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        class_priors([])


def test_prior_correction_by_hand_keeps_type_and_dtype():
    p = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    pi = [0.7, 0.2, 0.1]
    raw = p / np.array(pi)
    expected = raw / raw.sum(axis=1, keepdims=True)
    out = prior_correction(p, pi)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    t = prior_correction(torch.tensor(p, dtype=torch.float32), torch.tensor([7.0, 2.0, 1.0]))  # counts normalised
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)
    assert out.argmax(axis=1).tolist() == [2, 2] and p.argmax(axis=1).tolist() == [0, 2]
    # channel-first item with spatial dims, class dim 0; uniform priors change nothing
    item = torch.rand(3, 4, 4).softmax(dim=0)
    torch.testing.assert_close(prior_correction(item, [1, 1, 1], dim=0), item)


def test_prior_correction_gradient():
    p = torch.rand(4, 3, dtype=torch.float64).softmax(dim=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: prior_correction(x, [0.5, 0.3, 0.2]), (p,))


def test_prior_correction_errors():
    with pytest.raises(ValueError, match="3 classes along dim 1, but 2 class priors"):
        prior_correction(torch.rand(2, 3), [0.5, 0.5])
    with pytest.raises(ValueError, match="positive and finite"):
        prior_correction(torch.rand(2, 2), [1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        prior_correction(torch.rand(2, 1), [1.0])


# --- the post-processing transform -------------------------------------------------------------------------------
def test_apply_threshold_sigmoid_softmax_and_segmentation_maps():
    rule = ApplyThreshold(threshold=0.3)
    assert rule(torch.tensor([0.3])).tolist() == [1.0]  # p >= t is positive
    assert rule(torch.tensor([0.29])).tolist() == [0.0]
    assert rule(torch.tensor([0.75, 0.25])).tolist() == [0.0]  # softmax: p = x[1]
    assert rule(torch.tensor([0.65, 0.35])).tolist() == [1.0]
    seg = torch.tensor([[[0.1, 0.5], [0.3, 0.9]]])
    out = rule(seg)
    assert out.shape == (1, 2, 2) and out.dtype == torch.float32
    assert out.tolist() == [[[0.0, 1.0], [1.0, 1.0]]]
    onehot = ApplyThreshold(threshold=0.3, to_onehot=2)(seg)
    assert onehot.shape == (2, 2, 2) and torch.equal(onehot[1], out[0]) and torch.equal(onehot[0], 1 - out[0])


def test_apply_threshold_keeps_numpy_and_meta_tensors():
    out = ApplyThreshold(threshold=0.5)(np.array([0.2, 0.8], dtype=np.float32))
    assert isinstance(out, np.ndarray) and out.tolist() == [1.0]
    meta = MetaTensor(torch.tensor([0.6, 0.4]), meta={"filename_or_obj": "a.png"})
    out = ApplyThreshold(threshold=0.5, dtype=torch.int64)(meta)
    assert isinstance(out, MetaTensor) and out.dtype == torch.int64 and out.tolist() == [0]


def test_apply_prior_correction_multiclass_by_hand():
    # p / pi = [0.714, 1.5, 2.0] -> class 2, where plain argmax says class 0
    rule = ApplyThreshold(class_priors=[0.7, 0.2, 0.1])
    assert rule(torch.tensor([0.5, 0.3, 0.2])).tolist() == [2.0]
    assert ApplyThreshold(class_priors=[0.7, 0.2, 0.1], to_onehot=3)(torch.tensor([0.5, 0.3, 0.2])).tolist() == [
        0.0,
        0.0,
        1.0,
    ]
    # binary priors are the threshold pi_1 on the positive probability; a sigmoid channel reads as [1 - p, p]
    binary = ApplyThreshold(class_priors=[0.8, 0.2])
    assert binary(torch.tensor([0.21])).tolist() == [1.0] and binary(torch.tensor([0.19])).tolist() == [0.0]


def test_rule_read_from_the_metrics_json(tmp_path):
    path = tmp_path / "metrics.json"
    update_metrics_json(path, {"decision_threshold": {"method": "f1", "threshold": 0.25, "score": 0.8}, "acc": 0.9})
    update_metrics_json(path, {"priors": {"method": "prior_correction", "class_priors": [0.6, 0.3, 0.1]}, "t": 0.7})
    assert read_decision_rule(path) == {"threshold": 0.25}
    assert read_decision_rule(path, "t") == {"threshold": 0.7}
    assert read_decision_rule(path, "priors") == {"class_priors": [0.6, 0.3, 0.1]}
    assert ApplyThreshold(metrics_json=path)(torch.tensor([0.26])).tolist() == [1.0]
    assert ApplyThreshold(metrics_json=path, key="priors")(torch.tensor([0.5, 0.3, 0.2])).tolist() == [2.0]


def test_rule_read_errors(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(FileNotFoundError, match=r"metrics\.json not found"):
        ApplyThreshold(metrics_json=path)
    update_metrics_json(path, {"acc": 0.9, "bad": {"score": 1}})
    with pytest.raises(ValueError, match=r"no entry 'decision_threshold' \(keys: \['acc', 'bad'\]\)"):
        ApplyThreshold(metrics_json=path)
    with pytest.raises(ValueError, match="neither a threshold nor class priors"):
        read_decision_rule(path, "bad")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of threshold, class_priors or metrics_json, got none"),
        ({"threshold": 0.5, "class_priors": [0.5, 0.5]}, r"got \['threshold', 'class_priors'\]"),
        ({"threshold": 1.5}, r"threshold must be a number in \[0, 1\]"),
        ({"class_priors": [1.0, -1.0]}, "positive and finite"),
        ({"threshold": 0.5, "to_onehot": 1}, "to_onehot must be the number of classes"),
    ],
)
def test_transform_construction_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ApplyThreshold(**kwargs)


def test_transform_call_errors():
    with pytest.raises(ValueError, match=r"1 \(sigmoid\) or 2 \(softmax\) channels, got 3"):
        ApplyThreshold(threshold=0.5)(torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        ApplyThreshold(threshold=0.5)(torch.tensor([-2.0, 3.0]))  # logits
    with pytest.raises(TypeError, match="floating-point"):
        ApplyThreshold(threshold=0.5)(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="3 classes along dim 0, but 2 class priors"):
        ApplyThreshold(class_priors=[0.5, 0.5])(torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="to_onehot=2 is fewer than the 3 classes"):
        ApplyThreshold(class_priors=[0.2, 0.3, 0.5], to_onehot=2)(torch.tensor([0.2, 0.3, 0.5]))


def test_dict_transform_and_missing_keys():
    data = {"pred": torch.tensor([0.6, 0.4]), "other": torch.tensor([0.1, 0.9]), "label": 1}
    out = ApplyThresholdd(keys=["pred", "other"], threshold=0.35)(data)
    assert out["pred"].tolist() == [1.0] and out["other"].tolist() == [1.0] and out["label"] == 1
    assert data["pred"].tolist() == pytest.approx([0.6, 0.4])  # the input dict is not modified
    with pytest.raises(KeyError):
        ApplyThresholdd(keys="prob", threshold=0.35)(data)
    assert ApplyThresholdd(keys="prob", threshold=0.35, allow_missing_keys=True)(data).keys() == data.keys()


def test_documented_evaluate_postprocessing_runs_from_a_bundle_config(tmp_path):
    doc = threshold_module.__doc__
    block = doc[doc.index("postprocessing:") :]
    postprocessing = yaml.safe_load(textwrap.dedent("    " + block))["postprocessing"]
    update_metrics_json(tmp_path / "models" / "metrics.json", {"decision_threshold": {"threshold": 0.2}})
    parser = ConfigParser({"bundle_root": str(tmp_path), "num_classes": 2, "postprocessing": postprocessing})
    transform = parser.get_parsed_content("postprocessing")
    logits = torch.tensor([1.0, -0.5])  # softmax [0.82, 0.18]: argmax 0, but p_1 = 0.18 < 0.2 -> 0
    assert transform({"pred": logits})["pred"].tolist() == [1.0, 0.0]
    logits = torch.tensor([1.0, -0.2])  # p_1 = 0.23 >= 0.2 -> class 1
    assert transform({"pred": logits})["pred"].tolist() == [0.0, 1.0]
