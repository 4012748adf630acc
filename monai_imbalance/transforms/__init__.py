"""MONAI transforms: image/array loading, mammography pre-processing, decision thresholds, temperature scaling,
referral rules."""

from .batch_augment import AUGMENT_ON, BatchRandAugment, PrepareBatchAugment, augment_placement
from .binary_mask import LoadBinaryMask, LoadBinaryMaskd, default_mask_threshold, mask_picture_to_8bit
from .io import LoadImageOrArray, LoadImageOrArrayd, PictureReader
from .mammography import MammogramIntensity, MammogramIntensityd, ResizeLongestPad, ResizeLongestPadd
from .referral import read_referral_rule, refer
from .temperature import (
    CALIBRATION_METHODS,
    TemperatureScaled,
    fit_temperature,
    read_temperature,
    temperature_scale,
)
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
    "CALIBRATION_METHODS",
    "ApplyThreshold",
    "ApplyThresholdd",
    "BatchRandAugment",
    "LoadBinaryMask",
    "LoadBinaryMaskd",
    "LoadImageOrArray",
    "LoadImageOrArrayd",
    "MammogramIntensity",
    "MammogramIntensityd",
    "PictureReader",
    "PrepareBatchAugment",
    "ResizeLongestPad",
    "ResizeLongestPadd",
    "TemperatureScaled",
    "augment_placement",
    "class_priors",
    "default_mask_threshold",
    "fit_temperature",
    "mask_picture_to_8bit",
    "prior_correction",
    "read_decision_rule",
    "read_referral_rule",
    "read_temperature",
    "refer",
    "select_threshold",
    "temperature_scale",
]
