"""Check datalists before training: every file readable, every label known, every needed split non-empty.

A problem found in the middle of a run costs the run: a corrupt validation image surfaced only after a
full training epoch, a validation split left empty by a 70/10/20 split of five images made MONAI skip
validation and the run exit 0 without a model. :func:`check_datalists` looks at all of it first and
reports every problem at once, in one :class:`DataCheckError`::

    datalists = load_datalists("isic2018_task3", "ISIC2018", class_names=ISIC_TASK3_CLASSES)
    check_datalists(datalists, class_names=datalists.class_names)   # raises before any training

What is checked, per split and item:

- the split is present and non-empty for every name in ``required_splits`` (the message gives the
  split sizes and how to change them);
- every key of ``keys`` is present;
- a path (or a list of paths, e.g. the instance masks of one nucleus image) names a readable file,
  read at header level only: Pillow ``Image.open`` + ``verify()`` for PNG, JPEG, BMP, GIF and TIFF (no
  pixel decoding), ``pydicom.dcmread(stop_before_pixels=True)`` for DICOM (any other suffix); a file cut off
  in its pixel data (PNG checksums, JPEG end marker, TIFF strip ends, DICOM pixel data length) is found
  without decoding it (:func:`check_image_file`);
  ``nibabel.load`` (header and lazy data proxy) for NIfTI, ``numpy.load(mmap_mode="r")`` / the
  archive's member list for ``.npy`` / ``.npz``;
- an array is at least 2-D and, when it holds floats, finite (no NaN or infinite value);
- with ``class_names`` (classification): an integer label lies in ``[0, len(class_names))``, a text label
  is one of ``class_names``, and a NaN, infinite, negative or non-integral number (``1.7``) is refused, not
  truncated; without (segmentation): a ``label`` path is a mask file, checked like an image.

The data loaders report the same way: :func:`raise_problems` raises every problem of a CSV, a ground-truth
file, an npz (:func:`label_value_problem` for its labels, :func:`non_finite_items` for NaN/inf pixels of its
arrays) or a folder layout at once, so an unknown label cannot hide a missing image. NaN/inf pixels of image
files are found when they are scaled (:class:`monai_imbalance.transforms.ScaleIntensityByType`, naming the file),
before the first training step when the images are cached; a NaN loss stops training at once
(:class:`monai_imbalance.handlers.StopOnNonFiniteLoss`).

``check_files=False`` skips the file reads (very large data sets; the paths are then not even
stat-ed), keeping the cheap label and split checks.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_imbalance.errors import DataError, DataNotFoundError, closest_names

__all__ = [
    "DataCheckError",
    "DataFilesNotFoundError",
    "check_datalists",
    "check_image_file",
    "label_value_problem",
    "non_finite_items",
    "raise_problems",
]

_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NUMPY_SUFFIXES = (".npy", ".npz")

#: The default hint for an empty split: the switches of :func:`monai_imbalance.data.load_datalists` and of the
#: bundles that change the split sizes.
SPLIT_HINT = (
    "use more data, a larger --max_items_per_split (or null for all items), or other split fractions "
    "(--split_fractions in the segmentation bundles, split_fractions= of load_datalists)"
)


class DataCheckError(DataError):
    """The data do not match what training needs; the message lists the first problems and their count.

    Attributes:
        problems: every problem found, one sentence each (file, split, item and value named).
    """

    def __init__(self, problems: Sequence[str], max_shown: int = 10) -> None:
        self.problems = list(problems)
        shown = self.problems[:max_shown]
        more = len(self.problems) - len(shown)
        lines = [f"the data check found {len(self.problems)} problem(s):", *(f"  - {p}" for p in shown)]
        if more:
            lines.append(f"  ... and {more} more (DataCheckError.problems holds them all)")
        super().__init__("\n".join(lines))


class DataFilesNotFoundError(DataCheckError, DataNotFoundError):
    """Every problem found is a file that does not exist (also a ``FileNotFoundError``, for callers that catch it)."""


def raise_problems(problems: Sequence[str], *, missing_files: int = 0, max_shown: int = 10) -> None:
    """Raise every problem of a data source at once, or nothing when ``problems`` is empty.

    The data loaders gather their problems (rows of a CSV, items of an npz) instead of stopping at the first, so
    that an unknown label cannot hide a missing image. ``missing_files``: how many of ``problems`` are files that
    do not exist; when that is all of them the error is a :class:`DataFilesNotFoundError`.

    Raises:
        DataCheckError: the first ``max_shown`` problems in the message, their count, all in ``.problems``.
    """
    if not problems:
        return
    error = DataFilesNotFoundError if missing_files == len(problems) else DataCheckError
    raise error(problems, max_shown=max_shown)


def label_value_problem(value: Any) -> str | None:
    """Why a numeric label value cannot be a class index (NaN, infinite, not whole, negative), else ``None``.

    ``1.7`` is *not* read as class 1 (``int()`` would truncate it without a word).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    if math.isnan(number):
        return "is missing (NaN)"
    if math.isinf(number):
        return "is infinite"
    if not number.is_integer():
        return "is not a whole number (a class index is 0, 1, 2, ...)"
    if number < 0:
        return "is negative (a class index is 0, 1, 2, ...)"
    return None


