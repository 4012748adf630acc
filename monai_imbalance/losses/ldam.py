"""Label-distribution-aware margin (LDAM) loss (Cao et al., NeurIPS 2019).

Each class ``j`` with ``n_j`` training samples gets a margin ``Delta_j = K / n_j^(1/4)``, with ``K`` chosen so
that the largest margin (rarest class) equals ``max_m``. The true-class logit is lowered by its margin, all
logits are multiplied by ``s``, and the result goes into (optionally class-weighted) cross-entropy:

    z_c  = s * (x_c - Delta_y [c == y])
    LDAM = -w_y * log softmax(z)_y,   'mean' divided by sum w_y  (as F.cross_entropy)

``s = 30`` was designed for a *cosine* classifier head (normalised features and weights, logits in [-1, 1]).
With a plain linear head the scaled logits can be very large, and LDAM/LMF were found unstable in small trials;
the network factory of this package offers a normalised-linear (cosine) head for that reason. The official LMF
code uses a plain linear head. The original LDAM-DRW recipe adds deferred re-weighting
(:func:`monai_imbalance.losses.drw_class_weights`, :class:`monai_imbalance.handlers.DeferredReweighting`).

``cls_num_list`` must be ordered by class index (the order of the network outputs), not by, for example, an
unsorted directory listing.
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _WeightedLoss

from monai_imbalance.losses._inputs import (
    ClassVector,
    check_class_length,
    check_reduction,
    class_counts,
    class_vector,
    float_logits,
)
from monai_imbalance.losses._softmax_core import SoftmaxTerm, softmax_family_loss

__all__ = ["LDAMLoss", "ldam_loss", "ldam_margins"]


def ldam_margins(cls_num_list: ClassVector, max_m: float = 0.5) -> torch.Tensor:
    """Per-class margins ``Delta_j`` proportional to ``n_j^(-1/4)``, the largest equal to ``max_m``.

    Args:
        cls_num_list: training samples per class, ordered by class index, all ``> 0``.
        max_m: margin of the rarest class, ``> 0``.

    Returns:
        Float64 tensor of shape ``(C,)`` (the losses cast it to the input's dtype at use).

    Raises:
        ValueError: invalid counts or ``max_m``.
    """
    counts = class_counts(cls_num_list)
    max_m = float(max_m)
    if not max_m > 0 or max_m == float("inf"):
        raise ValueError(f"max_m must be a finite number > 0, got {max_m}.")
    margins = counts**-0.25
    return torch.as_tensor(margins * (max_m / margins.max()), dtype=torch.float64)


def _check_scale(s: float) -> float:
    s = float(s)
    if not s > 0 or s == float("inf"):
        raise ValueError(f"s (logit scale) must be a finite number > 0, got {s}.")
    return s


def _ldam(
    input: torch.Tensor,
    target: torch.Tensor,
    margins: torch.Tensor,
    s: float,
    weight: torch.Tensor | None,
    include_background: bool,
    to_onehot_y: bool | None,
    ignore_index: int | None,
    reduction: str,
) -> torch.Tensor:
    """LDAM with validated margins, scale, weight and reduction."""
    input = float_logits(input, min_channels=2)
    channels = input.shape[1]
    check_class_length(margins, channels, "cls_num_list")
    check_class_length(weight, channels, "weight")
    return softmax_family_loss(
        input,
        target,
        (SoftmaxTerm(scale=s, margins=margins),),
        weight=weight,
        include_background=include_background,
        to_onehot_y=to_onehot_y,
        ignore_index=ignore_index,
        reduction=reduction,
    )


def ldam_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    cls_num_list: ClassVector,
    max_m: float = 0.5,
    s: float = 30.0,
    weight: ClassVector | None = None,
    *,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """LDAM loss (see the module docstring).

    Args:
        input: logits ``(B, C)`` or ``(B, C, *S)``, ``C = len(cls_num_list)``.
        target: class indices ``(B[, 1][, *S])`` or one-hot ``(B, C[, *S])`` (soft targets have no margin).
        cls_num_list: training samples per class, ordered by class index.
        max_m: largest margin.
        s: logit scale.
        weight: class weights ``(C,)`` (e.g. :func:`drw_class_weights` in the DRW phase).
        include_background: ``False`` gives class 0 zero weight.
        to_onehot_y: ``None`` infers label map vs one-hot from the shape.
        ignore_index: label value excluded from the loss and the normaliser.
        reduction: ``"none"`` -> ``(B[, *S])``; ``"mean"``; ``"sum"``.
    """
    return _ldam(
        input,
        target,
        ldam_margins(cls_num_list, max_m),
        _check_scale(s),
        class_vector(weight, "weight"),
        include_background,
        to_onehot_y,
        ignore_index,
        check_reduction(reduction),
    )


class LDAMLoss(_WeightedLoss):
    """LDAM loss module (see the module docstring for the formula and the cosine-head note).

    Args:
        cls_num_list: training samples per class, ordered by class index (length ``C``, all ``> 0``).
        max_m: largest margin (rarest class).
        s: logit scale (30, designed for a cosine head).
        weight: class weights ``(C,)``, a buffer updated in place by
            :class:`monai_imbalance.handlers.DeferredReweighting`.
        include_background: ``False`` gives class 0 zero weight.
        to_onehot_y: ``None`` infers label map vs one-hot from the shape.
        ignore_index: label value excluded from the loss.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Shapes: ``input (B, C[, *S])`` logits; ``target`` class indices ``(B[, 1][, *S])`` or one-hot.

    Example:
        >>> loss = LDAMLoss([500, 50, 5])
        >>> loss(torch.randn(4, 3), torch.tensor([0, 2, 1, 2])).shape
        torch.Size([])
    """

    weight: torch.Tensor | None
    margins: torch.Tensor

    def __init__(
        self,
        cls_num_list: ClassVector,
        max_m: float = 0.5,
        s: float = 30.0,
        weight: ClassVector | None = None,
        *,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        margins = ldam_margins(cls_num_list, max_m)
        weight_vec = class_vector(weight, "weight")
        check_class_length(weight_vec, margins.numel(), "weight")
        super().__init__(weight=weight_vec, reduction=check_reduction(reduction))
        self.max_m = float(max_m)
        self.s = _check_scale(s)
        self.register_buffer("margins", margins, persistent=False)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C[, *S])`` logits, ``target`` indices or one-hot; returns the reduced loss."""
        return _ldam(
            input,
            target,
            self.margins,
            self.s,
            self.weight,
            self.include_background,
            self.to_onehot_y,
            self.ignore_index,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return f"classes={self.margins.numel()}, max_m={self.max_m}, s={self.s}, reduction={self.reduction!r}"
