"""Load a binary segmentation mask, or the union of several instance masks, as one 0/1 tensor.

Ground truth comes as one mask file per image (ISIC 2018 ``*_segmentation.png``, DRIVE
``1st_manual/*.gif`` and ``mask/*.gif``), as several binary instance masks per image (Data
Science Bowl 2018: ``stage1_train/<id>/masks/*.png``, one file per nucleus), or as an array in
memory (the DSB2018 ``npz``). :class:`LoadBinaryMask` (and :class:`LoadBinaryMaskd`) turns each of
these into the same tensor::

    mask[0, x] = 1  if any source has a value > t at position x (in any channel), else 0

Binarisation rule (``mask_threshold``): an explicit ``t``, or by default (``None``) the middle of the
value range of each source,

- ``t = 0.5`` when its values lie in ``[0, 1]`` (masks stored as 0/1, boolean or float in ``[0, 1]``);
- ``t = 127.5`` for other 8-bit masks (``uint8``: foreground ``> 127``, the usual 0/255 files);
- ``t = (min(0, lo) + hi) / 2`` otherwise (``lo``, ``hi`` the smallest and largest value: 16-bit or
  integer arrays, e.g. ``32767.5`` for a 0/65535 mask).

So a mask whose background is stored as 1 and its foreground as 255 (JPEG-like noise, some DSB 2018
conversions) gives its true foreground; ``mask_threshold=0`` restores "any non-zero value". A source
whose values all lie in ``[0, 1]`` is read with ``t = 0.5``: an all-ones "background" then becomes
foreground, which the plausibility warning below names.

Plausibility: a mask whose foreground share is exactly 0 % or 100 % of its pixels is almost always a
wrong rule or a wrong file (no lesion, every pixel a nucleus); ``warn_implausible=True`` issues a
``UserWarning`` naming the file(s) and the share (once per file and process).

Output: a channel-first ``(1, *spatial)`` ``MetaTensor`` of 0/1 values in the orientation of
:class:`monai_imbalance.transforms.LoadImageOrArray` (MONAI's: ``(1, W, H)`` for a picture or a 2-D array,
as ``LoadImaged`` + ``EnsureChannelFirstd`` give; ``reverse_indexing=False``: the display order ``(1, H, W)``
of versions 0.1.x), so that it lines up pixel for pixel with the image that transform loads with the same
``reverse_indexing``, from a file or from an array.

Palette images (GIF, and PNG in mode ``P``) and colour modes are converted to 8-bit RGB before the
rule (their raw values are palette indices, and index 0 is not always black), bilevel (``1``) and
grey+alpha pictures to 8-bit grey: a pixel counts as foreground when any colour channel is above ``t``
(``127.5``: a saturated red, green or blue lesion outline counts, a dark one does not).

Memory: the instance masks are read one at a time and or-ed into a boolean accumulator, so a DSB
image with hundreds of nuclei never holds more than two masks in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import is_supported_format
from monai.transforms import LoadImage, MapTransform, Transform

from .io import PICTURE_SUFFIXES, STORED_INTENSITY, LoadImageOrArray, PictureReader

__all__ = ["LoadBinaryMask", "LoadBinaryMaskd", "default_mask_threshold", "mask_picture_to_8bit"]

_RGB_CONVERTED_MODES = ("P", "PA", "RGBA", "CMYK", "YCbCr")
_GREY_CONVERTED_MODES = ("1", "LA")
_WIDE_UNSIGNED = tuple(getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name))

MaskSource = str | Path | np.ndarray | torch.Tensor


def mask_picture_to_8bit(image: Any) -> Any:
    """Pillow converter for mask pictures: palette and colour modes to 8-bit ``RGB``, bilevel and grey+alpha to
    8-bit grey ``L``; ``L``, ``RGB`` and 16-bit modes unchanged.

    A module-level function (not a lambda) so that transforms holding it can be pickled into DataLoader workers.
    """
    if image.mode in _RGB_CONVERTED_MODES:
        return image.convert("RGB")
    if image.mode in _GREY_CONVERTED_MODES:
        return image.convert("L")
    return image


def default_mask_threshold(values: torch.Tensor) -> float:
    """The default binarisation threshold of one mask source: the middle of its value range (module docstring).

    ``0.5`` for values in ``[0, 1]``, ``127.5`` for other ``uint8`` masks, else ``(min(0, lo) + hi) / 2``.
    """
    if values.numel() == 0:
        return 0.5
    if values.dtype in _WIDE_UNSIGNED:
        values = values.to(torch.int64)
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.5
    if values.dtype == torch.uint8:
        return 127.5
    return (min(0.0, lo) + hi) / 2.0


class LoadBinaryMask(Transform):
    """Load one mask, or the union of several, as a ``(1, *spatial)`` tensor of 0 and 1 (see the module docstring).

    Args:
        dtype: dtype of the output (default ``float32``, what MONAI losses and metrics expect).
        mask_threshold: a value is foreground when it is above this; ``None`` (default): the middle of each
            source's value range, see :func:`default_mask_threshold`.
        warn_implausible: warn (naming the file) when a mask is entirely background or entirely foreground.
        reverse_indexing: MONAI's orientation (default); ``False``: the display order (module docstring). Use the
            value of the image's :class:`~monai_imbalance.transforms.LoadImageOrArray`.

    Call with a path, an array, or a non-empty sequence of paths / arrays (their union). Arrays follow
    :class:`~monai_imbalance.transforms.LoadImageOrArray`: ``(H, W)``, ``(H, W, C)`` with ``C <= 4``, or
    ``(D, H, W)``.

    Raises:
        FileNotFoundError: a mask file does not exist (names it).
        ValueError: an empty sequence, an unreadable file, or masks of different sizes (names the file and
            both sizes).
        TypeError: an input that is neither a path nor an array.
    """

    def __init__(
        self,
        dtype: torch.dtype | np.dtype | type = np.float32,
        mask_threshold: float | None = None,
        warn_implausible: bool = True,
        reverse_indexing: bool = True,
    ) -> None:
        self.dtype = dtype
        if mask_threshold is not None:
            mask_threshold = float(mask_threshold)
            if not np.isfinite(mask_threshold):
                raise ValueError(f"mask_threshold must be a finite number or None, got {mask_threshold!r}.")
        self.mask_threshold = mask_threshold
        self.warn_implausible = warn_implausible
        # pictures: Pillow, palette and colour modes converted to 8-bit RGB / grey first
        self._picture_loader = LoadImage(
            reader=PictureReader(converter=mask_picture_to_8bit, reverse_indexing=reverse_indexing),
            image_only=True,
            dtype=None,
            ensure_channel_first=True,
        )
        # everything else (arrays, NIfTI, NumPy, DICOM): the project's generic loader, same orientation
        self._generic_loader = LoadImageOrArray(dtype=None, reverse_indexing=reverse_indexing)

    def _foreground(self, source: MaskSource) -> torch.Tensor:
        """Boolean ``(1, *spatial)`` foreground of one source (any channel non-zero)."""
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"mask file not found: {path}")
            if is_supported_format(path, PICTURE_SUFFIXES):
                try:
                    img = self._picture_loader(path)
                except Exception as e:
                    raise ValueError(f"cannot read mask file {path}: {type(e).__name__}: {e}") from e
            else:
                img = self._generic_loader(path)
        elif isinstance(source, (np.ndarray, torch.Tensor)):
            img = self._generic_loader(source)
        else:
            raise TypeError(f"expected a mask path or array (or a sequence of them), got {type(source).__name__}.")
        values = img.as_tensor() if isinstance(img, MetaTensor) else img
        if values.dtype in _WIDE_UNSIGNED:  # torch has no min/max/comparison kernels for them
            values = values.to(torch.int64)
        threshold = self.mask_threshold if self.mask_threshold is not None else default_mask_threshold(values)
        foreground = (values > threshold).any(dim=0, keepdim=True)
        return MetaTensor(foreground, meta=img.meta) if isinstance(img, MetaTensor) else foreground

    def __call__(self, data: MaskSource | Sequence[MaskSource]) -> MetaTensor:
        sources = list(data) if isinstance(data, (list, tuple)) else [data]
        if not sources:
            raise ValueError("no mask given: expected a mask path or array, or a non-empty sequence of them.")
        union = self._foreground(sources[0])
        meta = dict(union.meta) if isinstance(union, MetaTensor) else {}
        for key in (STORED_INTENSITY, "stored_dtype"):  # how the image's intensities scale: not a mask's concern
            meta.pop(key, None)
        union = union.as_tensor() if isinstance(union, MetaTensor) else union
        for source in sources[1:]:
            other = self._foreground(source)
            if other.shape != union.shape:
                raise ValueError(
                    f"mask {_describe(source)} has spatial size {tuple(other.shape[1:])}, but {_describe(sources[0])} "
                    f"has {tuple(union.shape[1:])}: all masks of one image must have the image's size."
                )
            union |= other.as_tensor() if isinstance(other, MetaTensor) else other
        if len(sources) > 1:
            meta["filename_or_obj"] = _common_parent(sources)
            meta["num_masks"] = len(sources)
        meta.setdefault("filename_or_obj", "")
        if self.warn_implausible and union.numel():
            share = float(union.float().mean())
            if share in (0.0, 1.0):
                warnings.warn(
                    f"implausible mask: {share:.0%} of the pixels of {_describe_all(sources)} are foreground; check "
                    "the file or the binarisation rule (mask_threshold, default the middle of the value range).",
                    UserWarning,
                    stacklevel=2,
                )
        return MetaTensor(union.to(_torch_dtype(self.dtype)), meta=meta)


class LoadBinaryMaskd(MapTransform):
    """Dictionary version of :class:`LoadBinaryMask`: ``data[key]`` is a mask path, an array, or a list of them.

    Args:
        keys: keys of the masks to load (e.g. ``"label"``, and ``"mask"`` for the DRIVE field of view).
        dtype: output dtype (default ``float32``).
        mask_threshold: foreground is a value above it; ``None``: the middle of the value range (module docstring).
        warn_implausible: warn about masks that are all background or all foreground.
        reverse_indexing: MONAI's orientation (default) or, ``False``, the display order of versions 0.1.x.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        dtype: torch.dtype | np.dtype | type = np.float32,
        mask_threshold: float | None = None,
        warn_implausible: bool = True,
        reverse_indexing: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadBinaryMask(
            dtype=dtype,
            mask_threshold=mask_threshold,
            warn_implausible=warn_implausible,
            reverse_indexing=reverse_indexing,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


def _describe(source: MaskSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"array of shape {tuple(source.shape)}"


def _describe_all(sources: Sequence[MaskSource]) -> str:
    if len(sources) == 1:
        return _describe(sources[0])
    return f"the {len(sources)} masks in {_common_parent(sources) or _describe(sources[0]) + ', ...'}"


def _common_parent(sources: Sequence[MaskSource]) -> str:
    paths = [Path(s) for s in sources if isinstance(s, (str, Path))]
    if len(paths) != len(sources):
        return ""
    parents = {p.parent for p in paths}
    return str(parents.pop()) if len(parents) == 1 else ""


def _torch_dtype(dtype: torch.dtype | np.dtype | type) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
