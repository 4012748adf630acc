"""Combo loss (Taghanaki et al., 2019): a weighted cross-entropy term minus a Dice term.

Per image ``b`` and class channel ``c`` (probabilities ``p``, one-hot or soft target ``t``, ``N`` spatial
positions; a class ``weight`` ``w_c`` optionally scales the cross-entropy term):

    mBCE_bc = -(1/N) sum_i w_c [beta t_i ln p_i + (1 - beta)(1 - t_i) ln(1 - p_i)]
    DSC_bc  = (2 sum_i p_i t_i + s) / (sum_i p_i + sum_i t_i + s)
    Combo_bc = alpha * mBCE_bc - (1 - alpha) * DSC_bc

``beta`` weights the positive (false-negative) term and ``1 - beta`` the negative one; defaults
``alpha = beta = 0.5``, ``s = 1``. As in the paper the Dice *coefficient* is subtracted, so the loss can be
negative (its minimum is ``-(1 - alpha)``); it equals ``alpha * mBCE + (1 - alpha) * DiceLoss - (1 - alpha)``,
i.e. the same gradients as the non-negative variant. ``'mean'`` averages ``Combo_bc`` over images and classes
(the paper sums Dice over classes; identical for the binary case). ``pooling`` says what one term covers:
``"image"`` (default), ``"batch"`` (``batch=True``) or ``"all"`` (batch and channels). The reference code
(github.com/asgsaeid/ComboLoss, ``combo_loss.py``: ``K.flatten``, smooth 1) is ``pooling="all"`` (the same as
``"batch"`` for one channel).

Sign of the negative BCE term: the widely copied version of that reference code writes
``out = -(beta t ln p) + ((1 - beta)(1 - t) ln(1 - p))``, i.e. with a *plus* on the negative term, which rewards
confident false positives; another version puts ``beta`` on both terms. This package uses the paper's
``-[beta t ln p + (1 - beta)(1 - t) ln(1 - p)]``, so its values differ from that code wherever ``t = 0``.

Logarithms come from ``logsigmoid`` (sigmoid) or ``log_softmax`` (softmax) in float32 (float64 for float64 input),
and ``ln(1 - p)`` is exact at any logit gap: ``logsigmoid(x) - x`` for sigmoid, a log-sum-exp over the other
classes for the largest softmax class (``ln(-expm1(ln p))`` would round to ``ln 0`` once a class leads by ~16.6
logits in float32 and floor the loss there). With probabilities given (no activation) they are clamped away from 0.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _WeightedLoss

from monai_imbalance.losses._inputs import (
    ClassVector,
    check_activation,
    check_class_length,
    check_reduction,
    check_softmax_channels,
    class_vector,
    dense_target,
    empty_batch_loss,
    float_logits,
    pooled_axes,
    reduce_loss,
)

__all__ = ["ComboLoss", "combo_loss"]


def _check_parameters(alpha: float, beta: float, smooth: float) -> tuple[float, float, float]:
    alpha, beta, smooth = float(alpha), float(beta), float(smooth)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}.")
    if not math.isfinite(smooth) or smooth < 0:
        raise ValueError(f"smooth must be a finite number >= 0, got {smooth}.")
    return alpha, beta, smooth


def _log1m_softmax(log_p: torch.Tensor) -> torch.Tensor:
    """``ln(1 - p_c)`` from ``ln p = log_softmax(x)`` along axis 1, exact to the working precision at any logit gap.

    ``1 - p_c`` is the sum of the *other* classes' probabilities, so ``ln(1 - p_c) = LSE_{k != c}(ln p_k)``
    (log-sum-exp over the other channels). That form is exact where ``p_c`` is the largest probability
    (``p_c >= 1 / C``: a sum of positive terms none of which is lost), whereas ``ln(-expm1(ln p_c))`` fails there:
    once a class leads by ~16.6 logits in float32 (~37 in float64) ``ln p_c`` rounds to 0 and ``1 - p_c`` to 0.
    For every other channel ``p_c <= 1/2`` and the classic ``log1p(-exp(ln p_c))`` is exact (Maechler, "Accurately
    computing log(1 - exp(-|a|))", 2012), so each channel takes the form that is exact for it.

    Args:
        log_p: ``log_softmax`` of logits ``(B, C[, *S])``, ``C >= 2``.

    Returns:
        ``ln(1 - p)`` of the input's shape and dtype; differentiable (first and second order).
    """
    top = log_p.argmax(dim=1, keepdim=True)
    is_top = torch.zeros_like(log_p, dtype=torch.bool).scatter_(1, top, True)
    # the largest class: log-sum-exp of the others (its own entry masked to -inf)
    others = torch.logsumexp(log_p.masked_fill(is_top, -math.inf), dim=1, keepdim=True)
    # the others (p <= 1/2): log1p(-p); the top entry is replaced by a harmless value so that no inf/nan enters
    # the gradient of the branch torch.where does not select
    rest = torch.log1p(-torch.exp(log_p.masked_fill(is_top, -1.0)))
    return torch.where(is_top, others, rest)


def _log_probs(input: torch.Tensor, sigmoid: bool, softmax: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(p, ln p, ln(1 - p))`` for logits (sigmoid/softmax) or probabilities (neither), each exact at any logit."""
    if sigmoid:
        log_p = F.logsigmoid(input)
        return torch.sigmoid(input), log_p, log_p - input  # ln(1 - sigmoid(x)) = logsigmoid(x) - x
    if softmax:
        check_softmax_channels(input, softmax)
        log_p = torch.log_softmax(input, dim=1)
        return log_p.exp(), log_p, _log1m_softmax(log_p)
    tiny = torch.finfo(input.dtype).tiny
    return input, torch.log(input.clamp_min(tiny)), torch.log((1.0 - input).clamp_min(tiny))


def _combo(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    weight: torch.Tensor | None,
    smooth: float,
    sigmoid: bool,
    softmax: bool,
    include_background: bool,
    to_onehot_y: bool | None,
    batch: bool,
    pooling: str | None,
    reduction: str,
) -> torch.Tensor:
    input = float_logits(input)
    check_class_length(weight, input.shape[1], "weight")
    onehot = dense_target(input, target, to_onehot_y)
    empty = empty_batch_loss(input, reduction)
    if empty is not None:
        return empty
    probs, log_p, log_1mp = _log_probs(input, sigmoid, softmax)
    if not include_background:
        if input.shape[1] == 1:
            warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=3)
        else:
            probs, log_p, log_1mp, onehot = probs[:, 1:], log_p[:, 1:], log_1mp[:, 1:], onehot[:, 1:]
            weight = weight[1:] if weight is not None else None
    axes = pooled_axes(probs.ndim, batch, pooling)
    # -(beta t ln p + (1 - beta)(1 - t) ln(1 - p))
    if beta == 0.5:  # the default: one lerp
        cross_entropy = torch.lerp(log_1mp, log_p, onehot).mul(-0.5)
    else:
        cross_entropy = torch.lerp(log_1mp * (1.0 - beta), log_p * beta, onehot).neg()
    if weight is not None:
        cross_entropy = cross_entropy * weight.to(input).view((1, -1) + (1,) * (input.ndim - 2))
    if axes:
        cross_entropy = cross_entropy.mean(axes)
        tp = (probs * onehot).sum(axes)
        dice = (2.0 * tp + smooth) / (probs.sum(axes) + onehot.sum(axes) + smooth)
    else:  # classification input (B, C): every element is its own "image"
        dice = (2.0 * probs * onehot + smooth) / (probs + onehot + smooth)
    loss = alpha * cross_entropy - (1.0 - alpha) * dice
    return reduce_loss(loss, reduction)