def non_finite_items(images: np.ndarray) -> list[int]:
    """Indices ``i`` of an ``(N, ...)`` array whose ``images[i]`` holds a NaN or infinite value (none for integers).

    Reads floating-point arrays in chunks of at most about 64 MB, so a large array is not copied whole.
    """
    images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.inexact) or images.size == 0:
        return []
    per_item = max(1, images[0].size * images.itemsize)
    chunk = max(1, (64 << 20) // per_item)
    bad: list[int] = []
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(min(chunk, len(images) - start), -1)
        bad.extend(start + int(i) for i in np.flatnonzero(~np.isfinite(block).all(axis=1)))
    return bad


def check_image_file(path: str | os.PathLike) -> str | None:
    """Read the header of one image file; ``None`` when readable, else what is wrong (one sentence).

    Besides the header, a cut-off file is found without decoding it: a PNG through its chunk checksums
    (Pillow's ``verify``), a JPEG by its end-of-image marker (only a file without one is decoded, to confirm), a
    TIFF by its strips' offsets and sizes against the file size, a DICOM by the length of its pixel data
    (native transfer syntaxes: rows x columns x samples x frames x bits allocated; compressed ones: the closing
    sequence delimiter) against the bytes left in the file.
    """
    path = Path(path)
    if not path.is_file():
        return f"file not found: {path}"
    if path.stat().st_size == 0:
        return f"empty file (0 bytes): {path}"
    name = path.name.lower()
    try:
        if name.endswith(_PICTURE_SUFFIXES):
            return _picture_problem(path)
        if name.endswith(_NIFTI_SUFFIXES):
            import nibabel

            nibabel.load(path)
        elif name.endswith(".npy"):
            np.load(path, mmap_mode="r", allow_pickle=False)
        elif name.endswith(".npz"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                if bad is not None:
                    return f"corrupt member {bad!r} in {path}"
        else:  # DICOM, with or without a suffix (the reader of LoadImageOrArray for any other file)
            return _dicom_problem(path)
    except Exception as e:
        return f"unreadable file {path}: {type(e).__name__}: {e}"
    return None


def _picture_problem(path: Path) -> str | None:
    from PIL import Image

    with Image.open(path) as img:
        image_format = img.format
        if image_format == "TIFF":
            ends = [int(o) + int(n) for o, n in zip(*_tiff_strips(img), strict=False)]
            if ends and max(ends) > path.stat().st_size:
                return (
                    f"truncated TIFF file {path}: its pixel data end at byte {max(ends)} but the file has "
                    f"{path.stat().st_size} bytes"
                )
        img.verify()  # structure and checksums (a cut-off PNG fails here), without decoding the pixels
    if image_format == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64))
            tail = f.read().rstrip(b"\x00")
        if not tail.endswith(b"\xff\xd9"):  # no end-of-image marker: decode to tell a cut-off file from trailing data
            with Image.open(path) as img:
                try:
                    img.load()
                except OSError as e:
                    return f"truncated JPEG file {path}: {e}"
    return None


