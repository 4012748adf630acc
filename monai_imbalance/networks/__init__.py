"""Networks (FocusNet) and helpers that build MONAI networks with dropout."""

from .dropout import add_dropout, find_dropout_modules, mc_dropout_mode, set_dropout
from .focusnet import FocusNet

__all__ = ["FocusNet", "add_dropout", "find_dropout_modules", "mc_dropout_mode", "set_dropout"]