def combo_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    weight: ClassVector | None = None,
    smooth: float = 1.0,
    *,
    sigmoid: bool = False,
    softmax: bool = False,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    batch: bool = False,
    pooling: str | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """Combo loss (see the module docstring).

    Args:
        input: logits ``(B, C[, *S])`` (probabilities in ``[0, 1]`` when neither activation is chosen).
        target: class indices ``(B[, 1][, *S])`` or a one-hot / soft target of the input's shape.
        alpha: weight of the cross-entropy term; ``1 - alpha`` weights the Dice term.
        beta: weight of the positive cross-entropy term; ``1 - beta`` weights the negative one.
        weight: class weights ``(C,)`` on the cross-entropy term.
        smooth: Dice smoothing constant.
        sigmoid: per-channel sigmoid.
        softmax: softmax over the channels.
        include_background: ``False`` drops channel 0.
        to_onehot_y: ``None`` infers label map vs dense target from the shape.
        batch: compute the Dice coefficient and the mean over the whole batch (``pooling="batch"``).
        pooling: ``"image"`` (default), ``"batch"`` or ``"all"`` (batch and channels pooled: the reference code).
        reduction: ``"none"`` -> ``(B, C)`` (``(C,)`` with ``"batch"``, ``()`` with ``"all"``), ``"mean"`` or
            ``"sum"``.
    """
    check_activation(sigmoid, softmax)
    alpha, beta, smooth = _check_parameters(alpha, beta, smooth)
    return _combo(
        input,
        target,
        alpha,
        beta,
        class_vector(weight, "weight"),
        smooth,
        sigmoid,
        softmax,
        include_background,
        to_onehot_y,
        batch,
        pooling,
        check_reduction(reduction),
    )


