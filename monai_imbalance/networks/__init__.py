"""Networks (FocusNet) and helpers that build MONAI networks with dropout."""

from .dropout import add_dropout, find_dropout_modules, mc_dropout_mode, set_dropout
from .factory import NETWORK_NAMES, PretrainedWeightsUnavailableError, get_network
from .focusnet import FocusNet
from .heads import NormedLinear, find_final_linear, replace_with_cosine_head
from .segmentation_factory import (
    SEGMENTATION_NETWORK_NAMES,
    TRACE_ONLY_NETWORK_NAMES,
    UNetWithHead,
    get_segmentation_network,
    segmentation_size_divisor,
)
from .small_cnn import SmallCNN

__all__ = [
    "NETWORK_NAMES",
    "SEGMENTATION_NETWORK_NAMES",
    "TRACE_ONLY_NETWORK_NAMES",
    "FocusNet",
    "NormedLinear",
    "PretrainedWeightsUnavailableError",
    "SmallCNN",
    "UNetWithHead",
    "add_dropout",
    "find_dropout_modules",
    "find_final_linear",
    "get_network",
    "get_segmentation_network",
    "mc_dropout_mode",
    "replace_with_cosine_head",
    "segmentation_size_divisor",
    "set_dropout",
]
