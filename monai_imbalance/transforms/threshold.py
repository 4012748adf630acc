"""Decision thresholds: choose them on validation predictions, apply them as a MONAI post-processing transform.

Thresholding is the cheapest baseline against class imbalance in the batch-balanced focal loss paper:
train normally, then move the decision rule so the minority class is predicted more often.

- Binary (:func:`select_threshold`): predict the positive class iff ``p >= t`` where ``p`` is its
  probability; ``t`` maximises F1 ``= 2 TP / (2 TP + FP + FN)`` or Youden's ``J = TPR - FPR`` on the
  validation set.
- Multiclass (:func:`prior_correction`): divide the probabilities by the training class priors
  ``pi_c = n_c / sum_k n_k`` and renormalise, ``q_c = (p_c / pi_c) / sum_k (p_k / pi_k)``, then take
  ``argmax_c q_c``. This undoes the prior the network learnt from the imbalanced training set (Bayes'
  rule with a uniform target prior). Use it with models trained *without* rebalancing: after a balanced
  sampler or a class-weighted loss the learnt prior is already flat and the correction would double it.

``monai_imbalance.handlers.ThresholdSelector`` makes the choice during validation and stores it in the
metrics JSON; :class:`ApplyThreshold` / :class:`ApplyThresholdd` read it back at evaluation. In an
evaluate.yaml (after ``Activationsd``, instead of ``AsDiscreted(argmax=True)``)::

    postprocessing:
      _target_: Compose
      transforms:
        - _target_: Activationsd
          keys: pred
          softmax: true
        - _target_: monai_imbalance.transforms.ApplyThresholdd
          keys: pred
          metrics_json: "$@bundle_root + '/models/metrics.json'"
          key: decision_threshold
          to_onehot: "@num_classes"
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.networks.utils import one_hot
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_imbalance.reporting import load_metrics_json

__all__ = [
    "THRESHOLD_CRITERIA",
    "ApplyThreshold",
    "ApplyThresholdd",
    "class_priors",
    "prior_correction",
    "read_decision_rule",
    "select_threshold",
]

THRESHOLD_CRITERIA = ("f1", "youden")

_PROBABILITY_TOLERANCE = 1e-6


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, torch.Tensor) for i in x):
        return torch.stack([i.detach().cpu() for i in x]).numpy()
    try:
        return np.asarray(x)
    except ValueError as e:
        raise ValueError(f"{name} could not be read as an array: {e}") from e


def _check_probability_range(p: np.ndarray, name: str) -> None:
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point probabilities, got dtype {p.dtype}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if p.size and (p.min() < -_PROBABILITY_TOLERANCE or p.max() > 1 + _PROBABILITY_TOLERANCE):
        raise ValueError(
            f"{name} must hold probabilities in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]; "
            "apply sigmoid/softmax to the logits first (e.g. Activationsd)"
        )


def _binary_inputs(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` positive-class probabilities and ``(N,)`` 0/1 labels from the accepted layouts."""
    p = _as_numpy(probs, "probs")
    if p.ndim == 2 and p.shape[1] in (1, 2):
        p = p[:, -1]
    if p.ndim != 1:
        raise ValueError(
            f"probs must have shape (N,), (N, 1) (sigmoid) or (N, 2) (softmax) for a binary threshold, got "
            f"{tuple(p.shape)}; use prior_correction for more classes"
        )
    _check_probability_range(p, "probs")
    y = _as_numpy(labels, "labels")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 2:  # one-hot
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"labels of shape {tuple(y.shape)} are read as one-hot, but the rows are not one-hot")
        y = y[:, 1]
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), (N, 1) or one-hot (N, 2), got {tuple(y.shape)}")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} samples but probs has {p.shape[0]}")
    if y.size == 0:
        raise ValueError("no samples: probs and labels are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary labels must be 0 or 1, got values {np.unique(y)[:10].tolist()}")
    y = y.astype(np.int64)
    if y.min() == y.max():
        raise ValueError(f"a threshold needs both classes in the validation labels, all {y.size} labels are {y[0]}")
    return p.astype(np.float64), y


