"""Focal loss (Lin et al., ICCV 2017) for softmax multi-class and sigmoid binary / multi-label outputs.

Softmax (``sigmoid=False``), per element (sample or pixel) with true class ``y`` and ``p_t = softmax(x)_y``:

    FL = -alpha_y * w_y * (1 - p_t)^gamma * log p_t

``log p_t`` comes from ``log_softmax`` (never ``log(p + eps)`` and never ``exp(-weighted CE)``), the focal factor
is per element (never applied to a batch mean), and ``'mean'`` divides by ``sum w_y`` as ``F.cross_entropy``
does: with ``gamma = 0`` and no ``alpha`` the loss *is* (weighted) cross-entropy. Dense (one-hot or probability)
targets give ``-sum_c alpha_c w_c t_c (1 - p_c)^gamma log p_c`` per element and ``'mean'`` over the elements, as
``F.cross_entropy`` with probability targets.

Sigmoid (``sigmoid=True``), per element and channel with target ``t`` in ``[0, 1]`` and logit ``x``:

    FL = alpha_t * w_c * sigmoid(x (1 - 2t))^gamma * BCE(x, t),   alpha_t = alpha t + (1 - alpha)(1 - t),

computed as ``exp(gamma * logsigmoid(x (1 - 2t)))`` (stable for any logit), ``'mean'`` over the counted elements as
``F.binary_cross_entropy_with_logits`` does: at ``gamma = 0`` and no ``alpha`` it *is* BCE. For binary targets
``sigmoid(x (1 - 2t)) = 1 - p_t``. For soft targets this is **MONAI's** modulating factor (``monai.losses.
sigmoid_focal_loss``), not torchvision's ``1 - p_t`` with ``p_t = p t + (1 - p)(1 - t)``: the two agree at
``t`` in ``{0, 1/2, 1}`` only (see ``docs/conventions.md``).

``alpha`` semantics (they differ between public implementations):

- sigmoid, scalar: weight of the positive target, ``1 - alpha`` for the negative one (torchvision, Lin et al.,
  MONAI);
- sigmoid, sequence ``(C,)``: the same per channel (MONAI weights only the positives by ``alpha_c``);
- softmax, scalar: a constant factor on every element (the multi-class alpha of Lin et al.; unlike MONAI's
  ``FocalLoss``, it does *not* mean background-vs-rest);
- softmax, sequence ``(C,)``: factor of the elements whose true class is ``c``.

``alpha`` multiplies the loss but is *not* part of the ``'mean'`` normaliser; class ``weight`` is (softmax).

:class:`FocalLoss` shares its name with ``monai.losses.FocalLoss``, whose defaults and reductions differ. It
therefore needs its activation stated: ``sigmoid=True`` / ``sigmoid=False`` for this package's focal loss (as
above), or MONAI's ``use_softmax=True`` / ``use_softmax=False`` for MONAI's exact semantics (argument meanings,
``reduction="none"`` shape ``(B, C[, *S])``, 'mean' over classes too, scalar softmax ``alpha`` as
background-vs-rest). See ``docs/conventions.md`` for the table of differences.

With class-index targets the softmax focal loss runs in a fused kernel with a closed-form gradient (no one-hot
tensor): first derivatives only, a second backward pass raises (``gamma = 0`` without per-class ``alpha`` uses
``F.cross_entropy`` and supports it). An empty batch gives a zero loss with a zero gradient.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import FocalLoss as MonaiFocalLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _WeightedLoss

from monai_imbalance.losses._inputs import (
    ClassVector,
    as_class_indices,
    check_class_indices,
    check_class_length,
    check_gamma,
    check_reduction,
    check_softmax_channels,
    check_unit_interval,
    class_vector,
    empty_batch_loss,
    float_logits,
    plain_tensor,
    reduce_loss,
    split_target,
)
from monai_imbalance.losses._softmax_core import SoftmaxTerm, softmax_family_loss

__all__ = ["FocalLoss", "focal_loss", "sigmoid_focal_loss", "softmax_focal_loss"]


def _alpha_argument(alpha: float | ClassVector | None, sigmoid: bool) -> float | torch.Tensor | None:
    """Validate ``alpha``: in ``[0, 1]`` for sigmoid (it is a probability-like split), ``>= 0`` for softmax."""
    if alpha is None:
        return None
    high = 1.0 if sigmoid else None
    if isinstance(alpha, (int, float)):
        value = float(alpha)
        if not (value >= 0 and (high is None or value <= high)):
            raise ValueError(f"alpha must be in [0, 1] for sigmoid and >= 0 for softmax, got {alpha}.")
        return value
    return class_vector(alpha, "alpha", low=0.0, high=high)


def softmax_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | ClassVector | None = None,
    weight: ClassVector | None = None,
    *,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """Multi-class focal loss on softmax probabilities (see the module docstring for the formula).

    Args:
        input: logits ``(B, C)`` or ``(B, C, *S)``, ``C >= 2``.
        target: class indices ``(B,)``, ``(B, 1)``, ``(B, *S)``, ``(B, 1, *S)``, or one-hot / probability
            targets of the input's shape in ``[0, 1]`` ('mean' divides by the element count, as
            ``F.cross_entropy`` with probability targets).
        gamma: focusing exponent ``>= 0``.
        alpha: scalar factor or per-class sequence ``(C,)`` (not in the 'mean' normaliser).
        weight: class weights ``(C,)`` as in ``F.cross_entropy`` (in the 'mean' normaliser).
        include_background: ``False`` gives class 0 zero weight (excluded from the sum and the normaliser).
        to_onehot_y: ``None`` infers label map vs dense target from the shape; ``True``/``False`` require one.
        ignore_index: class-index value excluded from the loss and the normaliser.
        reduction: ``"none"`` -> ``(B,)`` or ``(B, *S)``; ``"mean"``; ``"sum"``.

    Returns:
        The loss in float32 (float64 for float64 input).
    """
    return _softmax_focal(
        input,
        target,
        check_gamma(gamma),
        _alpha_argument(alpha, sigmoid=False),
        class_vector(weight, "weight"),
        include_background,
        to_onehot_y,
        ignore_index,
        check_reduction(reduction),
    )


def _softmax_focal(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor | None,
    weight: torch.Tensor | None,
    include_background: bool,
    to_onehot_y: bool | None,
    ignore_index: int | None,
    reduction: str,
) -> torch.Tensor:
    """:func:`softmax_focal_loss` with already validated ``gamma``, ``alpha``, ``weight`` and ``reduction``."""
    input = float_logits(input, min_channels=2)
    channels = input.shape[1]
    check_class_length(weight, channels, "weight")
    if isinstance(alpha, torch.Tensor):
        check_class_length(alpha, channels, "alpha")
    return softmax_family_loss(
        input,
        target,
        (SoftmaxTerm(gamma=gamma),),
        weight=weight,
        alpha=alpha,
        include_background=include_background,
        to_onehot_y=to_onehot_y,
        ignore_index=ignore_index,
        reduction=reduction,
    )


def sigmoid_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | ClassVector | None = None,
    weight: ClassVector | None = None,
    *,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """Binary / multi-label focal loss on per-channel sigmoid probabilities (see the module docstring).

    Args:
        input: logits ``(B, C[, *S])``; ``C = 1`` for a binary problem.
        target: binary or soft targets in ``[0, 1]`` of the input's shape (``(B[, *S])`` also accepted when
            ``C = 1``), or class indices ``(B[, 1], *S)`` when ``C > 1`` (converted to one-hot).
        gamma: focusing exponent ``>= 0``.
        alpha: weight of positive targets (``1 - alpha`` for negatives), scalar or per channel ``(C,)``, in [0, 1].
        weight: per-channel multiplier ``(C,)`` (like ``BCEWithLogitsLoss(weight=...)``).
        include_background: ``False`` drops channel 0 (ignored, with a warning, when ``C = 1``).
        to_onehot_y: ``None`` infers label map vs dense target; ``True``/``False`` require one (no effect if C=1).
        ignore_index: target value excluded from the loss and from the 'mean' count (a label value for class-index
            targets, an element value such as 255 for dense masks).
        reduction: ``"none"`` -> the input's shape (minus channel 0 without background); ``"mean"``; ``"sum"``.
    """
    return _sigmoid_focal(
        input,
        target,
        check_gamma(gamma),
        _alpha_argument(alpha, sigmoid=True),
        class_vector(weight, "weight"),
        include_background,
        to_onehot_y,
        ignore_index,
        check_reduction(reduction),
    )


def _sigmoid_focal(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    alpha_arg: float | torch.Tensor | None,
    weight_vec: torch.Tensor | None,
    include_background: bool,
    to_onehot_y: bool | None,
    ignore_index: int | None,
    reduction: str,
) -> torch.Tensor:
    """:func:`sigmoid_focal_loss` with already validated ``gamma``, ``alpha``, ``weight`` and ``reduction``."""
    input = float_logits(input)
    channels = input.shape[1]
    check_class_length(weight_vec, channels, "weight")
    if isinstance(alpha_arg, torch.Tensor):
        check_class_length(alpha_arg, channels, "alpha")

    labels, dense = split_target(input, target, to_onehot_y)
    mask: torch.Tensor | None = None
    if labels is not None:
        labels = as_class_indices(labels, channels, ignore_index)
        if ignore_index is not None:
            valid = labels != ignore_index
            labels = labels.masked_fill(~valid, 0)
            mask = valid.unsqueeze(1)
        dense = torch.zeros_like(input).scatter_(1, labels.unsqueeze(1), 1.0)
    else:
        assert dense is not None
        if ignore_index is not None:
            mask = dense != ignore_index
        check_unit_interval(dense, mask, "sigmoid focal loss target")
        dense = dense.to(input.dtype)
        if mask is not None:
            dense = dense.masked_fill(~mask, 0.0)

    if not include_background:
        if channels == 1:
            warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=2)
        else:
            input, dense = input[:, 1:], dense[:, 1:]
            mask = mask[:, 1:] if mask is not None and mask.shape[1] > 1 else mask
            weight_vec = weight_vec[1:] if weight_vec is not None else None
            alpha_arg = alpha_arg[1:] if isinstance(alpha_arg, torch.Tensor) else alpha_arg

    empty = empty_batch_loss(input, reduction)
    if empty is not None:
        return empty
    loss = F.binary_cross_entropy_with_logits(input, dense, reduction="none")
    if gamma != 0.0:
        loss = loss * torch.exp(F.logsigmoid(input * (1.0 - 2.0 * dense)) * gamma)
    view = (1, -1) + (1,) * (input.ndim - 2)
    if alpha_arg is not None:
        alpha_t = alpha_arg.to(input).view(view) if isinstance(alpha_arg, torch.Tensor) else alpha_arg
        loss = loss * ((1.0 - alpha_t) + (2.0 * alpha_t - 1.0) * dense)
    if weight_vec is not None:
        loss = loss * weight_vec.to(input).view(view)
    count = None
    if mask is not None:
        loss = loss * mask
        count = mask.sum() * (loss.shape[1] if mask.shape[1] == 1 else 1)
    return reduce_loss(loss, reduction, count)


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | ClassVector | None = None,
    weight: ClassVector | None = None,
    *,
    sigmoid: bool = False,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """Focal loss: :func:`sigmoid_focal_loss` when ``sigmoid=True``, else :func:`softmax_focal_loss`."""
    fn = sigmoid_focal_loss if sigmoid else softmax_focal_loss
    return fn(
        input,
        target,
        gamma,
        alpha,
        weight,
        include_background=include_background,
        to_onehot_y=to_onehot_y,
        ignore_index=ignore_index,
        reduction=reduction,
    )


_CONVENTIONS_DOC = "docs/conventions.md"


def _check_activation_choice(sigmoid: bool | None, use_softmax: bool | None) -> None:
    """Exactly one of this package's ``sigmoid`` and MONAI's ``use_softmax`` must be given (see the module doc)."""
    if sigmoid is not None and use_softmax is not None:
        raise ValueError(
            "FocalLoss takes either sigmoid= (this package's focal loss) or use_softmax= (MONAI's FocalLoss "
            f"semantics), not both; they differ in reductions and alpha, see {_CONVENTIONS_DOC}."
        )
    if sigmoid is None and use_softmax is None:
        raise ValueError(
            "FocalLoss needs its activation stated, because monai.losses.FocalLoss of the same name defaults to "
            "sigmoid and differs in its reductions: write sigmoid=False (softmax focal loss, 'mean' as "
            "F.cross_entropy) or sigmoid=True (per-channel sigmoid) for this package's loss, or use_softmax=True / "
            f"use_softmax=False to get MONAI's FocalLoss values exactly; see {_CONVENTIONS_DOC}."
        )


def _monai_weight(weight: float | ClassVector | None) -> torch.Tensor | None:
    """MONAI's ``weight``: a scalar or one value per (kept) channel, all ``>= 0``."""
    if weight is None:
        return None
    if isinstance(weight, torch.Tensor):
        vec = plain_tensor(weight).detach().double()
    else:
        vec = torch.as_tensor(np.asarray(weight, dtype=np.float64))
    if vec.ndim > 1 or not bool(torch.isfinite(vec).all()) or bool((vec < 0).any()):
        raise ValueError(f"weight must be a number or a 1-D sequence of finite values >= 0, got {vec.tolist()}.")
    return vec


