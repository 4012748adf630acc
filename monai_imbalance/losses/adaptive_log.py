"""Adaptive Logarithmic Loss (ALL, Kaul et al.): a wrapper that sharpens an overlap loss near its optimum.

For a loss value ``x`` (designed for overlap losses with values in ``[0, 1]``, the paper uses the Dice loss):

    ALL(x) = omega * ln(1 + x / epsilon)   if x < delta
    ALL(x) = x - C                          otherwise,   C = delta - omega * ln(1 + delta / epsilon)

so ALL is continuous at ``delta``; below ``delta`` the gradient is amplified by ``omega / (epsilon + x)``
(20 at ``x = 0`` with the defaults), above it the loss is linear. Defaults ``omega = 10``, ``epsilon = 0.5``,
``delta = 0.1`` are the paper's best setting (its hyper-parameter tables: omega 6..16, epsilon 0.3..2,
delta 0.08..0.30; the loss is mainly sensitive to ``delta``).

Reconstruction note: the published formula was lost in the text extraction available to us. This form is
reconstructed from the paper's description (a log branch near the optimum, a linear branch elsewhere, a constant
making it continuous at ``delta``), its hyper-parameter tables and the Wing-loss family it follows; the threshold
and constants are therefore all configurable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from monai.losses import DiceLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_imbalance.losses._inputs import check_reduction, reduce_loss

__all__ = ["AdaptiveLogarithmicLoss", "adaptive_log_loss"]


def _check_parameters(omega: float, epsilon: float, delta: float) -> tuple[float, float, float]:
    omega, epsilon, delta = float(omega), float(epsilon), float(delta)
    for name, value in (("omega", omega), ("epsilon", epsilon), ("delta", delta)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value}.")
    return omega, epsilon, delta


def adaptive_log_loss(
    value: torch.Tensor, omega: float = 10.0, epsilon: float = 0.5, delta: float = 0.1
) -> torch.Tensor:
    """Apply ALL element-wise to loss values (any shape; float32 math for half inputs).

    Args:
        value: loss values, typically in ``[0, 1]`` (an overlap loss).
        omega: scale of the logarithmic branch (> 0).
        epsilon: curvature of the logarithmic branch (> 0).
        delta: switch point between the branches (> 0).

    Raises:
        ValueError: invalid parameters, or a value ``<= -epsilon`` (outside the domain of the log branch; overlap
            losses are ``>= 0``).
    """
    omega, epsilon, delta = _check_parameters(omega, epsilon, delta)
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    if value.numel() == 0:
        return value
    low = float(value.detach().min())
    if low <= -epsilon:
        raise ValueError(f"ALL expects loss values in [0, 1] (an overlap loss); got a value of {low}.")
    if value.ndim == 0:  # the usual case (a reduced loss): evaluate only the branch that applies
        return torch.log1p(value / epsilon) * omega if low < delta else value - _offset(omega, epsilon, delta)
    return torch.where(value < delta, torch.log1p(value / epsilon) * omega, value - _offset(omega, epsilon, delta))


def _offset(omega: float, epsilon: float, delta: float) -> float:
    """``C = delta - omega ln(1 + delta / epsilon)``: makes ALL continuous at ``delta``."""
    return delta - omega * math.log1p(delta / epsilon)


class AdaptiveLogarithmicLoss(_Loss):
    """ALL wrapped around an overlap loss: ``reduce(ALL(loss(input, target)))``.

    Args:
        loss: the wrapped loss, a callable ``(input, target) -> values in [0, 1]``; default
            ``monai.losses.DiceLoss(sigmoid=True)`` (the paper's binary setting). Its own reduction decides what ALL
            sees: with ``reduction="mean"`` (MONAI's default) ALL acts on the batch Dice loss, as in the paper;
            with ``"none"`` it acts per image and class.
        omega: scale of the logarithmic branch (10).
        epsilon: curvature of the logarithmic branch (0.5).
        delta: switch point (0.1).
        reduction: applied after ALL (``"mean"``, ``"sum"`` or ``"none"``); a no-op when the wrapped loss already
            returns a scalar.

    Example:
        >>> loss = AdaptiveLogarithmicLoss(DiceLoss(softmax=True, to_onehot_y=True))
        >>> loss(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 1, 16, 16))).shape
        torch.Size([])
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        omega: float = 10.0,
        epsilon: float = 0.5,
        delta: float = 0.1,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=check_reduction(reduction))
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be a callable (input, target) -> tensor, got {type(loss).__name__}.")
        self.loss = DiceLoss(sigmoid=True) if loss is None else loss
        self.omega, self.epsilon, self.delta = _check_parameters(omega, epsilon, delta)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pass ``input`` and ``target`` to the wrapped loss (its shape conventions apply), then ALL."""
        if input.dtype in (torch.float16, torch.bfloat16):
            input = input.float()
        value = adaptive_log_loss(self.loss(input, target), self.omega, self.epsilon, self.delta)
        return value if value.ndim == 0 else reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return f"omega={self.omega}, epsilon={self.epsilon}, delta={self.delta}, reduction={self.reduction!r}"