def select_threshold(probs: Any, labels: Any, criterion: str = "f1") -> tuple[float, float]:
    """The binary decision threshold that maximises F1 or Youden's J on validation predictions.

    The positive class is predicted iff ``p >= t``. Candidate rules cut between consecutive distinct
    probabilities ``v_1 > v_2 > ... > v_m``: cutting below ``v_j`` gives
    ``TP_j = #{positives with p >= v_j}``, ``FP_j = #{negatives with p >= v_j}`` and, with ``P`` positives and
    ``Q`` negatives,

    - ``F1_j = 2 TP_j / (TP_j + FP_j + P)``,
    - ``J_j = TP_j / P - FP_j / Q``.

    The best ``j`` (the largest threshold among ties) gives ``t = (v_j + v_{j+1}) / 2`` (``v_{m+1} = 0``),
    the midpoint of the interval of thresholds that all make the same validation predictions.

    Args:
        probs: positive-class probabilities ``(N,)``, ``(N, 1)`` (sigmoid) or ``(N, 2)`` (softmax; column 1 is
            used). Tensor, array or list.
        labels: ``(N,)``/``(N, 1)`` labels in {0, 1} or one-hot ``(N, 2)``.
        criterion: ``"f1"`` or ``"youden"``.

    Returns:
        ``(threshold, score)``: the threshold in ``[0, 1]`` and the criterion's value there, plain floats.

    Raises:
        ValueError: an unknown criterion, values outside [0, 1] (logits), mismatched lengths, labels other
            than 0/1 or only one class present.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"criterion must be one of {THRESHOLD_CRITERIA}, got {criterion!r}")
    p, y = _binary_inputs(probs, labels)
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    last_of_value = np.flatnonzero(np.append(p[1:] != p[:-1], True))  # cut after each distinct value
    tp, fp, values = tp[last_of_value], fp[last_of_value], p[last_of_value]
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    score = 2.0 * tp / (tp + fp + positives) if criterion == "f1" else tp / positives - fp / negatives
    best = int(np.argmax(score))  # first maximum = largest threshold
    lower = values[best + 1] if best + 1 < values.size else 0.0
    return float((values[best] + lower) / 2.0), float(score[best])


def class_priors(counts: Sequence[float] | np.ndarray | torch.Tensor) -> list[float]:
    """Class priors ``pi_c = n_c / sum_k n_k`` from training class counts (e.g. ``monai_imbalance.data.class_counts``).

    Raises:
        ValueError: no counts, or a count that is not positive and finite.
    """
    n = _as_numpy(counts, "counts").astype(np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence (one per class), got shape {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"every class count must be positive and finite to form a prior, got {n.tolist()}")
    return [float(v) for v in n / n.sum()]


def _check_priors(priors: Any) -> np.ndarray:
    pi = _as_numpy(priors, "class_priors").astype(np.float64)
    if pi.ndim != 1 or pi.size < 2:
        raise ValueError(f"class_priors must list at least 2 class priors, got shape {pi.shape}")
    if not np.all(np.isfinite(pi)) or np.any(pi <= 0):
        raise ValueError(f"class priors must be positive and finite, got {pi.tolist()}")
    return pi / pi.sum()


def prior_correction(probs: NdarrayOrTensor, priors: Sequence[float] | np.ndarray | torch.Tensor, dim: int = 1):
    """Divide class probabilities by the training priors and renormalise: ``q_c = (p_c / pi_c) / sum_k p_k / pi_k``.

    Args:
        probs: probabilities with the ``C`` classes along ``dim``, e.g. ``(N, C)`` (``dim=1``) or a channel-first
            item ``(C, *spatial)`` (``dim=0``). Tensor or array; the result has the same type, device and dtype.
        priors: ``C`` positive class priors (normalised here), e.g. :func:`class_priors` of the training counts.
        dim: the class dimension.

    Raises:
        ValueError: the number of priors differs from the size of ``dim``, or priors that are not positive.
    """
    pi = _check_priors(priors)
    p = convert_to_tensor(probs, track_meta=False)
    if p.shape[dim] != pi.size:
        raise ValueError(f"probs has {p.shape[dim]} classes along dim {dim}, but {pi.size} class priors were given")
    shape = [1] * p.ndim
    shape[dim] = -1
    compute_dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
    weights = torch.as_tensor(1.0 / pi, device=p.device, dtype=compute_dtype).reshape(shape)
    q = p.to(compute_dtype) * weights
    q = q / q.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(compute_dtype).tiny)
    out, *_ = convert_to_dst_type(q, probs, dtype=p.dtype)
    return out


def read_decision_rule(metrics_json: str | os.PathLike, key: str = "decision_threshold") -> dict[str, Any]:
    """Read a stored decision rule: ``{"threshold": t}`` or ``{"class_priors": [...]}``.

    The entry ``key`` of the JSON object may be a number (the threshold) or an object with ``"threshold"`` or
    ``"class_priors"`` (as written by ``monai_imbalance.handlers.ThresholdSelector``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the key is missing or holds neither a threshold nor class priors.
    """
    path = Path(metrics_json)
    if not path.is_file():
        raise FileNotFoundError(
            f"metrics JSON {path} not found: run the training (its ThresholdSelector writes the decision threshold "
            "there) or give the threshold directly"
        )
    content = load_metrics_json(path)
    if key not in content:
        raise ValueError(f"{path} has no entry {key!r} (keys: {sorted(content)}); was a ThresholdSelector attached?")
    entry = content[key]
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return {"threshold": float(entry)}
    if isinstance(entry, Mapping):
        if entry.get("threshold") is not None:
            return {"threshold": float(entry["threshold"])}
        if entry.get("class_priors") is not None:
            return {"class_priors": [float(v) for v in entry["class_priors"]]}
    raise ValueError(f"entry {key!r} of {path} holds neither a threshold nor class priors: {entry!r}")


class ApplyThreshold(Transform):
    """Turn channel-first class probabilities into the discrete prediction of a chosen decision rule.

    Input ``(C, *spatial)`` probabilities of one item (``spatial`` may be empty, for classification):

    - ``C == 1``: the sigmoid probability ``p`` of the positive class; ``C == 2``: softmax, ``p = x[1]``.
      With ``threshold=t`` the prediction is ``1[p >= t]``;
    - with ``class_priors`` (any ``C``; ``C == 1`` is read as ``[1 - p, p]``) it is
      ``argmax_c x_c / pi_c`` (:func:`prior_correction`).

    Output: the class index map ``(1, *spatial)``, or with ``to_onehot=K`` the one-hot ``(K, *spatial)``
    (as MONAI's ``AsDiscrete(argmax=True, to_onehot=K)``), of ``dtype``, same container type as the input.

    The rule comes from exactly one of ``threshold``, ``class_priors`` or ``metrics_json`` (read once, when the
    transform is created, with :func:`read_decision_rule`).

    Args:
        threshold: binary decision threshold in ``[0, 1]``.
        class_priors: ``C`` training class priors (or counts; they are normalised).
        metrics_json: path of the metrics JSON written by ``ThresholdSelector``.
        key: the entry in ``metrics_json``.
        to_onehot: number of classes for a one-hot output; ``None`` keeps the index map.
        dtype: output dtype.

    Raises:
        ValueError: not exactly one source, a threshold outside [0, 1], a threshold for more than 2 classes,
            priors that do not match the channels, or inputs outside [0, 1].
        FileNotFoundError: ``metrics_json`` does not exist.
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        metrics_json: str | os.PathLike | None = None,
        key: str = "decision_threshold",
        to_onehot: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        given = [name for name, v in (("threshold", threshold), ("class_priors", class_priors)) if v is not None]
        if metrics_json is not None:
            given.append("metrics_json")
        if len(given) != 1:
            raise ValueError(f"give exactly one of threshold, class_priors or metrics_json, got {given or 'none'}")
        if metrics_json is not None:
            rule = read_decision_rule(metrics_json, key)
            threshold, class_priors = rule.get("threshold"), rule.get("class_priors")
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        if to_onehot is not None and (isinstance(to_onehot, bool) or not isinstance(to_onehot, int) or to_onehot < 2):
            raise ValueError(f"to_onehot must be the number of classes (an int >= 2) or None, got {to_onehot!r}")
        self.threshold = None if threshold is None else float(threshold)
        self.class_priors = None if class_priors is None else _check_priors(class_priors).tolist()
        self.to_onehot = to_onehot
        self.dtype = dtype

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img``: ``(C, *spatial)`` probabilities; returns ``(1, *spatial)`` indices or ``(K, *spatial)`` one-hot."""
        probs = convert_to_tensor(img, track_meta=get_track_meta())
        if probs.ndim < 1:
            raise ValueError("ApplyThreshold needs channel-first input (C, *spatial), got a 0-d value")
        if not torch.is_floating_point(probs):
            raise TypeError(f"ApplyThreshold needs floating-point probabilities, got dtype {probs.dtype}")
        if probs.numel():
            _check_probability_range(np.asarray([probs.min().item(), probs.max().item()]), "the input")
        channels = probs.shape[0]
        if self.threshold is not None:
            if channels > 2:
                raise ValueError(
                    f"a binary threshold needs 1 (sigmoid) or 2 (softmax) channels, got {channels}; "
                    "use class_priors for multiclass outputs"
                )
            index = (probs[-1:] >= self.threshold).to(torch.long)
        else:
            classes = torch.cat([1 - probs, probs]) if channels == 1 else probs
            index = prior_correction(classes, self.class_priors, dim=0).argmax(dim=0, keepdim=True)
        if self.to_onehot is not None:
            if self.to_onehot < max(channels, 2):
                raise ValueError(f"to_onehot={self.to_onehot} is fewer than the {max(channels, 2)} classes")
            out = one_hot(index, num_classes=self.to_onehot, dim=0, dtype=self.dtype)
        else:
            out = index
        result, *_ = convert_to_dst_type(out, img, dtype=self.dtype)
        return result


class ApplyThresholdd(MapTransform):
    """Dictionary version of :class:`ApplyThreshold`: applies the decision rule to ``data[key]`` for every key.

    Args:
        keys: keys of the probabilities to turn into predictions (typically ``"pred"``).
        threshold, class_priors, metrics_json, key, to_onehot, dtype: see :class:`ApplyThreshold`.
        allow_missing_keys: skip keys that are absent instead of raising ``KeyError``.
    """

    backend = ApplyThreshold.backend

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        metrics_json: str | os.PathLike | None = None,
        key: str = "decision_threshold",
        to_onehot: int | None = None,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ApplyThreshold(
            threshold=threshold,
            class_priors=class_priors,
            metrics_json=metrics_json,
            key=key,
            to_onehot=to_onehot,
            dtype=dtype,
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for k in self.key_iterator(d):
            d[k] = self.converter(d[k])
        return d
