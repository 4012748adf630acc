"""Uncertainty scores of a prediction, one function per score: what referral ranks the cases by.

All take channel-first probabilities ``(B, C, *spatial)`` (a classification batch is ``(B, C)``) and return
one score per case (or pixel), larger meaning less certain. With ``activation="softmax"`` (the default) the
classes are the channels and every score has shape ``(B, 1, *spatial)``; with ``activation="sigmoid"`` every
channel is its own binary problem and the scores keep the shape ``(B, C, *spatial)``.

- :func:`max_probability_uncertainty` ``u = 1 - max_c p_c`` (sigmoid: ``1 - max(p, 1 - p)``): needs one
  deterministic pass, so it is the baseline every Monte Carlo score has to beat;
- :func:`predictive_entropy` ``H[p] = -sum_c p_c log p_c`` in nats (sigmoid: the binary entropy);
- :func:`mutual_information` (BALD) ``H[mean_s p_s] - mean_s H[p_s] >= 0`` over ``S`` Monte Carlo passes:
  the part of the predictive entropy that comes from disagreement between the passes;
- :func:`predicted_class_variance` the variance over the passes of the probability of the predicted class
  ``argmax_c mean_s p_s`` (sigmoid: the variance of every channel).

:class:`monai_imbalance.inferers.MCDropoutInferer` computes entropy and mutual information with
:func:`entropy` (running means over the passes, no stored samples); :func:`uncertainty_from_output`
picks a named score (:data:`UNCERTAINTY_SCORES`) from its ``last_output`` dict, or from plain
probabilities for the scores that need no Monte Carlo passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = [
    "MC_ONLY_SCORES",
    "UNCERTAINTY_SCORES",
    "entropy",
    "max_probability_uncertainty",
    "mutual_information",
    "predicted_class_variance",
    "predictive_entropy",
    "uncertainty_from_output",
]

#: names of the uncertainty scores, as :func:`uncertainty_from_output` and the bundles' ``--uncertainty`` take them
UNCERTAINTY_SCORES = ("max_probability", "entropy", "mutual_information", "variance")
#: the scores that need Monte Carlo passes (the spread of the passes)
MC_ONLY_SCORES = ("mutual_information", "variance")

_ACTIVATIONS = ("softmax", "sigmoid")


def _check_activation(activation: str) -> None:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")


def entropy(probs: torch.Tensor, *, activation: str = "softmax") -> torch.Tensor:
    """Entropy in nats: softmax over channel dim 1 (kept, ``(B, 1, ...)``); sigmoid per element (binary entropy).

    ``0 log 0 = 0`` (``torch.special.xlogy``), so saturated probabilities give exactly 0.
    """
    _check_activation(activation)
    if activation == "softmax":
        return -torch.special.xlogy(probs, probs).sum(dim=1, keepdim=True)
    q = 1.0 - probs
    return -(torch.special.xlogy(probs, probs) + torch.special.xlogy(q, q))


def max_probability_uncertainty(probs: torch.Tensor, *, activation: str = "softmax") -> torch.Tensor:
    """``1 - max_c p_c`` over channel dim 1 (kept, ``(B, 1, ...)``); sigmoid: ``1 - max(p, 1 - p)`` per element.

    In ``[0, 1 - 1/C]``; 0 for a saturated prediction.
    """
    _check_activation(activation)
    if activation == "softmax":
        return 1.0 - probs.amax(dim=1, keepdim=True)
    return 1.0 - torch.maximum(probs, 1.0 - probs)


def predictive_entropy(probs: torch.Tensor, *, activation: str = "softmax") -> torch.Tensor:
    """The entropy :math:`H[\\bar p]` of the (mean) prediction, ``(B, 1, ...)`` (sigmoid: ``(B, C, ...)``).

    Same as :func:`entropy`; the name says which probabilities it is meant for (the mean over the passes).
    """
    return entropy(probs, activation=activation)


def mutual_information(samples: torch.Tensor, *, activation: str = "softmax") -> torch.Tensor:
    """BALD from stored passes ``samples`` ``(S, B, C, ...)``, clamped at 0.

    :math:`I = H[\\bar p] - \\frac1S \\sum_s H[p_s]`.

    Returns ``(B, 1, ...)`` (sigmoid: ``(B, C, ...)``). Non-negative in exact arithmetic (entropy is
    concave); the clamp removes rounding below 0.
    """
    if samples.ndim < 3:
        raise ValueError(f"samples must have shape (S, B, C, ...), got {tuple(samples.shape)}")
    mean = samples.mean(dim=0)
    expected = torch.stack([entropy(s, activation=activation) for s in samples.unbind(0)]).mean(dim=0)
    return (entropy(mean, activation=activation) - expected).clamp_min(0.0)


def predicted_class_variance(
    mean: torch.Tensor, variance: torch.Tensor, *, activation: str = "softmax"
) -> torch.Tensor:
    """Variance over the passes of the predicted class's probability.

    Args:
        mean: ``(B, C, ...)`` mean probabilities over the passes; the predicted class is ``argmax_c``.
        variance: ``(B, C, ...)`` per-element variance over the passes (the inferer's ``"variance"``).
        activation: ``"softmax"``: ``variance[b, argmax_c mean[b, c]]``, ``(B, 1, ...)``; ``"sigmoid"``:
            the variance itself (every channel is its own prediction).
    """
    _check_activation(activation)
    if mean.shape != variance.shape:
        raise ValueError(f"mean {tuple(mean.shape)} and variance {tuple(variance.shape)} must have one shape")
    if activation == "sigmoid":
        return variance
    return variance.gather(1, mean.argmax(dim=1, keepdim=True))


def uncertainty_from_output(
    output: Mapping[str, Any] | torch.Tensor, score: str = "max_probability", *, activation: str = "softmax"
) -> torch.Tensor:
    """The uncertainty ``score`` (one of :data:`UNCERTAINTY_SCORES`) of a prediction.

    Args:
        output: class probabilities ``(B, C, ...)`` of a deterministic pass, or the dict that
            :class:`~monai_imbalance.inferers.MCDropoutInferer` leaves in ``last_output`` (``"mean"``,
            ``"variance"``, ``"entropy"``, ``"mutual_information"``).
        score: ``"max_probability"`` (``1 - max p``) and ``"entropy"`` work with either;
            ``"mutual_information"`` and ``"variance"`` need the Monte Carlo dict (:data:`MC_ONLY_SCORES`).
        activation: ``"softmax"`` or ``"sigmoid"``, as the probabilities were made.

    Returns:
        ``(B, 1, ...)`` for softmax, ``(B, C, ...)`` for sigmoid (float, on the input's device).

    Raises:
        ValueError: an unknown score, or a Monte Carlo score asked of plain probabilities.
    """
    if score not in UNCERTAINTY_SCORES:
        raise ValueError(f"unknown uncertainty score {score!r}; choose one of {UNCERTAINTY_SCORES}")
    mc = isinstance(output, Mapping)
    probs = output["mean"] if mc else output
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"the probabilities must be a tensor, got {type(probs).__name__}")
    probs = probs.as_tensor() if hasattr(probs, "as_tensor") else probs
    if score == "max_probability":
        return max_probability_uncertainty(probs, activation=activation)
    if score == "entropy":
        given = output.get("entropy") if mc else None
        return given if given is not None else predictive_entropy(probs, activation=activation)
    if not mc or output.get(score) is None:
        raise ValueError(
            f"the uncertainty score {score!r} needs Monte Carlo dropout passes (e.g. --mc_dropout true); "
            "without them use 'max_probability' or 'entropy'"
        )
    if score == "mutual_information":
        return output["mutual_information"]
    return predicted_class_variance(probs, output["variance"], activation=activation)
