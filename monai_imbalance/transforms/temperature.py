"""Temperature scaling (Guo et al. 2017): one number, fitted on validation, that repairs over- and under-confidence.

The calibrated probabilities are ``softmax(z / T)`` of the logits ``z``. ``T > 1`` flattens an over-confident
model's softmax, ``T < 1`` sharpens an under-confident one (focal-type losses make models under-confident). The
argmax, and so accuracy and macro-F1 of the plain argmax, never change; calibration, the uncertainty scores and
every decision rule that compares probabilities with a number do.

- :func:`fit_temperature` chooses ``T`` by the negative log-likelihood of the validation labels,
  ``NLL(T) = mean_n [logsumexp_c(z_nc / T) - z_{n,y_n} / T]``. ``NLL`` is convex in ``1/T``, so it has one minimum
  in ``log T``, which a golden-section search over ``log T in [log T_min, log T_max]`` finds deterministically
  (no learning rate, no random start; float64).
- Softmax is unchanged by adding a constant to every logit of a row, and ``log softmax(z) = z - logsumexp(z)``,
  so the log-probabilities serve as logits: ``softmax(log p / T) = softmax(z / T)``. :func:`temperature_scale`
  scales probabilities that way (what the handlers fit on: the validation evaluator keeps probabilities).
- :class:`TemperatureScaled` divides the logits by ``T`` in an evaluator's post-processing, before
  ``Activationsd(softmax=True)``; with Monte Carlo dropout
  :class:`~monai_imbalance.inferers.MCDropoutInferer` takes ``temperature`` and scales the logits of every pass.
- :func:`read_temperature` reads the fitted value back from the model folder's ``metrics.json``
  (``monai_imbalance.handlers.ReferralSelector`` writes it there).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import load_metrics_json

__all__ = [
    "CALIBRATION_METHODS",
    "TEMPERATURE_BOUNDS",
    "TemperatureScaled",
    "check_temperature",
    "fit_temperature",
    "read_temperature",
    "temperature_scale",
]

#: values of the bundles' ``--calibrate``
CALIBRATION_METHODS = ("none", "temperature")
#: the range :func:`fit_temperature` searches (a fit at a bound is reported)
TEMPERATURE_BOUNDS = (0.01, 100.0)

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_TINY = torch.finfo(torch.float32).tiny


class TemperatureError(UserError, ValueError):
    """A stored or given temperature that cannot be used."""


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a positive finite float, else :class:`TemperatureError` naming the value."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TemperatureError(f"temperature must be a positive number, got {temperature!r}")
    value = float(temperature)
    if not (math.isfinite(value) and value > 0.0):
        raise TemperatureError(f"temperature must be a positive finite number, got {temperature!r}")
    return value


def _log_probabilities(probs: torch.Tensor) -> torch.Tensor:
    return probs.double().clamp_min(_TINY).log()


def temperature_scale(probs: torch.Tensor, temperature: float, *, dim: int = 1) -> torch.Tensor:
    """``softmax(log p / T)`` along ``dim``: the probabilities the logits ``z / T`` would have given.

    Exact up to rounding (a probability that underflowed to 0 is read as the smallest float32). ``T = 1`` returns
    the input unchanged; the result has the input's dtype and device.
    """
    temperature = check_temperature(temperature)
    if temperature == 1.0:
        return probs
    return torch.softmax(_log_probabilities(probs) / temperature, dim=dim).to(probs.dtype)


def _nll(logits: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels))


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    probabilities: bool = False,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tolerance: float = 1e-7,
) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (module docstring).

    Args:
        logits: ``(N, C)`` logits (or, with ``probabilities=True``, class probabilities, read as their logs).
        labels: ``(N,)`` class indices.
        probabilities: ``logits`` holds probabilities (e.g. the softmax output of a validation evaluator).
        bounds: the search range ``(T_min, T_max)``; a minimum at a bound is returned with a warning.
        tolerance: the search stops when the bracket in ``log T`` is narrower than this.

    Returns:
        ``T`` as a Python float (deterministic: the same inputs give the same value on any device).
    """
    z = torch.as_tensor(logits).detach().cpu()
    y = torch.as_tensor(labels).detach().cpu().reshape(-1).long()
    if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] == 0:
        raise ValueError(f"logits must have shape (N, C) with N >= 1 and C >= 2, got {tuple(z.shape)}")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} samples but logits has {z.shape[0]}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be class indices 0..{z.shape[1] - 1}, got values {y.unique().tolist()}")
    low, high = (check_temperature(b) for b in bounds)
    if not low < high:
        raise ValueError(f"bounds must be (T_min, T_max) with T_min < T_max, got {bounds}")
    z = _log_probabilities(z) if probabilities else z.double()
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or infinite values")
    a, b = math.log(low), math.log(high)
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = _nll(z, y, c), _nll(z, y, d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = _nll(z, y, c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = _nll(z, y, d)
    log_t = (a + b) / 2.0
    if log_t - math.log(low) < 10 * tolerance or math.log(high) - log_t < 10 * tolerance:
        warnings.warn(
            f"the fitted temperature {math.exp(log_t):.4g} lies at the bound of the search range {bounds}: the "
            "validation predictions may be degenerate (e.g. all correct with full confidence)",
            stacklevel=2,
        )
    return math.exp(log_t)


def read_temperature(metrics_json: str | os.PathLike, key: str = "temperature") -> float:
    """The temperature stored in a model folder's ``metrics.json`` under ``key``; 1.0 when there is none.

    A missing file or entry means the model was trained without ``--calibrate temperature``: 1.0 leaves its
    logits as they are. The entry may be a number or an object with ``"temperature"``.

    Raises:
        TemperatureError: the entry holds no positive number.
    """
    path = Path(metrics_json)
    if not path.is_file():
        return 1.0
    entry = load_metrics_json(path).get(key)
    if entry is None:
        return 1.0
    value = entry.get("temperature") if isinstance(entry, Mapping) else entry
    try:
        return check_temperature(value)
    except TemperatureError as e:
        raise TemperatureError(f"entry {key!r} of {path}: {e}") from None


class TemperatureScaled(MapTransform):
    """Divide logits by a temperature: ``z / T`` (put it before ``Activationsd(softmax=True)``).

    Args:
        keys: the logits' keys, e.g. ``"pred"``.
        temperature: ``T > 0``; 1.0 leaves the data unchanged (no copy).
        allow_missing_keys: as in MONAI's ``MapTransform``.
    """

    def __init__(self, keys: KeysCollection, temperature: float = 1.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.temperature = check_temperature(temperature)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.temperature == 1.0:
            return d
        for key in self.key_iterator(d):
            d[key] = d[key] / self.temperature
        return d
