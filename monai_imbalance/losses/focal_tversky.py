"""Focal Tversky loss (Abraham & Khan, ISBI 2019).

Per image ``b`` (or over the batch with ``batch=True``) and class ``c``, with probabilities ``p`` and a one-hot
(or soft) target ``g`` summed over the spatial positions:

    TP = sum p g,   FN = sum (1 - p) g,   FP = sum p (1 - g)
    TI = (TP + s) / (TP + alpha FN + beta FP + s)
    FTL_bc = (1 - TI_bc)^(1 / gamma)

The exponent is applied per class *before* any reduction; ``'mean'`` averages over images and classes, ``'sum'``
adds them (the paper's class sum is ``'sum'`` with ``batch=True``). ``pooling`` says what one index covers:
``"image"`` (default; one per image and class, MONAI's ``batch=False``), ``"batch"`` (one per class over the
batch, ``batch=True``) or ``"all"`` (one index over the batch *and* the channels). The reference code
(github.com/nabsabraham/focal-tversky-unet, ``losses.py``: ``K.flatten``, smooth 1, ``gamma = 0.75 = 1 / (4/3)``)
is ``pooling="all"`` with the defaults. Paper defaults: ``alpha = 0.7`` on false
negatives, ``beta = 0.3`` on false positives, ``gamma = 4/3``, ``s = 1``. Note that MONAI's ``TverskyLoss``
puts ``alpha`` on false *positives* and ``beta`` on false negatives: the paper's setting there is
``TverskyLoss(alpha=0.3, beta=0.7)``.

``(1 - TI)^(1/gamma)`` with ``gamma > 1`` has an unbounded slope at ``TI = 1``; ``1 - TI`` is clamped to the
smallest normal float so the gradient stays finite (zero) for a perfect prediction.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_imbalance.losses._inputs import (
    activate,
    check_activation,
    check_reduction,
    dense_target,
    empty_batch_loss,
    float_logits,
    pooled_axes,
    reduce_loss,
)

__all__ = ["FocalTverskyLoss", "focal_tversky_loss"]


def _check_parameters(alpha: float, beta: float, gamma: float, smooth: float) -> tuple[float, float, float, float]:
    alpha, beta, gamma, smooth = float(alpha), float(beta), float(gamma), float(smooth)
    for name, value in (("alpha", alpha), ("beta", beta), ("smooth", smooth)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    if not math.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma must be a finite number > 0 (the exponent is 1/gamma), got {gamma}.")
    return alpha, beta, gamma, smooth


def _focal_tversky(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    smooth: float,
    sigmoid: bool,
    softmax: bool,
    other_act: Callable[[torch.Tensor], torch.Tensor] | None,
    include_background: bool,
    to_onehot_y: bool | None,
    batch: bool,
    pooling: str | None,
    reduction: str,
) -> torch.Tensor:
    input = float_logits(input)
    onehot = dense_target(input, target, to_onehot_y)
    empty = empty_batch_loss(input, reduction)
    if empty is not None:
        return empty
    probs = activate(input, sigmoid, softmax, other_act)
    if not include_background:
        if input.shape[1] == 1:
            warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=3)
        else:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    axes = pooled_axes(probs.ndim, batch, pooling)
    if axes:
        tp = (probs * onehot).sum(axes)
        fp = probs.sum(axes) - tp
        fn = onehot.sum(axes) - tp
    else:  # classification input (B, C): every element is its own "image"
        tp = probs * onehot
        fp = probs - tp
        fn = onehot - tp
    tversky = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    loss = (1.0 - tversky).clamp_min(torch.finfo(tversky.dtype).tiny).pow(1.0 / gamma)
    return reduce_loss(loss, reduction)


def focal_tversky_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    beta: float = 0.3,
    gamma: float = 4.0 / 3.0,
    smooth: float = 1.0,
    *,
    sigmoid: bool = False,
    softmax: bool = False,
    other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    batch: bool = False,
    pooling: str | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """Focal Tversky loss (see the module docstring).

    Args:
        input: logits ``(B, C, *S)`` (or probabilities when no activation is chosen).
        target: class indices ``(B[, 1], *S)`` or a one-hot / soft target of the input's shape.
        alpha: weight of false negatives (0.7).
        beta: weight of false positives (0.3).
        gamma: focal parameter; the exponent is ``1 / gamma`` (4/3).
        smooth: added to numerator and denominator (1).
        sigmoid: apply a sigmoid to ``input``.
        softmax: apply a softmax over the channels.
        other_act: another activation callable.
        include_background: ``False`` drops channel 0.
        to_onehot_y: ``None`` infers label map vs dense target from the shape.
        batch: sum TP/FP/FN over the batch too (one index per class); MONAI's name for ``pooling="batch"``.
        pooling: ``"image"`` (default), ``"batch"`` or ``"all"`` (batch and channels pooled: the reference code).
        reduction: ``"none"`` -> ``(B, C)`` (``(C,)`` with ``"batch"``, ``()`` with ``"all"``), ``"mean"`` or
            ``"sum"``.
    """
    check_activation(sigmoid, softmax, other_act)
    return _focal_tversky(
        input,
        target,
        *_check_parameters(alpha, beta, gamma, smooth),
        sigmoid,
        softmax,
        other_act,
        include_background,
        to_onehot_y,
        batch,
        pooling,
        check_reduction(reduction),
    )


class FocalTverskyLoss(_Loss):
    """Focal Tversky loss module (paper convention: ``alpha`` on false negatives, ``beta`` on false positives).

    Args:
        alpha: weight of false negatives (0.7).
        beta: weight of false positives (0.3).
        gamma: focal parameter, exponent ``1 / gamma`` (4/3).
        smooth: smoothing constant (1).
        sigmoid, softmax, other_act: activation of ``input`` (at most one; none: probabilities given).
        include_background: ``False`` drops channel 0.
        to_onehot_y: ``None`` infers label map vs dense target from the shape.
        batch: compute the index over the whole batch (``pooling="batch"``).
        pooling: ``"image"``, ``"batch"`` or ``"all"`` (see :func:`focal_tversky_loss`).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Example:
        >>> loss = FocalTverskyLoss(softmax=True, to_onehot_y=True)
        >>> loss(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 1, 16, 16))).shape
        torch.Size([])
    """

    def __init__(
        self,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 4.0 / 3.0,
        smooth: float = 1.0,
        *,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        batch: bool = False,
        pooling: str | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=check_reduction(reduction))
        check_activation(sigmoid, softmax, other_act)
        self.alpha, self.beta, self.gamma, self.smooth = _check_parameters(alpha, beta, gamma, smooth)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.batch = batch
        self.pooling = pooling
        pooled_axes(3, batch, pooling)  # validates pooling

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C, *S)``, ``target`` indices or dense; returns the reduced loss."""
        return _focal_tversky(
            input,
            target,
            self.alpha,
            self.beta,
            self.gamma,
            self.smooth,
            self.sigmoid,
            self.softmax,
            self.other_act,
            self.include_background,
            self.to_onehot_y,
            self.batch,
            self.pooling,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha} (FN), beta={self.beta} (FP), gamma={self.gamma}, smooth={self.smooth}, "
            f"reduction={self.reduction!r}"
        )
