"""Patient-level bootstrap statistics of classification accuracy (Table 1 of the focal-loss repeatability paper).

Images of one patient are not independent, so the confidence interval of the accuracy and the paired test of two
models resample *patients* with replacement and keep all images of a drawn patient together:

- :func:`accuracy_with_ci`: percentile-bootstrap 95% CI of the accuracy;
- :func:`compare_accuracy`: paired bootstrap test of the accuracy difference of two models on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy_with_ci", "compare_accuracy"]


def _patient_table(
    correct: np.ndarray, patients: Sequence[Any], *others: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per patient: number of images and the sum of ``correct`` (and of each array in ``others``)."""
    _, cluster = np.unique(np.asarray([str(p) for p in patients], dtype=object), return_inverse=True)
    counts = np.bincount(cluster).astype(np.float64)
    sums = [np.bincount(cluster, weights=np.asarray(a, dtype=np.float64)) for a in (correct, *others)]
    return counts, sums


def _check_correct(correct: Any, patients: Sequence[Any], name: str = "correct") -> np.ndarray:
    values = np.asarray(correct)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one entry per image), got shape {values.shape}")
    if len(patients) != len(values):
        raise ValueError(f"got {len(values)} {name} entries but {len(patients)} patient ids")
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 (or booleans): whether each image was classified correctly")
    return values.astype(np.float64)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    return int(n_boot)


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def accuracy_with_ci(correct: Any, patients: Sequence[Any], n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """Accuracy with a percentile-bootstrap 95% CI over patients.

    With images ``i`` of patients ``p(i)`` and ``c_i`` = 1 for a correct prediction, the accuracy is
    :math:`\\sum_i c_i / N`. Each of ``n_boot`` replicates draws ``P`` patients with replacement and
    takes :math:`\\sum_{p \\in draw} C_p / \\sum_{p \\in draw} N_p` (``C_p``, ``N_p``: correct and all images
    of patient ``p``), so a patient's images stay together.

    Args:
        correct: ``(N,)`` 0/1 or booleans.
        patients: ``N`` patient ids (compared as strings).
        n_boot: bootstrap replicates.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``{"accuracy", "ci": [lo, hi], "pm": (hi - lo) / 2, "n_images", "n_patients", "n_boot", "seed"}``.

    Raises:
        ValueError: mismatched lengths, values other than 0/1, an empty input or a bad ``n_boot``.
    """
    values = _check_correct(correct, patients)
    n_boot = _check_n_boot(n_boot)
    counts, (sums,) = _patient_table(values, patients)
    draws = np.random.default_rng(seed).integers(0, len(counts), size=(n_boot, len(counts)))
    boot = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    ci = _interval(boot)
    return {
        "accuracy": float(values.mean()),
        "ci": ci,
        "pm": (ci[1] - ci[0]) / 2.0,
        "n_images": len(values),
        "n_patients": len(counts),
        "n_boot": n_boot,
        "seed": int(seed),
    }


def compare_accuracy(
    correct_a: Any, correct_b: Any, patients: Sequence[Any], n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap test of the accuracy difference of two models on the same images.

    Replicates draw patients with replacement and evaluate both accuracies on the *same* draw:
    :math:`\\Delta^* = acc_a^* - acc_b^*`. The p-value is two-sided,
    ``min(1, 2 min(P_le, P_ge))`` with ``P_le = (1 + #{Δ* <= 0}) / (B + 1)`` and ``P_ge`` alike, as in
    :func:`monai_imbalance.metrics.compare_repeatability`.

    Args:
        correct_a, correct_b: ``(N,)`` 0/1 correctness of the two models on the same ``N`` images, aligned.
        patients: ``N`` patient ids.
        n_boot: bootstrap replicates.
        seed: bootstrap seed.

    Returns:
        ``{"metric": "accuracy", "a", "b", "difference": a - b, "ci": [lo, hi] of Δ*, "p_value",
        "n_images", "n_patients", "n_boot", "seed"}``.
    """
    a = _check_correct(correct_a, patients, "correct_a")
    b = _check_correct(correct_b, patients, "correct_b")
    n_boot = _check_n_boot(n_boot)
    counts, (sums_a, sums_b) = _patient_table(a, patients, b)
    draws = np.random.default_rng(seed).integers(0, len(counts), size=(n_boot, len(counts)))
    n = counts[draws].sum(axis=1)
    deltas = (sums_a[draws].sum(axis=1) - sums_b[draws].sum(axis=1)) / n
    p_le = (1 + np.sum(deltas <= 0)) / (n_boot + 1)
    p_ge = (1 + np.sum(deltas >= 0)) / (n_boot + 1)
    return {
        "metric": "accuracy",
        "a": float(a.mean()),
        "b": float(b.mean()),
        "difference": float(a.mean() - b.mean()),
        "ci": _interval(deltas),
        "p_value": float(min(1.0, 2.0 * min(p_le, p_ge))),
        "n_images": len(a),
        "n_patients": len(counts),
        "n_boot": n_boot,
        "seed": int(seed),
    }