def _tiff_strips(img: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (offsets, byte counts) of a TIFF's strips or tiles (tags 273/279 or 324/325)."""
    tags = img.tag_v2
    for offsets, counts in ((273, 279), (324, 325)):
        if offsets in tags and counts in tags:
            return tuple(tags[offsets]), tuple(tags[counts])
    return (), ()


#: The DICOM Sequence Delimitation Item that closes encapsulated (compressed) pixel data, little endian.
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _dicom_problem(path: Path) -> str | None:
    import pydicom

    with open(path, "rb") as f, warnings.catch_warnings():  # a damaged file warns before it fails; reported
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        pixels_at = f.tell()  # the reader stops at the pixel data element
    if "Rows" not in ds or "Columns" not in ds:
        return f"DICOM file without an image (no Rows/Columns): {path}"
    size = path.stat().st_size
    if size <= pixels_at:
        return f"DICOM file without pixel data (the file ends after its header): {path}"
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        with open(path, "rb") as f:
            f.seek(max(0, size - 64))
            tail = f.read()
        if _SEQUENCE_DELIMITER not in tail:
            return f"truncated DICOM file {path}: its compressed pixel data are not closed (the file is cut off)"
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    expected = (int(ds.Rows) * int(ds.Columns) * samples * frames * bits + 7) // 8
    element_header = 8 if syntax is not None and syntax.is_implicit_VR else 12
    present = size - pixels_at - element_header
    if present < expected:
        return (
            f"truncated DICOM file {path}: {max(present, 0)} of the {expected} bytes of pixel data its header "
            f"declares ({ds.Rows} x {ds.Columns} x {samples} samples x {frames} frame(s) x {bits} bits)"
        )
    return None


def _is_integral(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def _check_label(value: Any, class_names: list[str] | None, where: str) -> str | None:
    if class_names is None:
        return None
    k = len(class_names)
    why = label_value_problem(value)
    if why is not None:
        return f"{where}: label {value!r} {why}; the {k} classes {class_names} take the labels 0..{k - 1}"
    if _is_integral(value):
        if 0 <= int(value) < k:
            return None
        return f"{where}: unknown label value {value!r}; the {k} classes {class_names} take the labels 0..{k - 1}"
    if isinstance(value, str):
        if value in class_names:
            return None
        hint = closest_names(value, class_names)
        return f"{where}: unknown label value {value!r}; known class names: {class_names}{hint}"
    return f"{where}: label {value!r} ({type(value).__name__}) is neither a class index nor a class name"


def check_datalists(
    datalists: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    keys: Sequence[str] = ("image", "label"),
    class_names: Sequence[str] | None = None,
    required_splits: Sequence[str] = ("train", "val"),
    check_files: bool = True,
    split_hint: str = SPLIT_HINT,
    max_shown: int = 10,
) -> dict[str, int]:
    """Check every item of ``datalists`` before training and report all problems together (module docstring).

    Args:
        datalists: ``{split: items}``, e.g. from :func:`monai_imbalance.data.load_datalists` or
            :func:`monai_imbalance.data.load_segmentation_datalists`.
        keys: item keys to check: paths (or lists of paths) are read at header level, arrays must be 2-D or
            more, ``"label"`` values that are class indices or names are checked against ``class_names``.
            Segmentation: ``("image", "label")`` (the masks are files), DRIVE ``("image", "label", "mask")``.
        class_names: the known classes (index = label): ``label`` values are class indices or names checked
            against them; ``None``: ``label`` paths are mask files (segmentation), read like images.
        required_splits: splits the run needs, each present and non-empty (``("train", "val")`` for training;
            ``("test",)`` for an evaluation).
        check_files: read every file's header; ``False`` skips the file reads (very large data sets).
        split_hint: what to change when a split is empty (a bundle passes its own override names).
        max_shown: problems listed in the exception message (all are in ``DataCheckError.problems``).

    Returns:
        ``{split: number of items}`` when everything passed.

    Raises:
        DataCheckError: (a ``ValueError``) every problem found, the first ``max_shown`` in its message.
    """
    names = [str(c) for c in class_names] if class_names is not None else None
    sizes = {str(split): len(items) for split, items in datalists.items()}
    problems: list[str] = []
    for split in required_splits:
        if sizes.get(split, 0) == 0:
            state = "missing" if split not in sizes else "empty"
            shown = ", ".join(f"{s} {n}" for s, n in sizes.items()) or "none"
            problems.append(f"the {split!r} split is {state} (items per split: {shown}); {split_hint}")
    checked: dict[str, str | None] = {}  # a file shared by several items is read once
    for split, items in datalists.items():
        for index, item in enumerate(items):
            where = f"split {split!r}, item {index}"
            if isinstance(item, Mapping) and item.get("id") not in (None, ""):
                where = f"{where} (id {item['id']!r})"
            if not isinstance(item, Mapping):
                problems.append(f"{where}: expected a dict, got {type(item).__name__}")
                continue
            for key in keys:
                if key not in item:
                    problems.append(f"{where}: missing key {key!r}")
                    continue
                value = item[key]
                sources = value if isinstance(value, (list, tuple)) else [value]
                if isinstance(value, (list, tuple)) and not value:
                    problems.append(f"{where}: {key!r} is an empty list")
                for source in sources:
                    if key == "label" and names is not None and not hasattr(source, "shape"):
                        problem = _check_label(source, names, where)  # a class index or name
                        if problem is not None:
                            problems.append(problem)
                    elif isinstance(source, (str, os.PathLike)):
                        if check_files:
                            text = str(source)
                            if text not in checked:
                                checked[text] = check_image_file(text)
                            if checked[text] is not None:
                                problems.append(f"{where}, {key!r}: {checked[text]}")
                    elif isinstance(source, np.ndarray) or hasattr(source, "shape"):
                        if len(source.shape) < 2:
                            problems.append(f"{where}, {key!r}: array of shape {tuple(source.shape)} is not an image")
                        elif isinstance(source, np.ndarray) and non_finite_items(source[None]):
                            bad = int((~np.isfinite(source)).sum())
                            problems.append(f"{where}, {key!r}: {bad} NaN or infinite value(s) of {source.size}")
                    elif key == "label" and _is_integral(source):
                        pass  # a class index, with no class names to check it against
                    else:
                        problems.append(f"{where}, {key!r}: expected a path or an array, got {type(source).__name__}")
    if problems:
        raise DataCheckError(problems, max_shown=max_shown)
    return sizes
