"""Pixel values to ``[0, 1]`` by the image's own data type: one rule for every bundle, 8-bit, 16-bit, float or DICOM.

A fixed ``ScaleIntensityRange(a_min=0, a_max=255, clip=True)`` turns a 16-bit image white: every value above
255 is clipped to 1 (a 16-bit PNG came out with min 0.516, max 1.0, std 0.027). The range to scale from is a
property of the *file*, so :class:`~monai_imbalance.transforms.LoadImageOrArray` records what the file stores in
``img.meta["stored_intensity"]`` (see :func:`stored_intensity`) and :class:`ScaleIntensityByType` maps it to
``[0, 1]`` by one of these rules (a bundle's ``intensity`` setting):

``"auto"`` (the default of six bundles)
    - 8- and 16-bit unsigned integers (8-bit PNG/JPEG/BMP, 16-bit PNG/TIFF, ``uint8`` npz arrays, ...):
      ``y = x / (2^bits - 1)``, i.e. ``x / 255`` for ``uint8`` and ``x / 65535`` for ``uint16``; ``int8`` /
      ``int16`` ``y = (x - min) / (max - min)`` over the type's range; booleans ``y = x``; 32- and 64-bit
      integers (a range no image fills, e.g. Pillow's ``"I"`` TIFFs) as floating point, below;
    - DICOM: the file's first VOI window (Window Center ``c`` / Width ``w``, with its VOI LUT Function:
      :func:`~monai_imbalance.transforms.mammography.apply_window`) when it has one, else the range its
      Bits Stored ``b`` can hold, ``[0, 2^b - 1]`` (``[-2^(b-1), 2^(b-1) - 1]`` when Pixel Representation is 1),
      mapped through its Rescale Slope / Intercept as MONAI maps the pixels; ``MONOCHROME1`` images are then
      inverted, ``y = 1 - y``, so bright means dense everywhere;
    - floating point (float TIFF, ``.npy``, NIfTI) and 32/64-bit integers: values already within ``[0, 1]`` are
      kept as they are, otherwise ``y = (x - min) / (max - min)`` over the image (a constant image gives zeros);
      the type holds no range to scale from.

    The output is clipped to ``[0, 1]`` (a value outside the declared range, e.g. a DICOM pixel outside its
    window).
``"minmax"``
    ``y = (x - min) / (max - min)`` per image, whatever the type (the knee radiographs: 8-bit PNGs and 16-bit
    DICOMs alike; a constant image gives zeros).
``"mammogram"``
    :class:`~monai_imbalance.transforms.MammogramIntensity`: the DICOM VOI LUT or window, else the 0.5-99.5
    percentiles, MONOCHROME1 inverted (needs ``LoadImageOrArray(dicom_tags=True)``).

Every rule first checks that the pixels are finite: an image with NaN or infinite values stops with a
:class:`NonFinitePixelsError` that names the file (a NaN pixel otherwise turns the training loss NaN and the run
fails much later, without saying where it came from).

The ``stored_intensity`` entry is removed from the meta dict afterwards;
``img.meta["intensity_rule"]`` records the rule applied (``"dtype"``, ``"window"``, ``"float"``, ``"minmax"``,
or for ``"mammogram"`` its own ``intensity_normalisation``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from monai_imbalance.errors import DataError, UserError, check_choice
from monai_imbalance.transforms.io import STORED_INTENSITY
from monai_imbalance.transforms.mammography import MammogramIntensity, apply_window

__all__ = ["INTENSITY_RULES", "NonFinitePixelsError", "ScaleIntensityByType", "ScaleIntensityByTyped"]

#: The rules of :class:`ScaleIntensityByType` (a bundle's ``intensity`` setting).
INTENSITY_RULES: tuple[str, ...] = ("auto", "minmax", "mammogram")


class NonFinitePixelsError(UserError, ValueError):
    """An image holds NaN or infinite pixel values (the message names the file or item and the counts)."""


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    if hi <= lo:
        return torch.zeros_like(x)
    return (x - lo) / (hi - lo)


class ScaleIntensityByType(Transform):
    """Scale an image to ``[0, 1]`` by the range of its stored data type (module docstring: the rules).

    Input: a channel-first image from :class:`~monai_imbalance.transforms.LoadImageOrArray` (a ``MetaTensor``
    whose meta holds ``"stored_intensity"``). Output: a float32 (float64 for float64 input) ``MetaTensor`` of
    the same shape in ``[0, 1]``.

    Args:
        rule: ``"auto"``, ``"minmax"`` or ``"mammogram"``.

    Raises:
        UnknownChoiceError: an unknown ``rule``.
        NonFinitePixelsError: the image holds NaN or infinite values (names the file).
        DataError: (a ``ValueError``) a DICOM window the standard does not allow (names the file).
        ValueError: ``"auto"`` on an image that was not loaded by ``LoadImageOrArray`` (its stored type is
            unknown: load it with that transform, or use ``"minmax"``).
    """

    def __init__(self, rule: str = "auto") -> None:
        check_choice(rule, INTENSITY_RULES, "intensity rule")
        self.rule = rule
        self._mammogram = MammogramIntensity() if rule == "mammogram" else None

    def __call__(self, img: torch.Tensor | np.ndarray, where: str = "") -> MetaTensor:
        """Scale ``img``; ``where`` names it in errors when its meta dict has no file name (an array's item)."""
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(np.asarray(img))
        stored = meta.pop(STORED_INTENSITY, None)
        name = meta.get("filename_or_obj") or where or "an in-memory image"
        if x.is_floating_point():
            finite = torch.isfinite(x)
            if not bool(finite.all()):
                nan = int(torch.isnan(x).sum())
                inf = int((~finite).sum()) - nan
                raise NonFinitePixelsError(
                    f"{name}: {nan} NaN and {inf} infinite pixel value(s) of {x.numel()}; replace them (e.g. "
                    "numpy.nan_to_num) or leave the image out of the datalist."
                )
        if self._mammogram is not None:
            out = self._mammogram(MetaTensor(x, meta=meta))
            out.meta["intensity_rule"] = out.meta.get("intensity_normalisation", "mammogram")
            return out
        x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        if self.rule == "minmax":
            y, used = _minmax(x), "minmax"
        else:
            if stored is None:
                raise ValueError(
                    f"{name}: the stored data type is unknown (not loaded by LoadImageOrArray), so intensity rule "
                    "'auto' cannot scale it; load it with monai_imbalance.transforms.LoadImageOrArrayd or set the "
                    "intensity rule to 'minmax'."
                )
            try:
                y, used = _by_type(x, stored)
            except ValueError as e:  # a window the DICOM standard does not allow (width < 1, unknown function)
                raise DataError(f"{name}: invalid DICOM window in its header: {e}") from e
        meta["intensity_rule"] = used
        return MetaTensor(y.clamp(0.0, 1.0), meta=meta)


def _scalar(value: Any) -> float:
    """A float from a collated or plain meta value (a number, a 0-d tensor or a one-element list)."""
    if isinstance(value, (list, tuple)):
        value = value[0]
    return float(value.item() if hasattr(value, "item") else value)


def _by_type(x: torch.Tensor, stored: Mapping[str, Any]) -> tuple[torch.Tensor, str]:
    window = [_scalar(v) for v in stored.get("window", (math.nan, math.nan))]
    if not any(math.isnan(v) for v in window):
        y, used = apply_window(x, window[0], window[1], str(stored.get("window_function") or "LINEAR")), "window"
    else:
        lo, hi = (_scalar(v) for v in stored.get("range", (math.nan, math.nan)))
        if math.isnan(lo) or math.isnan(hi):  # floating point: no range in the type
            inside = bool(x.min() >= 0) and bool(x.max() <= 1) if x.numel() else True
            y, used = (x if inside else _minmax(x)), "float"
        else:
            y, used = (x - lo) / (hi - lo), "dtype"
    if bool(stored.get("monochrome1", False)):
        y = 1.0 - y
    return y, used


class ScaleIntensityByTyped(MapTransform):
    """Dictionary version of :class:`ScaleIntensityByType`."""

    def __init__(self, keys: KeysCollection, rule: str = "auto", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ScaleIntensityByType(rule=rule)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        where = f"item {d['id']!r}" if d.get("id") not in (None, "") else ""
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], where=f"{where}, {key!r}" if where else "")
        return d
