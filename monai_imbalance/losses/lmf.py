"""Large-margin-aware focal (LMF) loss (Sadi et al., 2023): ``alpha * LDAM + beta * Focal``.

    LMF = alpha * LDAM(x, y) + beta * FL(x, y)

with LDAM on the margin-shifted, scaled logits ``s * (x - Delta_y e_y)`` (:mod:`.ldam`) and the softmax focal
loss ``-(1 - p_t)^gamma log p_t`` on the *raw* logits (:mod:`.focal`). Two class weightings:

- ``weighting="standard"`` (default): the class ``weight`` ``w`` enters both terms and 'mean' divides both by
  ``sum_i w_{y_i}``, so ``lmf == alpha * ldam + beta * focal`` for every reduction (no weight: plain means).
- ``weighting="official"``: the official training script (github.com/Adnan-Sadi/LMFLOSS, ``train.py``) passes the
  LDAM margins ``m = Delta`` themselves as class weights to both terms, normalised differently:

      LMF = alpha * sum_i m_{y_i} LDAM_i / sum_i m_{y_i}  +  beta * (1/N) sum_i m_{y_i} FL_i

  (the LDAM term is ``F.cross_entropy(weight=m)``; the focal term is the ``alpha=m`` focal loss of
  github.com/AdeelH/pytorch-multi-class-focal-loss, whose 'mean' divides by the element count ``N``). A ``weight``
  given as well multiplies ``m`` (e.g. deferred re-weighting on top). ``get_loss("lmf_official", ...)`` selects it.

Defaults are the official training setting (``config.ini``: ``alpha = 1.5`` on LDAM, ``beta = 1.0`` on focal,
``gamma = 1.5``, ``max_m = 0.5``, ``s = 30``; in that code ``max_m`` is effectively fixed at 0.5 because the
margins come from ``get_mlist(counts)`` with its default); the article reports that equal weights
(``alpha = beta``) work well. The full official setting is ``LMFLoss(counts, weighting="official")``; with the
default ``weighting="standard"`` and no ``weight`` the loss is unweighted, which is not the official value.
The ``losses.py`` of github.com/SanaNazari/LMFLoss (a later, separate code) differs between its versions: one has
``alpha = beta = 1``, ``gamma = 2``, ``max_m = 0.5``, ``s = 30``, a later one ``alpha = beta = 0.2``,
``gamma = 2``, ``max_m = 0.8``, ``s = 5``, and both put ``alpha`` on the *focal* term; here ``alpha`` always
weights LDAM, so ``LMFLoss(alpha=b, beta=a)`` reproduces that code's ``(alpha=a, beta=b)``.
Unlike that code, the focal factor is computed per sample from ``log_softmax``, not from the batch-mean
cross-entropy nor as ``exp(-weighted CE)``.

The official LMF setting uses a plain linear classifier head; ``s = 30`` was designed for a cosine head, which
was more stable in small trials (see :mod:`.ldam`). With ``weighting="standard"`` both terms run in one fused
kernel with a closed-form gradient: first derivatives only (a second backward pass raises).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _WeightedLoss

from monai_imbalance.losses._inputs import (
    ClassVector,
    check_class_length,
    check_gamma,
    check_reduction,
    class_vector,
    float_logits,
)
from monai_imbalance.losses._softmax_core import SoftmaxTerm, softmax_family_loss
from monai_imbalance.losses.ldam import _check_scale, ldam_margins

__all__ = ["LMFLoss", "lmf_loss"]


def _check_coefficient(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return value


def _lmf(
    input: torch.Tensor,
    target: torch.Tensor,
    margins: torch.Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    s: float,
    weight: torch.Tensor | None,
    weighting: str,
    include_background: bool,
    to_onehot_y: bool | None,
    ignore_index: int | None,
    reduction: str,
) -> torch.Tensor:
    """LMF with validated arguments."""
    input = float_logits(input, min_channels=2)
    channels = input.shape[1]
    check_class_length(margins, channels, "cls_num_list")
    check_class_length(weight, channels, "weight")
    ldam = SoftmaxTerm(coef=alpha, scale=s, margins=margins)
    focal = SoftmaxTerm(coef=beta, gamma=gamma)
    common = {
        "include_background": include_background,
        "to_onehot_y": to_onehot_y,
        "ignore_index": ignore_index,
        "reduction": reduction,
    }
    if weighting == "standard":
        return softmax_family_loss(input, target, (ldam, focal), weight=weight, **common)
    # official: the margins are the class weights; LDAM normalised by their sum, focal ('alpha') by the count
    class_weight = margins if weight is None else margins * weight.to(margins)
    return softmax_family_loss(input, target, (ldam,), weight=class_weight, **common) + softmax_family_loss(
        input, target, (focal,), alpha=class_weight, **common
    )


_WEIGHTINGS = ("standard", "official")


def _check_weighting(weighting: str) -> str:
    if weighting not in _WEIGHTINGS:
        raise ValueError(
            f"weighting must be 'standard' (weight on both terms, normalised by its sum) or 'official' (the "
            f"official LMF code: LDAM margins as class weights), got {weighting!r}."
        )
    return weighting


def lmf_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    cls_num_list: ClassVector,
    alpha: float = 1.5,
    beta: float = 1.0,
    gamma: float = 1.5,
    max_m: float = 0.5,
    s: float = 30.0,
    weight: ClassVector | None = None,
    *,
    weighting: str = "standard",
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """LMF loss ``alpha * LDAM + beta * Focal`` (see the module docstring).

    Args:
        input: logits ``(B, C)`` or ``(B, C, *S)``, ``C = len(cls_num_list)``.
        target: class indices ``(B[, 1][, *S])`` or one-hot ``(B, C[, *S])``.
        cls_num_list: training samples per class, ordered by class index.
        alpha: weight of the LDAM term.
        beta: weight of the focal term.
        gamma: focal exponent.
        max_m: largest LDAM margin.
        s: LDAM logit scale.
        weight: class weights ``(C,)`` used by both terms.
        weighting: ``"standard"`` or ``"official"`` (the margins as class weights, see the module docstring).
        include_background: ``False`` gives class 0 zero weight.
        to_onehot_y: ``None`` infers label map vs one-hot from the shape.
        ignore_index: label value excluded from the loss and the normaliser.
        reduction: ``"none"`` -> ``(B[, *S])``; ``"mean"``; ``"sum"``.
    """
    return _lmf(
        input,
        target,
        ldam_margins(cls_num_list, max_m),
        _check_coefficient(alpha, "alpha"),
        _check_coefficient(beta, "beta"),
        check_gamma(gamma),
        _check_scale(s),
        class_vector(weight, "weight"),
        _check_weighting(weighting),
        include_background,
        to_onehot_y,
        ignore_index,
        check_reduction(reduction),
    )


class LMFLoss(_WeightedLoss):
    """LMF loss module: ``alpha * LDAM + beta * Focal`` (official hyper-parameters; see the module docstring).

    The official training setting is ``LMFLoss(cls_num_list, weighting="official")`` (``get_loss("lmf_official")``):
    the defaults below are its hyper-parameters, and ``weighting="official"`` adds its class weights (the LDAM
    margins, on both terms). The default ``weighting="standard"`` without ``weight`` is unweighted.

    Args:
        cls_num_list: training samples per class, ordered by class index (length ``C``, all ``> 0``).
        alpha: weight of the LDAM term (1.5 in the official code).
        beta: weight of the focal term (1.0).
        gamma: focal exponent (1.5).
        max_m: largest LDAM margin (0.5).
        s: LDAM logit scale (30; designed for a cosine head, the official LMF code uses a linear head).
        weight: class weights ``(C,)`` for both terms, a buffer (updatable in place); with ``"official"`` they
            multiply the margins.
        weighting: ``"standard"`` (``weight`` on both terms, 'mean' divided by its sum) or ``"official"`` (the
            official code: margins ``m`` as class weights, LDAM divided by ``sum m_y``, focal by the count).
        include_background: ``False`` gives class 0 zero weight.
        to_onehot_y: ``None`` infers label map vs one-hot from the shape.
        ignore_index: label value excluded from the loss.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Shapes: ``input (B, C[, *S])`` logits; ``target`` class indices ``(B[, 1][, *S])`` or one-hot.

    Example:
        >>> loss = LMFLoss([500, 50, 5])
        >>> loss(torch.randn(4, 3), torch.tensor([0, 2, 1, 2])).shape
        torch.Size([])
    """

    weight: torch.Tensor | None
    margins: torch.Tensor

    def __init__(
        self,
        cls_num_list: ClassVector,
        alpha: float = 1.5,
        beta: float = 1.0,
        gamma: float = 1.5,
        max_m: float = 0.5,
        s: float = 30.0,
        weight: ClassVector | None = None,
        *,
        weighting: str = "standard",
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        margins = ldam_margins(cls_num_list, max_m)
        weight_vec = class_vector(weight, "weight")
        check_class_length(weight_vec, margins.numel(), "weight")
        super().__init__(weight=weight_vec, reduction=check_reduction(reduction))
        self.alpha = _check_coefficient(alpha, "alpha")
        self.beta = _check_coefficient(beta, "beta")
        self.gamma = check_gamma(gamma)
        self.max_m = float(max_m)
        self.s = _check_scale(s)
        self.weighting = _check_weighting(weighting)
        self.register_buffer("margins", margins, persistent=False)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C[, *S])`` logits, ``target`` indices or one-hot; returns the reduced loss."""
        return _lmf(
            input,
            target,
            self.margins,
            self.alpha,
            self.beta,
            self.gamma,
            self.s,
            self.weight,
            self.weighting,
            self.include_background,
            self.to_onehot_y,
            self.ignore_index,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"classes={self.margins.numel()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, "
            f"max_m={self.max_m}, s={self.s}, weighting={self.weighting!r}, reduction={self.reduction!r}"
        )
