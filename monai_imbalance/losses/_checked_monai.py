"""MONAI's Dice and Tversky losses with this package's input rules (private module, built by ``get_loss``).

The values are MONAI's, unchanged; two things are added so that every loss ``get_loss`` builds follows the same
rules: a softmax over a one-channel output is refused (MONAI warns and computes the loss on the raw logits), the
target is checked (whole class indices in ``[0, C)`` for ``to_onehot_y=True``, otherwise a mask in
``[0, 1]``; 0/255 masks give MONAI a negative loss), and an empty batch gives a zero loss with a zero gradient
(MONAI's reduced losses give ``nan``).
"""

from __future__ import annotations

import torch
from monai.losses import DiceLoss, TverskyLoss
from monai.utils import LossReduction

from monai_imbalance.losses._inputs import check_overlap_target, check_softmax_channels, float_logits

__all__ = ["CheckedDiceLoss", "CheckedTverskyLoss"]


def _checked_forward(loss: DiceLoss | TverskyLoss, parent: type, input: torch.Tensor, target: torch.Tensor):
    input = float_logits(input)
    check_softmax_channels(input, bool(loss.softmax))  # MONAI only warns and then uses the raw logits
    check_overlap_target(input, target, bool(loss.to_onehot_y), getattr(loss, "ignore_index", None))
    if input.shape[0] == 0 and loss.reduction != LossReduction.NONE.value:
        return input.sum() * 0.0
    return parent.forward(loss, input, target)


class CheckedDiceLoss(DiceLoss):
    """``monai.losses.DiceLoss`` (same arguments, same values) with checked targets and a zero empty-batch loss."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _checked_forward(self, DiceLoss, input, target)


class CheckedTverskyLoss(TverskyLoss):
    """``monai.losses.TverskyLoss`` (same arguments, same values) with checked targets and a zero empty-batch loss."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _checked_forward(self, TverskyLoss, input, target)
