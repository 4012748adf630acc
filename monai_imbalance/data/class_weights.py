"""Class counts and class weights for cost-sensitive learning.

Cost-sensitive learning (one of the baselines of the batch-balanced focal loss paper) weights the
loss of every sample by a weight of its class, large for rare classes. The weights here are plain
Python floats normalised to sum to the number of classes ``C`` (so a balanced data set gets weight
1 everywhere and the loss keeps its scale); turn them into a tensor for any loss that takes class
weights, e.g. ``torch.nn.CrossEntropyLoss(weight=torch.tensor(w))`` or a focal/LMF loss ``weight=``.

In a bundle config::

    class_weights: "$monai_imbalance.data.class_weights(
        monai_imbalance.data.class_counts([d['label'] for d in @train_datalist]), method='inverse')"
    loss:
      _target_: torch.nn.CrossEntropyLoss
      weight: "$torch.tensor(@class_weights)"
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai_imbalance.errors import check_choice

__all__ = ["CLASS_WEIGHT_METHODS", "MAX_INFERRED_CLASSES", "as_class_indices", "class_counts", "class_weights"]

CLASS_WEIGHT_METHODS = ("inverse", "inverse_sqrt", "effective_number")

#: Largest number of classes inferred from the labels (``max(labels) + 1``) when ``num_classes`` is not given.
#: A larger label is not a class index but an unmapped value (a patient number, ``255`` of a mask, ``10**9``):
#: counting it would allocate one counter per possible class (8 GB for ``10**9``), so it is refused instead.
MAX_INFERRED_CLASSES = 65_536


def _check_num_classes(num_classes: int | None) -> None:
    if num_classes is None:
        return
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")


def as_class_indices(labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int | None = None) -> np.ndarray:
    """Validate class-index labels and return them as a 1-D ``int64`` numpy array (a copy).

    Args:
        labels: one integer class index per sample: a list of ints (e.g. ``[d["label"] for d in datalist]``),
            a numpy array or a tensor, of shape ``(N,)`` or ``(N, 1)`` (the MedMNIST layout). Booleans count as
            0/1.
        num_classes: the number of classes ``C``; every label must lie in ``[0, C)``. ``None`` infers
            ``C = max(labels) + 1``, which must not exceed :data:`MAX_INFERRED_CLASSES`.

    Raises:
        TypeError: labels are not integers (e.g. floats or strings), or ``num_classes`` is not an int.
        ValueError: no labels, a shape other than ``(N,)``/``(N, 1)`` (one-hot labels: take ``argmax`` first),
            a label outside ``[0, C)``, or (without ``num_classes``) a label of :data:`MAX_INFERRED_CLASSES` or more.
    """
    _check_num_classes(num_classes)
    if isinstance(labels, torch.Tensor):
        array = labels.detach().cpu().numpy()
    else:
        try:
            array = np.asarray(labels)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"labels must be one class index per sample, could not form an array: {e}") from e
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"labels must have shape (N,) or (N, 1), one class index per sample, got shape {tuple(array.shape)}; "
            "for one-hot labels pass their argmax"
        )
    if array.size == 0:
        raise ValueError("labels is empty: need at least one labelled sample")
    if array.dtype == np.bool_:
        array = array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"labels must be integer class indices, got dtype {array.dtype}; "
            "convert whole-number floats with .astype(int) / .long() first"
        )
    array = array.astype(np.int64, copy=True)
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise ValueError(f"labels must be class indices >= 0, found {low} at position {int(np.argmin(array))}")
    if num_classes is not None and high >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for num_classes={num_classes}, "
            f"found {high} at position {int(np.argmax(array))}"
        )
    if num_classes is None and high >= MAX_INFERRED_CLASSES:
        distinct = np.unique(array)
        shown = ", ".join(str(v) for v in distinct[:10]) + (", ..." if distinct.size > 10 else "")
        raise ValueError(
            f"labels must be class indices 0..C-1, found {high} at position {int(np.argmax(array))}, which would "
            f"make {high + 1} classes for {array.size} samples with {distinct.size} distinct value(s) ({shown}); "
            "pass num_classes= to check the labels against it, or map the values to 0..C-1 first "
            "(numpy.unique(labels, return_inverse=True))"
        )
    return array


def class_counts(labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int | None = None) -> list[int]:
    """Number of samples of every class: ``counts[c] = #{i : labels[i] == c}``.

    Args:
        labels: one integer class index per sample (see :func:`as_class_indices`).
        num_classes: the number of classes ``C``; default ``max(labels) + 1``. Classes without samples get 0.

    Returns:
        ``C`` ints.
    """
    array = as_class_indices(labels, num_classes)
    minlength = int(array.max()) + 1 if num_classes is None else int(num_classes)
    return [int(n) for n in np.bincount(array, minlength=minlength)]


def class_weights(
    counts: Sequence[float] | np.ndarray | torch.Tensor, method: str = "inverse", beta: float = 0.9999
) -> list[float]:
    """Per-class loss weights from class counts ``n_c``, normalised so that ``sum_c w_c = C``.

    Before normalisation:

    - ``"inverse"``: ``w_c = 1 / n_c``;
    - ``"inverse_sqrt"``: ``w_c = 1 / sqrt(n_c)``;
    - ``"effective_number"`` (Cui et al., CVPR 2019; LDAM-DRW's re-weighting):
      ``w_c = (1 - beta) / (1 - beta^n_c)``, the inverse of the effective number of samples. ``beta = 0``
      gives equal weights, ``beta -> 1`` tends to ``"inverse"``.

    Then ``w_c <- C * w_c / sum_k w_k``.

    Args:
        counts: ``C`` positive sample counts (e.g. from :func:`class_counts`).
        method: one of ``"inverse"``, ``"inverse_sqrt"``, ``"effective_number"``.
        beta: the effective-number hyper-parameter in ``[0, 1)``; used by ``"effective_number"`` only.

    Returns:
        ``C`` floats.

    Raises:
        ValueError: an unknown method, no counts, a count that is not positive and finite (a class without
            samples would get an infinite weight), or ``beta`` outside ``[0, 1)``.
    """
    check_choice(method, CLASS_WEIGHT_METHODS, "class weighting method")
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence (one count per class), got shape {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        bad = [int(c) for c in np.flatnonzero(~(np.isfinite(n) & (n > 0)))]
        raise ValueError(
            f"every class count must be positive and finite, got {n.tolist()} (classes {bad}); "
            "a class without samples cannot be weighted: drop it or fix num_classes"
        )
    if method == "inverse":
        w = 1.0 / n
    elif method == "inverse_sqrt":
        w = 1.0 / np.sqrt(n)
    else:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1) for method='effective_number', got {beta}")
        # (1 - beta) / (1 - beta^n) with 1 - beta^n = -expm1(n log beta), accurate for beta close to 1
        w = np.ones_like(n) if beta == 0.0 else (1.0 - beta) / -np.expm1(n * np.log(beta))
    w = w * (n.size / w.sum())
    return [float(x) for x in w]
