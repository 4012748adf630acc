from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_imbalance.data import as_class_indices, class_counts, class_weights


def test_class_counts_from_lists_arrays_and_tensors():
    assert class_counts([2, 0, 2, 1, 2]) == [1, 1, 3]
    assert class_counts(np.array([[1], [1], [0]], dtype=np.uint8)) == [1, 2]  # MedMNIST (N, 1) layout
    assert class_counts(torch.tensor([0, 3, 3])) == [1, 0, 0, 2]  # empty classes count 0
    assert class_counts([0, 1, 1], num_classes=4) == [1, 2, 0, 0]
    assert class_counts([True, False, True]) == [1, 2]
    assert class_counts([np.int64(1), torch.tensor(0)]) == [1, 1]  # items read from a datalist


def test_inferred_class_count_is_bounded():
    from monai_imbalance.data.class_weights import MAX_INFERRED_CLASSES

    # the largest inferable label still counts; one more is an unmapped value, refused
    assert len(class_counts([0, MAX_INFERRED_CLASSES - 1])) == MAX_INFERRED_CLASSES
    with pytest.raises(ValueError, match=r"numpy\.unique"):
        class_counts([0, MAX_INFERRED_CLASSES])
    more = MAX_INFERRED_CLASSES + 1
    assert len(class_counts([0, MAX_INFERRED_CLASSES], num_classes=more)) == more


def test_as_class_indices_returns_an_int64_copy():
    labels = np.array([1, 0, 1], dtype=np.int32)
    out = as_class_indices(labels)
    assert out.dtype == np.int64 and out.tolist() == [1, 0, 1]
    out[0] = 5
    assert labels[0] == 1


@pytest.mark.parametrize(
    ("labels", "num_classes", "error", "match"),
    [
        ([0.0, 1.0], None, TypeError, "integer class indices"),
        (["a", "b"], None, TypeError, "integer class indices"),
        ([0, -2, 1], None, ValueError, "found -2 at position 1"),
        ([0, 1, 3], 3, ValueError, r"must lie in \[0, 3\) for num_classes=3, found 3 at position 2"),
        ([[0, 1], [1, 0]], None, ValueError, r"shape \(2, 2\).*argmax"),
        ([], None, ValueError, "empty"),
        ([[0], [1, 2]], None, ValueError, "one class index per sample"),
        ([0, 1], 0, ValueError, "num_classes must be >= 1"),
        ([0, 1], 2.0, TypeError, "num_classes must be an int"),
        ([0.0, 1.9], None, TypeError, "integer class indices"),  # never truncated to [0, 1]
        ([0, 10**9] * 5, None, ValueError, "would make 1000000001 classes for 10 samples with 2 distinct"),
        ([0, 10**9], 7, ValueError, r"must lie in \[0, 7\)"),
    ],
)
def test_bad_labels_raise(labels, num_classes, error, match):
    with pytest.raises(error, match=match):
        class_counts(labels, num_classes)


def test_inverse_weights_by_hand():
    # 1/n = [0.1, 1/30, 1/60], sum 0.15, times C / sum = 3 / 0.15 = 20
    np.testing.assert_allclose(class_weights([10, 30, 60]), [2.0, 2 / 3, 1 / 3], rtol=1e-12)


def test_inverse_sqrt_weights_by_hand():
    # 1/sqrt(n) = [1/2, 1/3, 1/6] for n = [4, 9, 36], sum 1, times C = 3
    np.testing.assert_allclose(class_weights([4, 9, 36], method="inverse_sqrt"), [1.5, 1.0, 0.5], rtol=1e-12)


def test_effective_number_weights_by_hand():
    # beta = 0.9, n = [1, 2]: (1 - b) / (1 - b^n) = [1, 0.1 / 0.19]; normalised to sum 2
    raw = np.array([1.0, 0.1 / 0.19])
    np.testing.assert_allclose(class_weights([1, 2], "effective_number", beta=0.9), 2 * raw / raw.sum(), rtol=1e-12)
    # direct formula for the default beta on realistic counts
    n = np.array([4693.0, 99.0, 80.0])
    raw = (1 - 0.9999) / (1 - 0.9999**n)
    np.testing.assert_allclose(class_weights(n, "effective_number"), 3 * raw / raw.sum(), rtol=1e-9)


def test_effective_number_limits():
    counts = [5, 50, 500]
    assert class_weights(counts, "effective_number", beta=0.0) == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(
        class_weights(counts, "effective_number", beta=1 - 1e-9), class_weights(counts, "inverse"), rtol=1e-5
    )


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number"])
def test_weights_sum_to_the_number_of_classes_and_favour_rare_classes(method):
    counts = torch.tensor([486, 128, 206, 194, 66])  # RetinaMNIST training classes
    w = class_weights(counts, method)
    assert isinstance(w, list) and all(isinstance(v, float) for v in w)
    assert sum(w) == pytest.approx(5.0)
    assert np.argsort(w).tolist() == np.argsort(-counts.numpy()).tolist()
    assert class_weights([7, 7, 7], method) == pytest.approx([1.0, 1.0, 1.0])


def test_weights_plug_into_a_loss():
    w = torch.tensor(class_weights(class_counts([0, 0, 0, 1])))
    loss = torch.nn.CrossEntropyLoss(weight=w)
    value = loss(torch.zeros(2, 2, requires_grad=True), torch.tensor([0, 1]))
    value.backward()
    assert torch.isfinite(value)


@pytest.mark.parametrize(
    ("counts", "kwargs", "match"),
    [
        ([3, 0, 2], {}, r"classes \[1\]"),
        ([3, -1], {}, "positive and finite"),
        ([3, float("nan")], {}, "positive and finite"),
        ([], {}, "non-empty"),
        ([[1, 2]], {}, "non-empty 1-D"),
        ([1, 2], {"method": "balanced"}, "unknown class weighting method .balanced."),
        ([1, 2], {"method": "effective_number", "beta": 1.0}, r"beta must lie in \[0, 1\)"),
        ([1, 2], {"method": "effective_number", "beta": -0.1}, r"beta must lie in \[0, 1\)"),
    ],
)
def test_bad_counts_raise(counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_weights(counts, **kwargs)
