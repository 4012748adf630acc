"""Load an image from a file of any format MONAI reads, or take it from an in-memory array, as one tensor.

Datalists hold either file paths (PNG, JPEG, BMP, TIFF, GIF, DICOM, NIfTI, NumPy) or, for MedMNIST-style
``npz`` files, the image arrays themselves. :class:`LoadImageOrArray` (and its dictionary twin
:class:`LoadImageOrArrayd`) turns both into the same float tensor, so one transform chain serves every
data source, and the same picture gives the same tensor whether it comes from a PNG on disk or from an
array in memory.

Orientation (MONAI's, since 0.2):
    the output is exactly what ``LoadImaged(keys, image_only=True)`` + ``EnsureChannelFirstd(keys)`` give for
    the same file, so a model trained through this loader sees a plain MONAI pipeline's images unchanged.
    For 2-D pictures (PNG, JPEG, ...) and DICOM that is ``(C, W, H)``: MONAI's ``PILReader``
    (``reverse_indexing=True``) and ``PydicomReader`` (``swap_ij=True``) put the image's columns (x) on the
    first spatial axis, the convention of ITK and NIfTI. NIfTI and NumPy files are read unchanged, as MONAI does.

    In-memory arrays (MedMNIST ``npz`` images, the DSB 2018 ``npz``) hold a picture in the layout of
    ``numpy.asarray(PIL.Image.open(f))``, rows first: ``(H, W)`` or ``(H, W, C)``. They are transposed to
    ``(C, W, H)``, so an array gives the same tensor as the picture saved to a PNG file and read by MONAI
    (the plain-MONAI equivalent of an ``(H, W, C)`` array ``a`` is ``EnsureChannelFirst(channel_dim=-1)(a)``
    followed by swapping the two spatial axes). 3-D arrays without a channel axis, ``(D, H, W)`` volumes, are
    kept as they are (as ``NumpyReader`` keeps them).

    ``reverse_indexing=False`` restores the display order ``(C, H, W)`` of versions 0.1.x (PIL and DICOM
    axes not swapped, arrays not transposed), for models trained with them.

Channels:
    grey files and 2-D arrays give ``C = 1``; RGB(A) files and ``(H, W, 3|4)`` arrays give ``C = 3|4``.
    ``channels=1`` converts colour to grey with the ITU-R BT.601 luma weights
    ``Y = 0.299 R + 0.587 G + 0.114 B`` (alpha dropped); ``channels=3`` repeats a grey channel three times
    (alpha dropped), so grey and colour sources can feed one network.

Metadata:
    ``img.meta["stored_intensity"]`` records what the file (or array) stores, for
    :class:`monai_imbalance.transforms.ScaleIntensityByType`: the numpy data type of the pixels as stored
    (``"uint8"``, ``"uint16"``, ``"float32"``, ...), the value range that type (for DICOM: its Bits Stored, after
    Rescale Slope / Intercept) can hold, the DICOM window and whether it is ``MONOCHROME1``; see
    :func:`stored_intensity`. The output dtype (``float32``) no longer tells a 16-bit image from an 8-bit one.

    DICOM files are read with ``PydicomReader(prune_metadata=False)``; the full DICOM header then sits in
    ``img.meta`` under MONAI's JSON keys (8 hex digits, e.g. ``"00280004"`` = PhotometricInterpretation,
    ``"00281050"`` = WindowCenter) only when ``dicom_tags=True`` (needed by
    :class:`monai_imbalance.transforms.MammogramIntensityd`, which removes them after use). By default those
    tag entries are dropped, because headers that differ between files cannot be collated into a batch.

Example (any data format of :func:`monai_imbalance.data.load_datalists`)::

    Compose([
        LoadImageOrArrayd(keys="image"),              # (C, W, H) float32, as LoadImaged + EnsureChannelFirstd
        ScaleIntensityd(keys="image"),
        Resized(keys="image", spatial_size=(224, 224)),
    ])
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, NibabelReader, NumpyReader, PILReader, PydicomReader
from monai.data.utils import is_supported_format
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import ensure_tuple_rep

__all__ = [
    "PICTURE_SUFFIXES",
    "STORED_INTENSITY",
    "LoadImageOrArray",
    "LoadImageOrArrayd",
    "PictureReader",
    "convert_channels",
    "stored_intensity",
    "strip_dicom_tags",
]

#: File suffixes read through Pillow (lower case, without the dot).
PICTURE_SUFFIXES: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif")

#: Suffixes of files that MONAI's ``NibabelReader`` / ``NumpyReader`` read.
_NIFTI_SUFFIXES = ("nii", "nii.gz")
_NUMPY_SUFFIXES = ("npy", "npz")

#: The meta dict key of :func:`stored_intensity`'s record.
STORED_INTENSITY = "stored_intensity"
_STORED_DTYPE = "stored_dtype"  # set by the readers below, consumed by stored_intensity

_DICOM_TAG_KEY = re.compile(r"^[0-9A-Fa-f]{8}$")
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class PictureReader(PILReader):
    """MONAI ``PILReader`` for PNG, JPEG, BMP, TIFF and GIF, with fast JPEG draft decoding and writable arrays.

    Args:
        draft_size: if given (``int`` or ``(width, height)``), JPEG files are decoded at the smallest
            power-of-two reduction (1/2, 1/4, 1/8) that is still at least this size in both axes, through
            Pillow's ``Image.draft``. A 4096 px mammogram then decodes at 512 px in a fraction of the time.
            Files of other formats are read at full size. ``None`` (default) always decodes at full size.
        reverse_indexing: ``True`` (default, MONAI's): ``(W, H[, C])``, the columns first; ``False`` keeps the
            display order ``(H, W[, C])``.
        kwargs: passed to ``PIL.Image.open``.
    """

    def __init__(
        self, draft_size: int | Sequence[int] | None = None, reverse_indexing: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(reverse_indexing=reverse_indexing, **kwargs)
        if draft_size is not None:
            size = tuple(int(s) for s in ensure_tuple_rep(draft_size, 2))
            if min(size) < 1:
                raise ValueError(f"draft_size must be positive, got {draft_size!r}.")
            self.draft_size: tuple[int, int] | None = (size[0], size[1])
        else:
            self.draft_size = None

    def verify_suffix(self, filename: Sequence[str | Path] | str | Path) -> bool:
        return is_supported_format(filename, PICTURE_SUFFIXES)

    def read(self, data: Sequence[str | Path] | str | Path | np.ndarray, **kwargs: Any):
        img = super().read(data, **kwargs)
        if self.draft_size is not None:
            for i in img if isinstance(img, list) else [img]:
                if i.format == "JPEG":
                    i.draft(i.mode, self.draft_size)
        return img

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """MONAI's ``PILReader.get_data`` with a writable array: ``numpy.asarray`` of a Pillow image is read-only,
        and a tensor sharing that memory would be undefined to write (PyTorch warns); the copy is made only then."""
        data, meta = super().get_data(img)
        meta[_STORED_DTYPE] = data.dtype.name
        if data.dtype == np.int32 and meta.get("format") == "PNG":  # a 16-bit PNG that Pillow opened as "I"
            meta[_STORED_DTYPE] = "uint16"
        return np.require(data, requirements="W"), meta

    def _get_spatial_shape(self, img) -> np.ndarray:
        # MONAI reports (width, height) even when the axes are not reversed; report the array's own order
        return np.asarray((img.width, img.height) if self.reverse_indexing else (img.height, img.width))


class _NumpyReader(NumpyReader):
    """MONAI's ``NumpyReader`` that records the stored dtype (``LoadImage`` casts the data afterwards)."""

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        data, meta = super().get_data(img)
        meta[_STORED_DTYPE] = np.asarray(data).dtype.name
        return data, meta


class _NibabelReader(NibabelReader):
    """MONAI's ``NibabelReader`` that records the dtype of the data it returns (scaled by the header's
    ``scl_slope`` / ``scl_inter`` when set: then float)."""

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        data, meta = super().get_data(img)
        meta[_STORED_DTYPE] = np.asarray(data).dtype.name
        return data, meta


def _dicom_value(meta: Mapping, tag: str) -> Any:
    element = meta.get(tag)
    values = element.get("Value") if isinstance(element, Mapping) else None
    return values[0] if values else None


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    if dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:  # 8- and 16-bit: the range pictures fill
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return math.nan, math.nan


def stored_intensity(meta: Mapping, dtype: str | np.dtype | None = None) -> dict[str, Any]:
    """What a file (or array) stores, from its reader's meta dict: the record of ``meta["stored_intensity"]``.

    Returns ``{"dtype": str, "range": (lo, hi), "window": (center, width), "window_function": str,
    "monochrome1": bool}`` with

    - ``range``: the values the stored type can hold: ``(0, 255)`` for ``uint8``, ``(0, 65535)`` for ``uint16``,
      ``iinfo`` for ``int8`` / ``int16``, ``(0, 1)`` for booleans, ``(nan, nan)`` (no range: scaled by the values,
      as floats) for floating point and for 32- and 64-bit integers, whose range no image fills; for DICOM
      (a meta dict with Bits Stored (0028,0101)) ``[0, 2^b - 1]``, or ``[-2^(b-1), 2^(b-1) - 1]`` when Pixel
      Representation (0028,0103) is 1, mapped by Rescale Slope (0028,1053) / Intercept (0028,1052);
    - ``window``: a DICOM file's first Window Center / Width (0028,1050/1051), else ``(nan, nan)``, and its
      VOI LUT Function (0028,1056; ``""`` when absent);
    - ``monochrome1``: Photometric Interpretation (0028,0004) is ``MONOCHROME1``.

    Args:
        meta: the reader's meta dict (DICOM tags under their 8-hex-digit keys, as ``PydicomReader`` gives them).
        dtype: the stored dtype, for arrays and files whose reader does not record it.
    """
    name = str(np.dtype(dtype)) if dtype is not None else str(meta.get(_STORED_DTYPE, "float32"))
    lo, hi = _dtype_range(np.dtype(name))
    window = (math.nan, math.nan)
    function = ""
    bits = _dicom_value(meta, "00280101")
    if bits is not None:
        bits = int(bits)
        signed = int(_dicom_value(meta, "00280103") or 0) == 1
        lo, hi = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
        slope = float(_dicom_value(meta, "00281053") or 1.0)
        intercept = float(_dicom_value(meta, "00281052") or 0.0)
        lo, hi = sorted((slope * lo + intercept, slope * hi + intercept))
        name = f"{'int' if signed else 'uint'}{bits} (DICOM Bits Stored)"
        center, width = _dicom_value(meta, "00281050"), _dicom_value(meta, "00281051")
        if center is not None and width is not None:
            window = (float(center), float(width))
            function = str(_dicom_value(meta, "00281056") or "")
    photometric = str(_dicom_value(meta, "00280004") or "").strip().upper()
    return {
        "dtype": name,
        "range": (lo, hi),
        "window": window,
        "window_function": function,
        "monochrome1": photometric == "MONOCHROME1",
    }


def strip_dicom_tags(meta: dict) -> dict:
    """Remove the DICOM header entries (keys of 8 hex digits, MONAI's DICOM JSON keys) from a meta dict in place."""
    for key in [k for k in meta if isinstance(k, str) and _DICOM_TAG_KEY.match(k)]:
        del meta[key]
    return meta


def convert_channels(img: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert a channel-first image to ``channels`` channels.

    ``channels=1``: colour ``(3|4, ...)`` to grey by ``0.299 R + 0.587 G + 0.114 B`` (alpha dropped), grey and
    grey+alpha keep their first channel. ``channels=3``: grey (+alpha) repeated three times, RGBA drops alpha.
    ``None`` returns the input unchanged.

    Raises:
        ValueError: an unsupported ``channels`` value, or an input channel count other than 1-4.
    """
    if channels is None:
        return img
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}.")
    c = img.shape[0]
    if c not in (1, 2, 3, 4):
        raise ValueError(f"cannot convert an image with {c} channels (shape {tuple(img.shape)}) to {channels}.")
    if channels == 1:
        if c in (1, 2):
            return img[:1]
        w = torch.tensor(_LUMA_WEIGHTS, dtype=img.dtype, device=img.device).reshape(3, *([1] * (img.ndim - 1)))
        return (img[:3] * w).sum(dim=0, keepdim=True)
    if c in (1, 2):
        return img[:1].repeat(3, *([1] * (img.ndim - 1)))
    return img[:3]


class LoadImageOrArray(Transform):
    """Load an image file, or wrap an in-memory array, as a channel-first float ``MetaTensor``.

    Files are read by MONAI's :class:`~monai.transforms.LoadImage` with these readers, chosen by suffix:
    :class:`PictureReader` (PNG, JPEG, BMP, TIFF, GIF; Pillow), ``NibabelReader`` (NIfTI), ``NumpyReader``
    (``.npy``/``.npz``) and ``PydicomReader`` (everything else: DICOM with or without a ``.dcm`` suffix;
    rescale slope/intercept applied by MONAI).

    Arrays (``numpy.ndarray`` or ``torch.Tensor``) are taken as ``(H, W)``, ``(H, W, C)`` with ``C`` in 1-4
    (the MedMNIST layout) or ``(D, H, W)``; see ``array_channel_dim``.

    Args:
        dtype: output dtype (default ``float32``); values keep their stored range (e.g. 0-255 for 8-bit).
        channels: ``1``, ``3`` or ``None`` (keep); see :func:`convert_channels`.
        draft_size: decode JPEG files at a reduced size of at least this many pixels (see
            :class:`PictureReader`); use it when the pipeline resizes to a much smaller size anyway.
        dicom_tags: keep the full DICOM header in ``img.meta`` (for windowing / MONOCHROME1 handling).
        array_channel_dim: for arrays: ``"auto"`` (a 3-D array whose last axis has 1-4 entries is
            ``(H, W, C)``, any other 3-D array ``(D, H, W)``), ``-1`` or ``0`` (that axis holds channels), or
            ``None`` (no channel axis).
        reverse_indexing: ``True`` (default): MONAI's orientation, ``(C, W, H)`` for pictures, DICOM and 2-D
            arrays (module docstring); ``False``: the display order ``(C, H, W)`` of versions 0.1.x.

    Raises:
        FileNotFoundError: a path that does not exist (names the file).
        ValueError: a file that its reader cannot read, e.g. an unreadable DICOM (names the file and the reason).
        TypeError: an input that is neither a path nor an array.
    """

    def __init__(
        self,
        dtype: torch.dtype | np.dtype | type | None = np.float32,
        channels: int | None = None,
        draft_size: int | Sequence[int] | None = None,
        dicom_tags: bool = False,
        array_channel_dim: int | str | None = "auto",
        reverse_indexing: bool = True,
    ) -> None:
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r}.")
        if array_channel_dim not in ("auto", -1, 0, None):
            raise ValueError(f"array_channel_dim must be 'auto', -1, 0 or None, got {array_channel_dim!r}.")
        self.dtype = dtype
        self.channels = channels
        self.dicom_tags = dicom_tags
        self.array_channel_dim = array_channel_dim
        self.reverse_indexing = bool(reverse_indexing)
        # readers are tried from last to first; the DICOM reader accepts any suffix, so it comes first (tried last)
        readers = [
            PydicomReader(swap_ij=self.reverse_indexing, prune_metadata=False),
            _NumpyReader(),
            _NibabelReader(),
            PictureReader(draft_size=draft_size, reverse_indexing=self.reverse_indexing),
        ]
        self.loader = LoadImage(reader=readers, image_only=True, dtype=dtype, ensure_channel_first=True)
        # choose among exactly these readers by file suffix (MONAI's mode for reader=None), instead of trying
        # each reader in turn and hiding the real error of an unreadable file behind the others' failures
        self.loader.auto_select = True

    def __call__(self, data: str | Path | np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(data, (np.ndarray, torch.Tensor)):
            img = self._from_array(data)
        elif isinstance(data, (str, Path)):
            img = self._from_file(Path(data))
        else:
            raise TypeError(f"expected an image path or an array, got {type(data).__name__}.")
        if self.channels is not None:
            converted = convert_channels(img.as_tensor() if isinstance(img, MetaTensor) else img, self.channels)
            img = MetaTensor(converted, meta=img.meta) if isinstance(img, MetaTensor) else converted
        return img

    def _from_file(self, path: Path) -> torch.Tensor:
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            with warnings.catch_warnings():
                # 2-D projection images (mammograms, radiographs) rarely carry patient orientation tags
                warnings.filterwarnings("ignore", message="PydicomReader: ImageOrientationPatient")
                img = self.loader(path)
        except Exception as e:
            raise ValueError(f"cannot read image file {path}: {type(e).__name__}: {e}") from e
        if isinstance(img, MetaTensor):
            img.meta[STORED_INTENSITY] = stored_intensity(img.meta)
            img.meta.pop(_STORED_DTYPE, None)
            if not self.dicom_tags:
                strip_dicom_tags(img.meta)
        return img

    def _from_array(self, array: np.ndarray | torch.Tensor) -> MetaTensor:
        arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected an image array of 2 or 3 dimensions, got shape {arr.shape}.")
        channel_dim = self.array_channel_dim
        if channel_dim == "auto":
            channel_dim = -1 if arr.ndim == 3 and arr.shape[-1] <= 4 else None
        if channel_dim is None:
            arr = arr[None]
        elif channel_dim == -1:
            if arr.ndim != 3:
                raise ValueError(f"array_channel_dim=-1 needs an (H, W, C) array, got shape {arr.shape}.")
            arr = np.moveaxis(arr, -1, 0)
        elif arr.ndim != 3:
            raise ValueError(f"array_channel_dim=0 needs a (C, H, W) array, got shape {arr.shape}.")
        if self.reverse_indexing and arr.ndim == 3:  # a 2-D picture (C, H, W): MONAI's (C, W, H), as from its file
            arr = arr.swapaxes(1, 2)
        tensor = torch.from_numpy(np.array(arr, order="C", copy=True))  # own memory: datalist arrays stay intact
        if self.dtype is not None:
            tensor = tensor.to(_torch_dtype(self.dtype))
        meta = {
            "spatial_shape": np.asarray(arr.shape[1:]),
            "original_channel_dim": 0,
            "filename_or_obj": "",
            STORED_INTENSITY: stored_intensity({}, dtype=arr.dtype),
        }
        return MetaTensor(tensor, meta=meta)


def _torch_dtype(dtype: torch.dtype | np.dtype | type) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class LoadImageOrArrayd(MapTransform):
    """Dictionary version of :class:`LoadImageOrArray`: ``data[key]`` is a path or an array.

    Args:
        keys: keys of the items to load (usually ``"image"``).
        allow_missing_keys: skip keys that are absent.
        other args: see :class:`LoadImageOrArray`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        dtype: torch.dtype | np.dtype | type | None = np.float32,
        channels: int | None = None,
        draft_size: int | Sequence[int] | None = None,
        dicom_tags: bool = False,
        array_channel_dim: int | str | None = "auto",
        reverse_indexing: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadImageOrArray(
            dtype=dtype,
            channels=channels,
            draft_size=draft_size,
            dicom_tags=dicom_tags,
            array_channel_dim=array_channel_dim,
            reverse_indexing=reverse_indexing,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