class FocalLoss(_WeightedLoss):
    """Focal loss module; see the module docstring for the formulas, the meaning of ``alpha`` and the conventions.

    The class name exists in MONAI too: in a bundle config use ``_target_: monai_imbalance.losses.FocalLoss``
    (the short name ``FocalLoss`` resolves to MONAI's). State the activation with exactly one of:

    - ``sigmoid=False`` (softmax) or ``sigmoid=True``: this package's focal loss (class-index targets, 'mean'
      divided by the summed class weights as ``F.cross_entropy``, ``reduction="none"`` of shape ``(B[, *S])``
      for softmax);
    - ``use_softmax=True`` or ``use_softmax=False``: MONAI's ``FocalLoss`` semantics, every argument with
      MONAI's meaning (``to_onehot_y`` default ``False``, ``include_background=False`` drops channel 0 before
      the softmax, scalar softmax ``alpha`` = ``1 - alpha`` on background and ``alpha`` on the rest, per-class
      sigmoid ``alpha`` on positives only, ``weight`` a plain multiplier, ``reduction="none"`` of shape
      ``(B, C[, *S])``, ``'mean'`` over classes too, ``'sum'`` of spatial means); the value equals
      ``monai.losses.FocalLoss``'s, with this package's target checks and empty-batch rule.

    Args:
        gamma: focusing exponent ``>= 0`` (2 in Lin et al.; 0 gives cross-entropy).
        alpha: balancing factor, scalar or per class ``(C,)``.
        weight: class weights ``(C,)`` (a buffer, so it follows ``.to(device)``; the deferred re-weighting handler
            updates it in place); a scalar is accepted with ``use_softmax``.
        sigmoid: per-channel sigmoid (binary / multi-label) instead of a softmax over the channels.
        use_softmax: MONAI's switch (``True`` softmax, ``False`` sigmoid), selecting MONAI's semantics.
        include_background: see :func:`softmax_focal_loss` / :func:`sigmoid_focal_loss` (MONAI's with
            ``use_softmax``).
        to_onehot_y: ``None`` infers label map vs dense target from the shape (``False`` with ``use_softmax``).
        ignore_index: target value excluded from the loss.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Shapes: ``input (B, C[, *S])`` logits; ``target`` class indices ``(B[, 1][, *S])`` or dense ``(B, C[, *S])``.

    Raises:
        TypeError: ``gamma`` is a bool (MONAI's positional order starts with ``include_background``: pass
            keywords).
        ValueError: no activation stated, or both ``sigmoid`` and ``use_softmax``.

    Example:
        >>> loss = FocalLoss(gamma=2.0, weight=[1.0, 3.0, 5.0], sigmoid=False)
        >>> loss(torch.randn(4, 3), torch.tensor([0, 2, 1, 2])).shape
        torch.Size([])
    """

    weight: torch.Tensor | None
    alpha_vector: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | ClassVector | None = None,
        weight: float | ClassVector | None = None,
        *,
        sigmoid: bool | None = None,
        use_softmax: bool | None = None,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        if isinstance(gamma, bool):
            raise TypeError(
                f"gamma must be a number, got {gamma!r}: monai.losses.FocalLoss takes include_background, "
                "to_onehot_y, gamma, ... positionally, this FocalLoss takes gamma, alpha, weight; pass keywords "
                f"(see {_CONVENTIONS_DOC})."
            )
        _check_activation_choice(sigmoid, use_softmax)
        self.monai_semantics = use_softmax is not None
        weight_vec = _monai_weight(weight) if self.monai_semantics else class_vector(weight, "weight")
        super().__init__(weight=weight_vec, reduction=check_reduction(reduction))
        self.gamma = check_gamma(gamma)
        self.sigmoid = bool(sigmoid) if not self.monai_semantics else not use_softmax
        if self.monai_semantics:
            scalar = isinstance(alpha, (int, float))
            alpha_arg = float(alpha) if scalar else class_vector(alpha, "alpha")  # type: ignore[arg-type]
        else:
            alpha_arg = _alpha_argument(alpha, self.sigmoid)
        self.alpha: float | None = alpha_arg if not isinstance(alpha_arg, torch.Tensor) else None
        self.register_buffer("alpha_vector", alpha_arg if isinstance(alpha_arg, torch.Tensor) else None)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C[, *S])`` logits, ``target`` indices or dense; returns the reduced loss."""
        alpha = self.alpha_vector if self.alpha_vector is not None else self.alpha
        if self.monai_semantics:
            return self._monai_forward(input, target, alpha)
        fn = _sigmoid_focal if self.sigmoid else _softmax_focal
        return fn(
            input,
            target,
            self.gamma,
            alpha,
            self.weight,
            self.include_background,
            self.to_onehot_y,
            self.ignore_index,
            self.reduction,
        )

    def _monai_forward(
        self, input: torch.Tensor, target: torch.Tensor, alpha: float | torch.Tensor | None
    ) -> torch.Tensor:
        """MONAI's ``FocalLoss`` on checked inputs (see the class docstring)."""
        input = float_logits(input)
        check_softmax_channels(input, not self.sigmoid, "use_softmax=True")  # MONAI's value would be 0
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}.")
        target = plain_tensor(target)
        channels = input.shape[1]
        if self.to_onehot_y and channels > 1:
            check_class_indices(target, channels, self.ignore_index)
        else:
            mask = target != self.ignore_index if self.ignore_index is not None else None
            check_unit_interval(target, mask, "FocalLoss target (to_onehot_y=False)")
        empty = empty_batch_loss(input, self.reduction)
        if empty is not None:
            return empty
        monai_loss = MonaiFocalLoss(
            include_background=self.include_background,
            to_onehot_y=bool(self.to_onehot_y),
            gamma=self.gamma,
            alpha=alpha,
            weight=self.weight,
            reduction=self.reduction,
            use_softmax=not self.sigmoid,
            ignore_index=self.ignore_index,
        )
        return monai_loss(input, target)

    def extra_repr(self) -> str:
        alpha = self.alpha_vector.tolist() if self.alpha_vector is not None else self.alpha
        if self.monai_semantics:
            mode = f"use_softmax={not self.sigmoid} (MONAI semantics)"
        else:
            mode = f"sigmoid={self.sigmoid}"
        return f"gamma={self.gamma}, alpha={alpha}, {mode}, reduction={self.reduction!r}"
