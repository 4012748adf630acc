"""MONAI transforms: loading, intensity by the stored type, mammography pre-processing, decision thresholds."""

from .batch_augment import AUGMENT_ON, BatchRandAugment, PrepareBatchAugment, augment_placement
from .binary_mask import LoadBinaryMask, LoadBinaryMaskd, default_mask_threshold, mask_picture_to_8bit
from .intensity import INTENSITY_RULES, NonFinitePixelsError, ScaleIntensityByType, ScaleIntensityByTyped
from .io import LoadImageOrArray, LoadImageOrArrayd, PictureReader
from .mammography import MammogramIntensity, MammogramIntensityd, ResizeLongestPad, ResizeLongestPadd
from .threshold import (
    ApplyThreshold,
    ApplyThresholdd,
    class_priors,
    prior_correction,
    read_decision_rule,
    select_threshold,
)

__all__ = [
    "AUGMENT_ON",
    "INTENSITY_RULES",
    "ApplyThreshold",
    "ApplyThresholdd",
    "BatchRandAugment",
    "LoadBinaryMask",
    "LoadBinaryMaskd",
    "LoadImageOrArray",
    "LoadImageOrArrayd",
    "MammogramIntensity",
    "MammogramIntensityd",
    "NonFinitePixelsError",
    "PictureReader",
    "PrepareBatchAugment",
    "ResizeLongestPad",
    "ResizeLongestPadd",
    "ScaleIntensityByType",
    "ScaleIntensityByTyped",
    "augment_placement",
    "class_priors",
    "default_mask_threshold",
    "mask_picture_to_8bit",
    "prior_correction",
    "read_decision_rule",
    "select_threshold",
]
