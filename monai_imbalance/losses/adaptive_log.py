"""Adaptive Logarithmic Loss (ALL, Kaul et al.): a wrapper that sharpens an overlap loss near its optimum.

For a loss value ``x`` (designed for overlap losses with values in ``[0, 1]``, the paper uses the Dice loss) and
two readings of the linear branch (``form``):

    ALL(x) = omega * ln(1 + x / epsilon)      if x < delta
    ALL(x) = A x - C                           otherwise   (form="smooth", the default),  A = omega / (epsilon + delta)
    ALL(x) = x - C                             otherwise   (form="wing")

with ``C`` making ALL continuous at ``delta`` (``C = delta - omega ln(1 + delta / epsilon)`` for ``"wing"``,
``C = A delta - omega ln(1 + delta / epsilon)`` for ``"smooth"``). Below ``delta`` the gradient is amplified by
``omega / (epsilon + x)`` (20 at ``x = 0`` with the defaults). ``"wing"`` keeps the slope 1 of the wrapped loss
above ``delta`` (as the Wing loss does): continuous, but its slope jumps at ``delta`` (from 16.67 to 1 with the
defaults). ``"smooth"`` matches the slope of the log branch at ``delta`` (as the Adaptive Wing loss does), so it
is continuously differentiable there, as the paper's text says ("differentiable and smooth"), and scales the
whole linear branch by ``A``. Defaults ``omega = 10``, ``epsilon = 0.5``, ``delta = 0.1`` are the paper's best
setting (its hyper-parameter tables: omega 6..16, epsilon 0.3..2, delta 0.08..0.30; the loss is mainly
sensitive to ``delta``).

Reconstruction note: the published formula was lost in the text extraction available to us. Both forms are
reconstructed from the paper's description (a log branch near the optimum, a linear branch elsewhere, a constant
making it continuous at ``delta``), its hyper-parameter tables and the Wing-loss family it follows; the form, the
threshold and the constants are therefore all configurable. The default is ``"smooth"``: it is what the paper's
text describes, and in the project's benchmark (DSB 2018 nuclei, U-Net, 40 epochs, 3 seeds) it trained through the
switch as smoothly as the Dice loss, while the ``"wing"`` form's jump in slope (1 to 16.7) made the training Dice
fall back every time the log branch was reached (last-epoch training Dice 0.890 against 0.908; docs/papers.md
#all-smoothness-at-delta). The ``"smooth"`` linear branch scales the wrapped loss's gradient by ``A`` (16.7): with
Adam (the paper's optimiser) that is immaterial, with plain SGD divide the learning rate by ``A`` to keep the
Dice loss's step size, or use ``"wing"``. :func:`log_branch_fraction` (and
:attr:`AdaptiveLogarithmicLoss.last_log_branch_fraction`) tell how often training actually reaches the log branch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from monai.losses import DiceLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_imbalance.losses._inputs import check_overlap_target, check_reduction, check_softmax_channels, reduce_loss

__all__ = ["AdaptiveLogarithmicLoss", "adaptive_log_loss", "log_branch_fraction"]

_FORMS = ("wing", "smooth")


def _check_parameters(omega: float, epsilon: float, delta: float) -> tuple[float, float, float]:
    omega, epsilon, delta = float(omega), float(epsilon), float(delta)
    for name, value in (("omega", omega), ("epsilon", epsilon), ("delta", delta)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value}.")
    return omega, epsilon, delta


def _check_form(form: str) -> str:
    if form not in _FORMS:
        raise ValueError(
            f"form must be 'wing' (linear branch of slope 1) or 'smooth' (slope matched at delta), got {form!r}."
        )
    return form


def _linear_branch(omega: float, epsilon: float, delta: float, form: str) -> tuple[float, float]:
    """Slope ``A`` and offset ``C`` of the linear branch ``A x - C`` (continuous at ``delta``)."""
    slope = 1.0 if form == "wing" else omega / (epsilon + delta)
    return slope, slope * delta - omega * math.log1p(delta / epsilon)


def adaptive_log_loss(
    value: torch.Tensor, omega: float = 10.0, epsilon: float = 0.5, delta: float = 0.1, *, form: str = "smooth"
) -> torch.Tensor:
    """Apply ALL element-wise to loss values (any shape; float32 math for half inputs).

    Args:
        value: loss values, typically in ``[0, 1]`` (an overlap loss).
        omega: scale of the logarithmic branch (> 0).
        epsilon: curvature of the logarithmic branch (> 0).
        delta: switch point between the branches (> 0).
        form: ``"smooth"`` (default: ``A x - C``, slope matched at ``delta``) or ``"wing"`` (linear branch
            ``x - C``).

    Raises:
        ValueError: invalid parameters, or a value ``<= -epsilon`` (outside the domain of the log branch; overlap
            losses are ``>= 0``).
    """
    omega, epsilon, delta = _check_parameters(omega, epsilon, delta)
    slope, offset = _linear_branch(omega, epsilon, delta, _check_form(form))
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    if value.numel() == 0:
        return value
    low = float(value.detach().min())
    if low <= -epsilon:
        raise ValueError(f"ALL expects loss values in [0, 1] (an overlap loss); got a value of {low}.")
    linear = value - offset if slope == 1.0 else value * slope - offset
    if value.ndim == 0:  # the usual case (a reduced loss): evaluate only the branch that applies
        return torch.log1p(value / epsilon) * omega if low < delta else linear
    return torch.where(value < delta, torch.log1p(value / epsilon) * omega, linear)


def log_branch_fraction(value: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    """Share of the loss values below ``delta``, i.e. in ALL's log branch (a 0-dim float tensor, no host sync).

    ``value`` is what ALL acts on (the wrapped loss's output: one value for a reduced Dice loss, one per image and
    class for ``reduction="none"``); an empty ``value`` gives ``nan``.
    """
    return (value.detach() < float(delta)).float().mean()


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
        form: ``"smooth"`` (default) or ``"wing"`` (see the module docstring).
        reduction: applied after ALL (``"mean"``, ``"sum"`` or ``"none"``); a no-op when the wrapped loss already
            returns a scalar.

    Attributes:
        last_log_branch_fraction: share of the values ALL saw in the last forward pass that fell in the log branch
            (a detached 0-dim tensor, ``None`` before the first call); read it with ``float(...)`` when needed.
        last_inner_loss: the mean of the values ALL saw in the last forward pass (the wrapped loss, e.g. the Dice
            loss), a detached 0-dim tensor (``None`` before the first call). Why: ALL's own value is on another
            scale (``ALL(delta) = 1.82``, ``ALL(1) = 16.8`` with the defaults and the smooth form) and cannot be
            read beside a Dice loss curve (0..1); the wrapped loss can, and compares directly with a run trained
            on that loss. The segmentation bundles log it as ``train/dice_loss`` next to ``train/loss``. A
            normalised ALL was not chosen: the value would no longer be the loss that is minimised.

    Targets are checked before the wrapped loss sees them: with a wrapped loss whose ``to_onehot_y`` is true (and
    more than one channel) a label map of whole class indices, otherwise masks with values in ``[0, 1]`` (0/255
    masks are refused: they give a negative Dice loss). An empty batch gives a zero loss with a zero gradient.

    Example:
        >>> loss = AdaptiveLogarithmicLoss(DiceLoss(softmax=True, to_onehot_y=True))
        >>> loss(torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 1, 16, 16))).shape
        torch.Size([])
    """

    last_log_branch_fraction: torch.Tensor | None
    last_inner_loss: torch.Tensor | None

    def __init__(
        self,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        omega: float = 10.0,
        epsilon: float = 0.5,
        delta: float = 0.1,
        reduction: LossReduction | str = LossReduction.MEAN,
        *,
        form: str = "smooth",
    ) -> None:
        super().__init__(reduction=check_reduction(reduction))
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be a callable (input, target) -> tensor, got {type(loss).__name__}.")
        self.loss = DiceLoss(sigmoid=True) if loss is None else loss
        self.omega, self.epsilon, self.delta = _check_parameters(omega, epsilon, delta)
        self.form = _check_form(form)
        self.last_log_branch_fraction = None
        self.last_inner_loss = None

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pass ``input`` and ``target`` to the wrapped loss (its shape conventions apply), then ALL."""
        if input.dtype in (torch.float16, torch.bfloat16):
            input = input.float()
        check_softmax_channels(input, bool(getattr(self.loss, "softmax", False)))
        to_onehot_y = bool(getattr(self.loss, "to_onehot_y", False))
        check_overlap_target(input, target, to_onehot_y, getattr(self.loss, "ignore_index", None))
        if input.shape[0] == 0 and getattr(self.loss, "reduction", "mean") != LossReduction.NONE.value:
            return input.sum() * 0.0  # an empty batch: zero loss, zero gradient (a reduced Dice loss would be nan)
        inner = self.loss(input, target)
        self.last_log_branch_fraction = log_branch_fraction(inner, self.delta)
        self.last_inner_loss = inner.detach().float().mean()
        value = adaptive_log_loss(inner, self.omega, self.epsilon, self.delta, form=self.form)
        return value if value.ndim == 0 else reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return (
            f"omega={self.omega}, epsilon={self.epsilon}, delta={self.delta}, form={self.form!r}, "
            f"reduction={self.reduction!r}"
        )
