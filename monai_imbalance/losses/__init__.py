"""Loss functions for class imbalance (focal, LDAM, LMF, ALL, Focal Tversky, Combo) and get_loss.

In a MONAI bundle config name them by their fully qualified path, e.g. ``monai_imbalance.losses.LMFLoss``.
After ``import monai_imbalance`` the short names resolve too (``_target_: LMFLoss``), except the names MONAI
also defines: ``FocalLoss``, ``sigmoid_focal_loss`` and ``softmax_focal_loss`` resolve to MONAI's (with a
warning), so write ``monai_imbalance.losses.FocalLoss``.
"""

from ._inputs import LossSettingError
from .adaptive_log import AdaptiveLogarithmicLoss, adaptive_log_loss, log_branch_fraction
from .combo import ComboLoss, combo_loss
from .cross_entropy import CrossEntropyLoss, cross_entropy_loss
from .deferred_reweighting import deferred_class_weights, drw_class_weights
from .factory import LOSS_NAMES, get_loss
from .focal import FocalLoss, focal_loss, sigmoid_focal_loss, softmax_focal_loss
from .focal_tversky import FocalTverskyLoss, focal_tversky_loss
from .ldam import LDAMLoss, ldam_loss, ldam_margins
from .lmf import LMFLoss, lmf_loss

__all__ = [
    "LOSS_NAMES",
    "AdaptiveLogarithmicLoss",
    "ComboLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "LDAMLoss",
    "LMFLoss",
    "LossSettingError",
    "adaptive_log_loss",
    "combo_loss",
    "cross_entropy_loss",
    "deferred_class_weights",
    "drw_class_weights",
    "focal_loss",
    "focal_tversky_loss",
    "get_loss",
    "ldam_loss",
    "ldam_margins",
    "lmf_loss",
    "log_branch_fraction",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]
