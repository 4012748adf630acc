"""Read a referral rule back from a model folder and apply it: refer every case whose uncertainty exceeds it.

``monai_imbalance.handlers.ReferralSelector`` fits the rule on the validation split at the best epoch
(:func:`monai_imbalance.metrics.referral_threshold` for a target referral rate,
:func:`monai_imbalance.metrics.accuracy_referral_threshold` for a target accuracy of the kept cases) and writes
it into the model folder's ``metrics.json`` beside the decision rule::

    "referral_rule": {"score": "max_probability", "threshold": 0.31, "referral_rate": 0.2,
                      "target_accuracy": null, "referred_fraction": 0.2, "retained_accuracy": 0.84,
                      "mc_dropout": false, "temperature": 1.0, "epoch": 7, "num_samples": 1003}

Inference and evaluation apply the threshold unchanged (:func:`refer`): a case is referred iff its score (computed
the same way: same score, same temperature, same Monte Carlo setting) is larger than the threshold. New data refer
about the validation rate, not exactly it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_imbalance.errors import UserError
from monai_imbalance.metrics.uncertainty import UNCERTAINTY_SCORES
from monai_imbalance.reporting import load_metrics_json

__all__ = ["ReferralRuleError", "read_referral_rule", "refer"]


class ReferralRuleError(UserError, ValueError):
    """A stored referral rule that cannot be applied as asked."""


def read_referral_rule(metrics_json: str | os.PathLike, key: str = "referral_rule") -> dict[str, Any] | None:
    """The referral rule stored under ``key`` of a model folder's ``metrics.json``; ``None`` when there is none.

    Raises:
        ReferralRuleError: the entry is not a rule (no finite ``threshold``, or an unknown ``score``).
    """
    path = Path(metrics_json)
    if not path.is_file():
        return None
    entry = load_metrics_json(path).get(key)
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ReferralRuleError(f"entry {key!r} of {path} is not a referral rule: {entry!r}")
    threshold = entry.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ReferralRuleError(f"entry {key!r} of {path} has no finite 'threshold': {entry!r}")
    if entry.get("score") not in UNCERTAINTY_SCORES:
        raise ReferralRuleError(
            f"entry {key!r} of {path} names the score {entry.get('score')!r}, not one of {UNCERTAINTY_SCORES}"
        )
    return dict(entry)


def refer(uncertainty: torch.Tensor, rule: Mapping[str, Any] | float) -> torch.Tensor:
    """``uncertainty > threshold`` (bool, the input's shape): which cases the rule refers to a person."""
    threshold = rule["threshold"] if isinstance(rule, Mapping) else rule
    return torch.as_tensor(uncertainty).double() > float(threshold)
