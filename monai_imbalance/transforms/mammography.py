"""Mammogram pre-processing: DICOM display intensities in ``[0, 1]`` and an aspect-keeping square resize.

:class:`MammogramIntensity` turns the pixel data of a mammogram into a float image in ``[0, 1]`` with
bright = dense tissue, the way a radiologist's viewer shows it:

1. VOI transform, from the DICOM header that :class:`~monai_imbalance.transforms.LoadImageOrArray` keeps with
   ``dicom_tags=True`` (MONAI's ``PydicomReader(prune_metadata=False)`` puts each header element in
   ``img.meta`` under its tag as 8 hex digits, e.g. ``"00281050": {"vr": "DS", "Value": [2047.0]}``):

   - a VOI LUT Sequence (0028,3010) is applied as a lookup table (through ``pydicom.pixels.apply_voi``),
     ``y = LUT[clip(x - first_mapped, 0, n - 1)] / (2^bits - 1)``;
   - otherwise Window Center ``c`` / Window Width ``w`` (0028,1050/1051), with the VOI LUT Function
     (0028,1056) of DICOM PS3.3 C.11.2.1.2-3, mapped to ``[0, 1]``:

     - ``LINEAR`` (default): ``y = clip(((x - (c - 0.5)) / (w - 1) + 0.5), 0, 1)``, with ``y = 0`` for
       ``x <= c - 0.5 - (w - 1) / 2`` and ``y = 1`` for ``x > c - 0.5 + (w - 1) / 2``;
     - ``LINEAR_EXACT``: ``y = clip((x - c) / w + 0.5, 0, 1)``;
     - ``SIGMOID``: ``y = 1 / (1 + exp(-4 (x - c) / w))``;
   - otherwise (no VOI tags, or JPEG/PNG input, or ``voi="percentile"``) a percentile normalisation
     ``y = clip((x - P_lo) / (P_hi - P_lo), 0, 1)`` over all pixels of the image (defaults ``P_0.5`` and
     ``P_99.5``; a constant image gives zeros).

   MONAI has already applied the modality LUT (Rescale Slope / Intercept) while reading, as the standard
   requires before the VOI transform.
2. ``MONOCHROME1`` images (Photometric Interpretation (0028,0004): the minimum value is displayed white)
   are inverted, ``y = 1 - y``, so every output has bright tissue on a dark background.
3. The DICOM header entries are removed from ``img.meta`` (headers that differ between files cannot be
   collated into a batch); ``img.meta["intensity_normalisation"]`` records which of ``"voi_lut"``,
   ``"window"``, ``"percentile"`` was used and ``img.meta["inverted"]`` whether step 2 applied.

:class:`ResizeLongestPad` resizes so that the longest side is ``spatial_size`` (aspect ratio kept, MONAI
``Resize(size_mode="longest")``), then pads the short side symmetrically with zeros to a square
(``SpatialPad``): a ``(C, H, W)`` image becomes ``(C, S, S)``.

Breast density pipeline (DICOM or JPEG/PNG mammograms, any size)::

    Compose([
        LoadImageOrArrayd(keys="image", dicom_tags=True, channels=1, draft_size=image_size),
        MammogramIntensityd(keys="image"),
        ResizeLongestPadd(keys="image", spatial_size=image_size),   # (1, image_size, image_size) in [0, 1]
    ])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize, SpatialPad, Transform

from monai_imbalance.transforms.io import strip_dicom_tags

__all__ = [
    "MammogramIntensity",
    "MammogramIntensityd",
    "ResizeLongestPad",
    "ResizeLongestPadd",
    "apply_window",
    "percentile_normalise",
]

_PHOTOMETRIC = "00280004"
_WINDOW_CENTER = "00281050"
_WINDOW_WIDTH = "00281051"
_VOI_LUT_FUNCTION = "00281056"
_VOI_LUT_SEQUENCE = "00283010"
_WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def apply_window(x: torch.Tensor, center: float, width: float, function: str = "LINEAR") -> torch.Tensor:
    """DICOM VOI windowing (PS3.3 C.11.2.1.2-3) mapped to ``[0, 1]``; see the module docstring for the formulas.

    Args:
        x: stored values after the modality LUT, any shape.
        center: Window Center ``c``.
        width: Window Width ``w`` (``>= 1`` for ``LINEAR``, ``> 0`` otherwise).
        function: ``"LINEAR"``, ``"LINEAR_EXACT"`` or ``"SIGMOID"``.

    Returns:
        float tensor of the shape of ``x`` in ``[0, 1]`` (float32 unless ``x`` is float64).
    """
    function = function.upper()
    if function not in _WINDOW_FUNCTIONS:
        raise ValueError(f"unknown VOI LUT Function {function!r}; expected one of {_WINDOW_FUNCTIONS}.")
    if function == "LINEAR" and width < 1:
        raise ValueError(f"a LINEAR window needs Window Width >= 1, got {width}.")
    if width <= 0:
        raise ValueError(f"Window Width must be positive, got {width}.")
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if function == "LINEAR":
        if width == 1:  # a step at c - 0.5
            return (x > center - 0.5).to(x.dtype)
        return ((x - (center - 0.5)) / (width - 1) + 0.5).clamp(0.0, 1.0)
    if function == "LINEAR_EXACT":
        return ((x - center) / width + 0.5).clamp(0.0, 1.0)
    return torch.sigmoid(4.0 * (x - center) / width)


def percentile_normalise(x: torch.Tensor, lower: float = 0.5, upper: float = 99.5) -> torch.Tensor:
    """``clip((x - P_lower) / (P_upper - P_lower), 0, 1)`` with percentiles over all elements of ``x``.

    A constant input (``P_upper == P_lower``) gives zeros. Returns float32 (float64 for float64 input).
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    flat = x.reshape(-1)
    if flat.numel() > 4_000_000:  # torch.quantile has an input size limit; a strided sample is exact enough
        flat = flat[:: flat.numel() // 4_000_000 + 1]
    q = torch.quantile(flat, torch.tensor([lower / 100.0, upper / 100.0], dtype=flat.dtype, device=flat.device))
    lo, hi = q[0], q[1]
    if hi <= lo:
        return torch.zeros_like(x)
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


def _tag_values(meta: Mapping, key: str) -> list:
    element = meta.get(key)
    if not isinstance(element, Mapping):
        return []
    return list(element.get("Value") or [])


def _apply_voi_lut(x: torch.Tensor, meta: Mapping, index: int) -> torch.Tensor:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import apply_voi
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset.from_json({_VOI_LUT_SEQUENCE: meta[_VOI_LUT_SEQUENCE]})
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # MONAI's reader hands over little-endian values
    items = ds.VOILUTSequence
    if index >= len(items):
        raise ValueError(f"VOI LUT index {index} out of range: the VOI LUT Sequence has {len(items)} item(s).")
    bits = int(items[index].LUTDescriptor[2])
    # apply_voi expects integer stored values (it indexes the table with them)
    stored = np.rint(x.detach().cpu().numpy()).astype(np.int64)
    out = apply_voi(stored, ds, index=index).astype(np.float32) / float(2**bits - 1)
    return torch.as_tensor(out, device=x.device)


class MammogramIntensity(Transform):
    """Mammogram intensities in ``[0, 1]``: DICOM VOI LUT / window or percentiles, MONOCHROME1 inverted.

    Input: a channel-first image ``(C, H, W)``, ideally a ``MetaTensor`` from
    ``LoadImageOrArray(dicom_tags=True)``; a plain tensor (or an image without DICOM tags, e.g. a JPEG) is
    normalised by percentiles. Output: float32 ``MetaTensor`` of the same shape. See the module docstring.

    Args:
        voi: ``"auto"`` (VOI LUT Sequence, else window, else percentiles), ``"window"`` (window tags if present,
            ignoring a VOI LUT Sequence, else percentiles) or ``"percentile"`` (always percentiles).
        voi_index: which of several VOI LUTs / windows in the header to use (default the first).
        percentiles: ``(lower, upper)`` percentiles of the fallback normalisation.
        invert_monochrome1: invert MONOCHROME1 images.
        strip_tags: remove the DICOM header entries from the meta dict afterwards.
    """

    def __init__(
        self,
        voi: str = "auto",
        voi_index: int = 0,
        percentiles: Sequence[float] = (0.5, 99.5),
        invert_monochrome1: bool = True,
        strip_tags: bool = True,
    ) -> None:
        if voi not in ("auto", "window", "percentile"):
            raise ValueError(f"voi must be 'auto', 'window' or 'percentile', got {voi!r}.")
        if len(percentiles) != 2 or not 0.0 <= percentiles[0] < percentiles[1] <= 100.0:
            raise ValueError(f"percentiles must be (lower, upper) with 0 <= lower < upper <= 100, got {percentiles}.")
        if voi_index < 0:
            raise ValueError(f"voi_index must be >= 0, got {voi_index}.")
        self.voi = voi
        self.voi_index = voi_index
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        self.invert_monochrome1 = invert_monochrome1
        self.strip_tags = strip_tags

    def __call__(self, img: torch.Tensor | np.ndarray) -> MetaTensor:
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(np.asarray(img))
        filename = meta.get("filename_or_obj", "")
        where = f" in {filename}" if filename else ""

        centers = _tag_values(meta, _WINDOW_CENTER)
        widths = _tag_values(meta, _WINDOW_WIDTH)
        if self.voi == "auto" and _tag_values(meta, _VOI_LUT_SEQUENCE):
            y = _apply_voi_lut(x, meta, self.voi_index)
            method = "voi_lut"
        elif self.voi != "percentile" and centers and widths:
            if self.voi_index >= min(len(centers), len(widths)):
                raise ValueError(f"window index {self.voi_index} out of range{where}: {len(centers)} window(s).")
            functions = _tag_values(meta, _VOI_LUT_FUNCTION) or ["LINEAR"]
            function = str(functions[min(self.voi_index, len(functions) - 1)])
            try:
                y = apply_window(x, float(centers[self.voi_index]), float(widths[self.voi_index]), function)
            except ValueError as e:
                raise ValueError(f"invalid DICOM window{where}: {e}") from e
            method = "window"
        else:
            y = percentile_normalise(x, *self.percentiles)
            method = "percentile"

        photometric = [str(v).strip().upper() for v in _tag_values(meta, _PHOTOMETRIC)]
        inverted = self.invert_monochrome1 and photometric[:1] == ["MONOCHROME1"]
        if inverted:
            y = 1.0 - y
        if self.strip_tags:
            strip_dicom_tags(meta)
        meta["intensity_normalisation"] = method
        meta["inverted"] = inverted
        return MetaTensor(y.to(torch.float32), meta=meta)


class MammogramIntensityd(MapTransform):
    """Dictionary version of :class:`MammogramIntensity`."""

    def __init__(
        self,
        keys: KeysCollection,
        voi: str = "auto",
        voi_index: int = 0,
        percentiles: Sequence[float] = (0.5, 99.5),
        invert_monochrome1: bool = True,
        strip_tags: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = MammogramIntensity(voi, voi_index, percentiles, invert_monochrome1, strip_tags)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class ResizeLongestPad(Transform):
    """Resize so the longest spatial side is ``spatial_size`` (aspect kept), then zero-pad to a square/cube.

    ``(C, H, W)`` -> ``(C, S, S)``: first ``(C, round(H s), round(W s))`` with ``s = S / max(H, W)``
    (MONAI ``Resize(size_mode="longest")``), then symmetric padding with ``value`` (MONAI ``SpatialPad``).

    Args:
        spatial_size: the output side length ``S``.
        mode: interpolation mode of MONAI ``Resize`` (``"area"`` suits strong downsampling).
        value: padding value.
    """

    def __init__(self, spatial_size: int, mode: str = "area", value: float = 0.0) -> None:
        if int(spatial_size) < 1:
            raise ValueError(f"spatial_size must be a positive int, got {spatial_size!r}.")
        self.spatial_size = int(spatial_size)
        self.resize = Resize(spatial_size=self.spatial_size, size_mode="longest", mode=mode)
        self.value = value

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        out = self.resize(img)
        pad = SpatialPad(spatial_size=[self.spatial_size] * (out.ndim - 1), method="symmetric", value=self.value)
        return pad(out)


class ResizeLongestPadd(MapTransform):
    """Dictionary version of :class:`ResizeLongestPad`."""

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: int,
        mode: str = "area",
        value: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ResizeLongestPad(spatial_size, mode, value)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
