"""MONAI transforms: image/array loading, mammography pre-processing, decision thresholds."""

from .io import LoadImageOrArray, LoadImageOrArrayd, PictureReader
from .mammography import MammogramIntensity, MammogramIntensityd, ResizeLongestPad, ResizeLongestPadd

__all__ = [
    "LoadImageOrArray",
    "LoadImageOrArrayd",
    "MammogramIntensity",
    "MammogramIntensityd",
    "PictureReader",
    "ResizeLongestPad",
    "ResizeLongestPadd",
]
