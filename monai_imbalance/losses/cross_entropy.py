"""Cross-entropy with the package's target conventions: the baseline loss of every comparison.

Softmax (default): ``CE = -w_y log softmax(x)_y``, ``'mean'`` divided by ``sum w_y`` (identical to
``F.cross_entropy``). Sigmoid (``sigmoid=True``): per-channel binary cross-entropy, ``'mean'`` over elements
(identical to ``F.binary_cross_entropy_with_logits``). Unlike the PyTorch functions it accepts class indices of
shape ``(B,)``, ``(B, 1)``, ``(B, *S)`` or ``(B, 1, *S)`` in any dtype (MONAI label maps are float), one-hot
targets, ``include_background`` and float32 math under autocast. It is the focal loss with ``gamma = 0``.
"""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _WeightedLoss

from monai_imbalance.losses._inputs import ClassVector, check_reduction, class_vector
from monai_imbalance.losses.focal import _sigmoid_focal, _softmax_focal

__all__ = ["CrossEntropyLoss", "cross_entropy_loss"]


def cross_entropy_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: ClassVector | None = None,
    *,
    sigmoid: bool = False,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: LossReduction | str = LossReduction.MEAN,
) -> torch.Tensor:
    """(Weighted) cross-entropy; see the module docstring.

    Args:
        input: logits ``(B, C[, *S])`` (``C >= 2`` for softmax).
        target: class indices ``(B[, 1][, *S])`` or a dense target of the input's shape.
        weight: class weights ``(C,)``.
        sigmoid: per-channel binary cross-entropy instead of softmax cross-entropy.
        include_background: ``False`` excludes class 0 (softmax: zero weight; sigmoid: channel dropped).
        to_onehot_y: ``None`` infers label map vs dense target from the shape.
        ignore_index: target value excluded from the loss and from the 'mean' normaliser.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
    """
    fn = _sigmoid_focal if sigmoid else _softmax_focal
    return fn(
        input,
        target,
        0.0,
        None,
        class_vector(weight, "weight"),
        include_background,
        to_onehot_y,
        ignore_index,
        check_reduction(reduction),
    )


class CrossEntropyLoss(_WeightedLoss):
    """Module form of :func:`cross_entropy_loss` (``weight`` is a buffer the re-weighting handler can update).

    Shapes: ``input (B, C[, *S])`` logits; ``target`` class indices ``(B[, 1][, *S])`` or dense ``(B, C[, *S])``.

    Example:
        >>> loss = CrossEntropyLoss(weight=[1.0, 2.0])
        >>> loss(torch.randn(4, 2, 8, 8), torch.randint(0, 2, (4, 1, 8, 8)).float()).shape
        torch.Size([])
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: ClassVector | None = None,
        *,
        sigmoid: bool = False,
        include_background: bool = True,
        to_onehot_y: bool | None = None,
        ignore_index: int | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(weight=class_vector(weight, "weight"), reduction=check_reduction(reduction))
        self.sigmoid = bool(sigmoid)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input (B, C[, *S])`` logits, ``target`` indices or dense; returns the reduced loss."""
        fn = _sigmoid_focal if self.sigmoid else _softmax_focal
        return fn(
            input,
            target,
            0.0,
            None,
            self.weight,
            self.include_background,
            self.to_onehot_y,
            self.ignore_index,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return f"{'sigmoid' if self.sigmoid else 'softmax'}, reduction={self.reduction!r}"