class ComboLoss(_WeightedLoss):
    """Combo loss module ``alpha * mBCE - (1 - alpha) * Dice`` (see the module docstring).

    Args:
        alpha: weight of the cross-entropy term (0.5).
        beta: weight of the positive cross-entropy term (0.5).
        weight: class weights ``(C,)`` on the cross-entropy term (a buffer).
        smooth: Dice smoothing constant (1).
        sigmoid: per-channel sigmoid (the paper's binary setting).
        softmax: softmax over the channels.
        include_background: ``False`` drops channel 0.
        to_onehot_y: ``None`` infers label map vs dense target from the shape.
        batch: compute the Dice coefficient over the whole batch (``pooling="batch"``).
        pooling: ``"image"``, ``"batch"`` or ``"all"`` (see :func:`combo_loss`).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Example:
        >>> loss = ComboLoss(sigmoid=True)
        >>> loss(torch.randn(2, 1, 16, 16), torch.randint(0, 2, (2, 1, 16, 16))).shape
        torch.Size([])
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        weight: ClassVector | None = None,
        smooth: float = 1.0,
        *,
        sigmoid: bool = False,
        softmax: bool = False,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        batch: bool = False,
        pooling: str | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(weight=class_vector(weight, "weight"), reduction=check_reduction(reduction))
        check_activation(sigmoid, softmax)
        self.alpha, self.beta, self.smooth = _check_parameters(alpha, beta, smooth)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.batch = batch
        self.pooling = pooling
        pooled_axes(3, batch, pooling)  # validates pooling

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C[, *S])``, ``target`` indices or dense; returns the reduced loss."""
        return _combo(
            input,
            target,
            self.alpha,
            self.beta,
            self.weight,
            self.smooth,
            self.sigmoid,
            self.softmax,
            self.include_background,
            self.to_onehot_y,
            self.batch,
            self.pooling,
            self.reduction,
        )

    def extra_repr(self) -> str:
        mode = "sigmoid" if self.sigmoid else "softmax" if self.softmax else "probabilities"
        return f"alpha={self.alpha}, beta={self.beta}, smooth={self.smooth}, {mode}, reduction={self.reduction!r}"
