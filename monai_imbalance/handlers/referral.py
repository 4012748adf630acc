"""Ignite handler that fits temperature scaling and a referral rule on the validation predictions of the best epoch.

Attach it to the validation evaluator, beside :class:`~monai_imbalance.handlers.ThresholdSelector`, whose pattern
it follows: over every validation epoch it collects the class probabilities and labels; in the epochs where the
evaluator's key metric improves (the model the best checkpoint keeps) it fits, in this order,

1. with ``calibrate="temperature"``: one temperature ``T`` by the validation NLL
   (:func:`monai_imbalance.transforms.fit_temperature`), written as::

       "temperature": {"temperature": 1.7, "method": "nll", "nll_before": 0.71, "nll_after": 0.64,
                       "ece_before": 0.081, "ece_after": 0.023, "epoch": 7, "num_samples": 1003}

2. with a ``referral_rate`` or a ``target_accuracy``: the threshold on the uncertainty ``score`` of the
   (temperature-scaled) probabilities, :func:`monai_imbalance.metrics.referral_threshold` or
   :func:`monai_imbalance.metrics.accuracy_referral_threshold`, written as ``"referral_rule"`` (see
   :mod:`monai_imbalance.transforms.referral`); the accuracy is that of the argmax.

Both entries go into the model folder's ``metrics.json`` (:func:`monai_imbalance.reporting.update_metrics_json`),
where evaluation and inference read them back (:func:`~monai_imbalance.transforms.read_temperature`,
:func:`~monai_imbalance.transforms.read_referral_rule`) and apply them unchanged.

The validation pass is deterministic, so the rule is fitted on the scores one pass gives: ``"max_probability"`` or
``"entropy"``; the Monte Carlo scores (mutual information, variance) would need Monte Carlo passes on every
validation epoch and are refused. Temperature scaling moves the probabilities a binary decision threshold or a
prior correction compares, so it is refused together with a ``threshold_method`` (fit one or the other).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from monai_imbalance.errors import UserError, check_choice
from monai_imbalance.handlers.validation_fit import ValidationFitHandler
from monai_imbalance.metrics.calibration import expected_calibration_error, negative_log_likelihood
from monai_imbalance.metrics.selective import accuracy_referral_threshold, referral_threshold
from monai_imbalance.metrics.uncertainty import MC_ONLY_SCORES, UNCERTAINTY_SCORES, uncertainty_from_output
from monai_imbalance.transforms.temperature import CALIBRATION_METHODS, fit_temperature, temperature_scale

__all__ = ["ReferralSelector", "ReferralSettingsError"]


class ReferralSettingsError(UserError, ValueError):
    """Calibration and referral settings that contradict each other."""


def _optional_fraction(value: Any, name: str, *, upper_open: bool) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReferralSettingsError(f"{name} must be a number or none, got {value!r}")
    value = float(value)
    if upper_open and not 0.0 <= value < 1.0:
        raise ReferralSettingsError(f"{name} must lie in [0, 1), got {value}")
    if not upper_open and not 0.0 < value <= 1.0:
        raise ReferralSettingsError(f"{name} must lie in (0, 1], got {value}")
    return value


class ReferralSelector(ValidationFitHandler):
    """Fit the temperature and the referral threshold on each best validation epoch; write them to the metrics JSON.

    Args:
        metrics_json: the model folder's ``metrics.json`` (created if missing; other entries are kept).
        calibrate: ``"none"`` or ``"temperature"`` (:data:`~monai_imbalance.transforms.CALIBRATION_METHODS`).
        referral_rate: refer this fraction of the validation cases (in ``[0, 1)``), or ``None``.
        target_accuracy: refer until the kept validation cases reach this accuracy, or ``None``; at most one of
            ``referral_rate`` and ``target_accuracy``.
        uncertainty: the score of the rule, ``"max_probability"`` (``1 - max p``) or ``"entropy"``.
        threshold_method: the bundle's decision-threshold method; anything but ``"none"`` with
            ``calibrate="temperature"`` is refused (module docstring).
        output_transform: extracts ``(pred, label)`` from ``engine.state.output``; default
            ``from_engine(["pred", "label"])``. ``pred`` must hold softmax probabilities.
        only_on_best: fit only when the evaluator's key metric improved this epoch (without one: every epoch).
        save_rank: in distributed runs the predictions of all ranks are gathered; this rank writes.
        name: logger name; default the engine's logger.

    Attributes:
        result: the entries written last (``{"temperature": ..., "referral_rule": ...}``), ``None`` before.
    """

    purpose = "temperature and referral"
    min_classes = 2

    def __init__(
        self,
        metrics_json: str | os.PathLike,
        calibrate: str = "none",
        referral_rate: float | None = None,
        target_accuracy: float | None = None,
        uncertainty: str = "max_probability",
        threshold_method: str = "none",
        output_transform: Callable | None = None,
        only_on_best: bool = True,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        check_choice(calibrate, CALIBRATION_METHODS, "calibration method")
        check_choice(uncertainty, UNCERTAINTY_SCORES, "uncertainty score")
        if uncertainty in MC_ONLY_SCORES:
            raise ReferralSettingsError(
                f"the referral rule is fitted on the deterministic validation pass, which has no {uncertainty!r}; "
                "choose --referral_uncertainty max_probability or entropy"
            )
        self.referral_rate = _optional_fraction(referral_rate, "referral_rate", upper_open=True)
        self.target_accuracy = _optional_fraction(target_accuracy, "target_accuracy", upper_open=False)
        if self.referral_rate is not None and self.target_accuracy is not None:
            raise ReferralSettingsError(
                f"give a referral_rate ({self.referral_rate}) or a target_accuracy ({self.target_accuracy}), not both"
            )
        if calibrate == "temperature" and threshold_method not in (None, "none"):
            raise ReferralSettingsError(
                f"--calibrate temperature and --threshold_method {threshold_method} together: the decision rule would "
                "be chosen on probabilities the temperature then changes; use one of them"
            )
        super().__init__(
            metrics_json, output_transform=output_transform, only_on_best=only_on_best, save_rank=save_rank, name=name
        )
        self.calibrate = calibrate
        self.uncertainty = uncertainty

    @property
    def active(self) -> bool:
        """Whether there is anything to fit (a temperature or a referral rule)."""
        return self.calibrate != "none" or self.referral_rate is not None or self.target_accuracy is not None

    def fit(self, probs: torch.Tensor, labels: torch.Tensor, epoch: int) -> dict[str, Any]:
        return {key: {**value, "epoch": epoch} for key, value in self.choose(probs, labels).items()}

    def choose(self, probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """The entries for ``(N, C)`` softmax probabilities and ``(N,)`` labels (what is written, without epoch):
        ``"temperature"`` and / or ``"referral_rule"``."""
        entries: dict[str, Any] = {}
        temperature = 1.0
        if self.calibrate == "temperature":
            temperature = fit_temperature(probs, labels, probabilities=True)
            scaled = temperature_scale(probs, temperature)
            entries["temperature"] = {
                "temperature": temperature,
                "method": "nll",
                "nll_before": negative_log_likelihood(probs, labels),
                "nll_after": negative_log_likelihood(scaled, labels),
                "ece_before": expected_calibration_error(probs, labels),
                "ece_after": expected_calibration_error(scaled, labels),
                "num_samples": len(labels),
            }
            probs = scaled
        if self.referral_rate is None and self.target_accuracy is None:
            return entries
        u = uncertainty_from_output(probs, self.uncertainty)[:, 0]
        errors = (probs.argmax(dim=1) != labels).double()
        if self.referral_rate is not None:
            threshold = referral_threshold(u, rate=self.referral_rate)
        else:
            threshold = accuracy_referral_threshold(u, errors, target_accuracy=self.target_accuracy)
        kept = u.double() <= threshold
        entries["referral_rule"] = {
            "score": self.uncertainty,
            "threshold": threshold,
            "referral_rate": self.referral_rate,
            "target_accuracy": self.target_accuracy,
            "referred_fraction": float((~kept).double().mean()),
            "retained_accuracy": float(1.0 - errors[kept].mean()) if kept.any() else float("nan"),
            "mc_dropout": False,
            "temperature": temperature,
            "num_samples": len(labels),
        }
        return entries
