"""Load a binary segmentation mask, or the union of several instance masks, as one 0/1 tensor.

Ground truth comes as one mask file per image (ISIC 2018 ``*_segmentation.png``, DRIVE
``1st_manual/*.gif`` and ``mask/*.gif``), as several binary instance masks per image (Data
Science Bowl 2018: ``stage1_train/<id>/masks/*.png``, one file per nucleus), or as an array in
memory (the DSB2018 ``npz``). :class:`LoadBinaryMask` (and :class:`LoadBinaryMaskd`) turns each of
these into the same tensor::

    mask[0, h, w] = 1  if any source has a non-zero value at row h, column w (in any channel), else 0

Output: a channel-first ``(1, H, W)`` ``MetaTensor`` (``(1, D, H, W)`` for volumes) of 0/1 values, in
the display orientation of :class:`monai_imbalance.transforms.LoadImageOrArray` (rows first, the
layout of ``numpy.asarray(PIL.Image.open(f))``), so that it lines up pixel for pixel with the image
that transform loads, from a file or from an array.

Palette images (GIF, and PNG in mode ``P``) are converted to grey before thresholding: their raw
values are palette indices, and index 0 is not always black. Mode ``1``, RGB(A) and grey+alpha
pictures are converted to grey as well; a coloured pixel counts as foreground.

Memory: the instance masks are read one at a time and or-ed into a boolean accumulator, so a DSB
image with hundreds of nuclei never holds more than two masks in memory.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import is_supported_format
from monai.transforms import LoadImage, MapTransform, Transform

from .io import PICTURE_SUFFIXES, LoadImageOrArray, PictureReader

__all__ = ["LoadBinaryMask", "LoadBinaryMaskd", "mask_picture_to_grey"]

_GREY_CONVERTED_MODES = ("P", "PA", "1", "RGB", "RGBA", "LA", "CMYK", "YCbCr")

MaskSource = str | Path | np.ndarray | torch.Tensor


def mask_picture_to_grey(image: Any) -> Any:
    """Pillow converter for mask pictures: palette, bilevel and colour modes to 8-bit grey (``L``); others unchanged.

    A module-level function (not a lambda) so that transforms holding it can be pickled into DataLoader workers.
    """
    return image.convert("L") if image.mode in _GREY_CONVERTED_MODES else image


class LoadBinaryMask(Transform):
    """Load one mask, or the union of several, as a ``(1, *spatial)`` tensor of 0 and 1 (see the module docstring).

    Args:
        dtype: dtype of the output (default ``float32``, what MONAI losses and metrics expect).

    Call with a path, an array, or a non-empty sequence of paths / arrays (their union). Arrays follow
    :class:`~monai_imbalance.transforms.LoadImageOrArray`: ``(H, W)``, ``(H, W, C)`` with ``C <= 4``, or
    ``(D, H, W)``.

    Raises:
        FileNotFoundError: a mask file does not exist (names it).
        ValueError: an empty sequence, an unreadable file, or masks of different sizes (names the file and
            both sizes).
        TypeError: an input that is neither a path nor an array.
    """

    def __init__(self, dtype: torch.dtype | np.dtype | type = np.float32) -> None:
        self.dtype = dtype
        # pictures: Pillow in display orientation, palette and colour modes converted to grey first
        self._picture_loader = LoadImage(
            reader=PictureReader(converter=mask_picture_to_grey), image_only=True, dtype=None, ensure_channel_first=True
        )
        # everything else (arrays, NIfTI, NumPy, DICOM): the project's generic loader, same orientation
        self._generic_loader = LoadImageOrArray(dtype=None)

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
        foreground = (img != 0).any(dim=0, keepdim=True)
        return MetaTensor(foreground.as_tensor(), meta=img.meta) if isinstance(img, MetaTensor) else foreground

    def __call__(self, data: MaskSource | Sequence[MaskSource]) -> MetaTensor:
        sources = list(data) if isinstance(data, (list, tuple)) else [data]
        if not sources:
            raise ValueError("no mask given: expected a mask path or array, or a non-empty sequence of them.")
        union = self._foreground(sources[0])
        meta = dict(union.meta) if isinstance(union, MetaTensor) else {}
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
        return MetaTensor(union.to(_torch_dtype(self.dtype)), meta=meta)


class LoadBinaryMaskd(MapTransform):
    """Dictionary version of :class:`LoadBinaryMask`: ``data[key]`` is a mask path, an array, or a list of them.

    Args:
        keys: keys of the masks to load (e.g. ``"label"``, and ``"mask"`` for the DRIVE field of view).
        dtype: output dtype (default ``float32``).
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        dtype: torch.dtype | np.dtype | type = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadBinaryMask(dtype=dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


def _describe(source: MaskSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"array of shape {tuple(source.shape)}"


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
