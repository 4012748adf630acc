"""Segmentation datalists: ISIC 2018 task 1, Data Science Bowl 2018 (folders or npz) and DRIVE.

Each builder returns MONAI's list of dicts, one per image, validated up front (every file exists,
every image has its ground truth, masks have their image's size)::

    ISIC 2018 task 1  {"image": ".../ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg",
                       "label": ".../ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png",
                       "id": "ISIC_0000000"}
    DSB 2018 folders  {"image": ".../stage1_train/<id>/images/<id>.png",
                       "label": [".../stage1_train/<id>/masks/<m1>.png", ...],   # one file per nucleus
                       "id": "<id>"}
    DSB 2018 npz      {"image": uint8 array (H, W), "label": uint8 array (H, W), "id": "<id>"}
    DRIVE             {"image": ".../training/images/21_training.tif",
                       "label": ".../training/1st_manual/21_manual1.gif",          # vessels
                       "mask": ".../training/mask/21_training_mask.gif",           # field of view
                       "id": "21_training"}

Load them with :class:`monai_imbalance.transforms.LoadImageOrArrayd` (``image``) and
:class:`monai_imbalance.transforms.LoadBinaryMaskd` (``label``, ``mask``): the latter takes one
path, a list of paths (the union of the DSB instance masks) or an array, and both give
channel-first tensors in MONAI's orientation (``(C, W, H)``, as ``LoadImaged`` + ``EnsureChannelFirstd``),
so file and npz sources agree pixel for pixel. DRIVE images are TIFF and its masks GIF: both read
through Pillow by those transforms.

Splits: DRIVE has ``training`` and ``test`` folders, ISIC ``*_Training_*``, ``*_Validation_*`` and
``*_Test_*`` folders, DSB 2018 only ``stage1_train`` with masks. The ALL paper splits the training
data 80:20; :func:`split_segmentation_datalist` does that, seeded and independent of the item
order, and :func:`load_segmentation_datalists` reads one source split and splits it in one call.

Size checks read only the image headers (Pillow opens files lazily), so they stay cheap; pass
``check_sizes=False`` to skip them for very large trees.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from monai_imbalance.errors import data_errors_for_users

from .check import non_finite_items, raise_problems
from .datalist import resolve_dataset_dir
from .splits import split_by_group

__all__ = [
    "DEFAULT_SEGMENTATION_FRACTIONS",
    "SEGMENTATION_FORMATS",
    "drive_datalist",
    "dsb2018_datalist",
    "dsb2018_npz_datalist",
    "isic2018_task1_datalist",
    "load_segmentation_datalists",
    "split_segmentation_datalist",
]

#: Data formats of :func:`load_segmentation_datalists`.
SEGMENTATION_FORMATS: tuple[str, ...] = ("isic2018_task1", "dsb2018", "drive")

#: The ALL paper's 80:20 split of data without an official split.
DEFAULT_SEGMENTATION_FRACTIONS: dict[str, float] = {"train": 0.8, "test": 0.2}

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif")
_MASK_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".bmp")
_ISIC_SPLIT_WORDS = {"training": "Training", "validation": "Validation", "test": "Test"}
_DRIVE_SPLITS = ("training", "test")
_DRIVE_MANUALS = {"1st_manual": "manual1", "2nd_manual": "manual2"}


# ----------------------------------------------------------------------------------------------- helpers
def _picture_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a picture from its header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception as e:
        raise ValueError(f"cannot read image file {path}: {type(e).__name__}: {e}") from e


def _check_same_size(image: Path, masks: list[Path], what: str = "mask") -> None:
    """Raise a ``ValueError`` naming the first mask whose size differs from its image's."""
    size = _picture_size(image)
    for mask in masks:
        mask_size = _picture_size(mask)
        if mask_size != size:
            raise ValueError(
                f"{what} {mask} is {mask_size[0]}x{mask_size[1]} pixels (width x height) but its image {image} "
                f"is {size[0]}x{size[1]}: every {what} must have its image's size."
            )


class _Problems:
    """The problems of one folder layout, gathered so that all of them are reported together."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.missing_files = 0

    def missing(self, problem: str) -> None:
        self.problems.append(problem)
        self.missing_files += 1

    def other(self, problem: str) -> None:
        self.problems.append(problem)

    def sizes_differ(self, image: Path, masks: list[Path], what: str = "mask") -> bool:
        try:
            _check_same_size(image, masks, what=what)
        except ValueError as e:
            self.problems.append(str(e))
            return True
        return False

    def raise_all(self) -> None:
        raise_problems(self.problems, missing_files=self.missing_files)


def _existing_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _find_with_suffix(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    """``folder/stem.<suffix>`` for the first suffix (any case) that exists, else ``None``."""
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


# ----------------------------------------------------------------------------------------------- ISIC 2018
def _isic_folder(root: Path, split: str, kind: str, explicit: str | os.PathLike | None) -> Path:
    """The ``*_<Split>_Input`` (``kind="Input"``) or ``*_<Split>_GroundTruth*`` folder of ``root``."""
    if explicit is not None:
        path = Path(explicit)
        return _existing_dir(path if path.is_absolute() else root / path, f"ISIC {kind} folder")
    word = _ISIC_SPLIT_WORDS[split]
    pattern = re.compile(rf"_{word}_{kind}", re.IGNORECASE)
    candidates = sorted(p for p in root.iterdir() if p.is_dir() and pattern.search(p.name))
    if kind == "GroundTruth":  # task 2 ground truth (attribute masks) lives in similar folders
        candidates = [p for p in candidates if any(p.glob("*_segmentation.png"))]
    if len(candidates) > 1:
        task1 = [p for p in candidates if "task1" in p.name.lower()]
        candidates = task1 if task1 else candidates
    if not candidates:
        raise FileNotFoundError(
            f"no ISIC 2018 task 1 {word} {kind} folder in {root}: expected e.g. ISIC2018_Task1-2_{word}_Input/ "
            f"with ISIC_*.jpg and ISIC2018_Task1_{word}_GroundTruth/ with ISIC_*_segmentation.png "
            f"(or pass image_dir= / label_dir=)."
        )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ValueError(f"several ISIC {word} {kind} folders in {root} ({names}): pass image_dir= / label_dir=.")
    return candidates[0]


def isic2018_task1_datalist(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "training",
    image_dir: str | os.PathLike | None = None,
    label_dir: str | os.PathLike | None = None,
    check_sizes: bool = True,
) -> list[dict[str, Any]]:
    """ISIC 2018 task 1 (lesion boundary segmentation): images ``ISIC_*.jpg`` with ``ISIC_*_segmentation.png``.

    Folders are found by name under ``dataset_dir``: the images in the one folder matching
    ``*_<Split>_Input`` (``ISIC2018_Task1-2_Training_Input``; a name with ``Task1`` wins over others, e.g. a
    task 3 input folder beside it), the masks in the ``*_<Split>_GroundTruth*`` folder that holds
    ``*_segmentation.png`` files (``ISIC2018_Task1_Training_GroundTruth``). ``<Split>`` is ``Training``,
    ``Validation`` or ``Test``.

    Args:
        dataset_dir: folder holding the ISIC folders; ``None`` reads the ``DATA_DIR`` environment variable.
        split: ``"training"``, ``"validation"`` or ``"test"``.
        image_dir: the image folder (absolute, or relative to ``dataset_dir``) instead of the name search.
        label_dir: the mask folder, likewise.
        check_sizes: check that every mask has its image's size (reads image headers only).

    Returns:
        items ``{"image", "label", "id"}`` sorted by id (``id`` = the image stem, e.g. ``ISIC_0000000``).

    Raises:
        FileNotFoundError: a missing folder, or an image without its mask (names both files).
        ValueError: no images, several candidate folders, or a mask whose size differs (names the files).
        The problems of the images (missing masks, sizes) are all reported together, as a ``DataCheckError``
        (a ``ValueError``; a ``DataFilesNotFoundError``, also a ``FileNotFoundError``, when all are missing files).
    """
    if split not in _ISIC_SPLIT_WORDS:
        raise ValueError(f"split must be one of {sorted(_ISIC_SPLIT_WORDS)}, got {split!r}.")
    root = _existing_dir(resolve_dataset_dir(dataset_dir, "ISIC 2018 task 1 data"), "dataset directory")
    images_folder = _isic_folder(root, split, "Input", image_dir)
    labels_folder = _isic_folder(root, split, "GroundTruth", label_dir)
    images = [p for p in _files(images_folder, _IMAGE_SUFFIXES) if p.name.startswith("ISIC_")]
    if not images:
        raise ValueError(f"no ISIC_*.jpg images in {images_folder}.")
    items = []
    problems = _Problems()
    for image in images:
        label = _find_with_suffix(labels_folder, f"{image.stem}_segmentation", (".png",))
        if label is None:
            problems.missing(
                f"no ground-truth mask for image {image}: expected {labels_folder / (image.stem + '_segmentation.png')}"
            )
            continue
        if check_sizes and problems.sizes_differ(image, [label]):
            continue
        items.append({"image": str(image), "label": str(label), "id": image.stem})
    problems.raise_all()
    stems = {p.stem for p in images}
    orphans = [p.name for p in labels_folder.glob("*_segmentation.png") if p.stem[: -len("_segmentation")] not in stems]
    if orphans:
        warnings.warn(
            f"{len(orphans)} mask(s) in {labels_folder} have no image in {images_folder} and are left out, "
            f"e.g. {sorted(orphans)[0]}",
            stacklevel=2,
        )
    return items


# ----------------------------------------------------------------------------------------------- DSB 2018
def _dsb2018_stage_folder(root: Path, stage: str) -> Path:
    if (root / stage).is_dir():
        return root / stage
    if any((p / "images").is_dir() for p in root.iterdir() if p.is_dir()):
        return root  # dataset_dir is the stage folder itself
    raise FileNotFoundError(
        f"no Data Science Bowl 2018 folder {root / stage}: expected {stage}/<id>/images/<id>.png with "
        f"{stage}/<id>/masks/*.png (or a .npz file with images, masks and ids)."
    )


def dsb2018_datalist(
    dataset_dir: str | os.PathLike | None = None,
    stage: str = "stage1_train",
    check_sizes: bool = True,
) -> list[dict[str, Any]]:
    """Data Science Bowl 2018 nuclei in the Kaggle layout: ``<stage>/<id>/images/<id>.png`` + ``masks/*.png``.

    Every image has several binary masks, one per nucleus; the ground truth is their union, which
    :class:`monai_imbalance.transforms.LoadBinaryMaskd` computes from the ``label`` list.

    Args:
        dataset_dir: the folder holding ``<stage>/`` (or the stage folder itself); ``None`` reads ``DATA_DIR``.
        stage: ``"stage1_train"`` (the only stage whose masks come as files).
        check_sizes: check that every mask has its image's size (reads the headers of all mask files).

    Returns:
        items ``{"image": path, "label": [mask paths, sorted], "id": "<id>"}`` sorted by id.

    Raises:
        FileNotFoundError: a missing folder, image or mask folder, or an image without masks (names the path).
        ValueError: no images, or a mask whose size differs from its image (names both files).
        The problems of the images (missing masks, sizes) are all reported together, as a ``DataCheckError``
        (a ``ValueError``; a ``DataFilesNotFoundError``, also a ``FileNotFoundError``, when all are missing files).
    """
    root = _existing_dir(resolve_dataset_dir(dataset_dir, "Data Science Bowl 2018 data"), "dataset directory")
    stage_folder = _dsb2018_stage_folder(root, stage)
    sample_dirs = sorted(p for p in stage_folder.iterdir() if p.is_dir())
    if not sample_dirs:
        raise ValueError(f"no samples in {stage_folder}: expected <id>/images/<id>.png and <id>/masks/*.png.")
    items = []
    problems = _Problems()
    for sample in sample_dirs:
        image = _find_with_suffix(sample / "images", sample.name, (".png",))
        if image is None:
            problems.missing(f"no image for sample {sample.name}: expected {sample / 'images' / sample.name}.png")
            continue
        masks_folder = sample / "masks"
        masks = _files(masks_folder, (".png",)) if masks_folder.is_dir() else []
        if not masks:
            problems.missing(f"no mask for image {image}: expected one or more {masks_folder}/*.png")
            continue
        if check_sizes and problems.sizes_differ(image, masks):
            continue
        items.append({"image": str(image), "label": [str(m) for m in masks], "id": sample.name})
    problems.raise_all()
    return items


def dsb2018_npz_datalist(npz_path: str | os.PathLike) -> list[dict[str, Any]]:
    """Data Science Bowl 2018 from an ``npz`` with ``images`` (N, H, W[, C]), ``masks`` (N, H, W) and ``ids`` (N,).

    The masks are the binary unions (0 background, non-zero foreground). Items hold the arrays
    themselves, in the rows-first layout ``numpy.asarray(PIL.Image.open(f))`` gives; the loading
    transforms turn them into exactly the tensors of the files of the Kaggle layout. Without ``ids`` the ids are
    ``<file stem>_<index>``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: missing keys, mismatched lengths or sizes, duplicate ids, or no images (names the file).
        DataCheckError: (a ``ValueError``) every image or mask holding NaN or infinite values (index and id).
    """
    path = Path(npz_path)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("images", "masks") if k not in data.files]
        if missing:
            raise ValueError(f"{path} lacks the array(s) {missing}; it has {data.files} (need images, masks[, ids]).")
        images, masks = data["images"], data["masks"]
        ids = (
            [str(i) for i in data["ids"]]
            if "ids" in data.files
            else [f"{path.stem}_{i:04d}" for i in range(len(images))]
        )
    if len(images) == 0:
        raise ValueError(f"{path} holds no images.")
    if not (len(images) == len(masks) == len(ids)):
        raise ValueError(f"{path}: {len(images)} images, {len(masks)} masks and {len(ids)} ids; the counts must agree.")
    if masks.ndim != 3 or images.ndim not in (3, 4) or images.shape[1:3] != masks.shape[1:3]:
        raise ValueError(
            f"{path}: images {images.shape} and masks {masks.shape} must be (N, H, W[, C]) and (N, H, W) of one size."
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: the ids are not unique.")
    raise_problems(
        [
            f"{path}: {key}[{i}] (id {ids[i]!r}) holds NaN or infinite values"
            for key, array in (("images", images), ("masks", masks))
            for i in non_finite_items(array)
        ]
    )
    return [{"image": images[i], "label": masks[i], "id": ids[i]} for i in range(len(images))]


# ----------------------------------------------------------------------------------------------- DRIVE
def drive_datalist(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "training",
    manual: str = "1st_manual",
    require_labels: bool = True,
    check_sizes: bool = True,
) -> list[dict[str, Any]]:
    """DRIVE retinal vessels: ``<split>/images/*.tif``, ``<split>/1st_manual/*.gif``, ``<split>/mask/*.gif``.

    The real file names pair by the number ``NN``: ``21_training.tif`` <-> ``21_manual1.gif`` <->
    ``21_training_mask.gif``, and ``01_test.tif`` <-> ``01_manual1.gif`` <-> ``01_test_mask.gif``.
    ``mask`` is the field of view (the retina), where training patches are drawn and metrics computed.

    Args:
        dataset_dir: the ``DRIVE`` folder (holding ``training/``, ``test/``) or its parent; ``None`` reads ``DATA_DIR``.
        split: ``"training"`` or ``"test"``.
        manual: ``"1st_manual"`` (the reference) or ``"2nd_manual"`` (second observer, test set only).
        require_labels: an image without a vessel annotation is an error; with ``False`` its item has no
            ``"label"`` (some DRIVE downloads ship the test set without annotations).
        check_sizes: check that annotation and field of view have the image's size.

    Returns:
        items ``{"image", "label", "mask", "id"}`` sorted by id (``id`` = the image stem, e.g. ``21_training``).

    Raises:
        FileNotFoundError: a missing folder, or an image without its field-of-view mask or annotation (names the
            image and the expected file).
        ValueError: no images, or a mask whose size differs from its image (names the files).
        The problems of the images (missing masks, sizes) are all reported together, as a ``DataCheckError``
        (a ``ValueError``; a ``DataFilesNotFoundError``, also a ``FileNotFoundError``, when all are missing files).
    """
    if split not in _DRIVE_SPLITS:
        raise ValueError(f"split must be one of {_DRIVE_SPLITS}, got {split!r}.")
    if manual not in _DRIVE_MANUALS:
        raise ValueError(f"manual must be one of {sorted(_DRIVE_MANUALS)}, got {manual!r}.")
    root = _existing_dir(resolve_dataset_dir(dataset_dir, "DRIVE data"), "dataset directory")
    if not any((root / s).is_dir() for s in _DRIVE_SPLITS) and (root / "DRIVE").is_dir():
        root = root / "DRIVE"
    split_folder = _existing_dir(root / split, f"DRIVE {split} folder")
    images_folder = _existing_dir(split_folder / "images", f"DRIVE {split} image folder")
    images = _files(images_folder, _IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images in {images_folder}: expected files such as 21_training.tif / 01_test.tif.")
    manual_folder, fov_folder = split_folder / manual, split_folder / "mask"
    items = []
    problems = _Problems()
    for image in images:
        number = re.match(r"^(\d+)", image.stem)
        if number is None:
            problems.other(f"cannot pair DRIVE image {image}: its name must start with the image number (21_training).")
            continue
        fov = _find_with_suffix(fov_folder, f"{image.stem}_mask", _MASK_SUFFIXES)
        if fov is None:
            problems.missing(f"no field-of-view mask for image {image}: expected {fov_folder / image.stem}_mask.gif")
        item = {"image": str(image), "mask": str(fov), "id": image.stem}
        label = _find_with_suffix(manual_folder, f"{number.group(1)}_{_DRIVE_MANUALS[manual]}", _MASK_SUFFIXES)
        if label is not None:
            item["label"] = str(label)
        elif require_labels:
            problems.missing(
                f"no vessel annotation for image {image}: expected "
                f"{manual_folder / number.group(1)}_{_DRIVE_MANUALS[manual]}.gif (require_labels=False to allow it)"
            )
        if fov is None or (label is None and require_labels):
            continue
        if check_sizes:
            if problems.sizes_differ(image, [fov], what="field-of-view mask"):
                continue
            if label is not None and problems.sizes_differ(image, [label], what="vessel annotation"):
                continue
        items.append(item)
    problems.raise_all()
    return items


# ----------------------------------------------------------------------------------------------- splitting
def split_segmentation_datalist(
    items: list[dict[str, Any]],
    fractions: Mapping[str, float] = DEFAULT_SEGMENTATION_FRACTIONS,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Split items at random, fixed by ``seed`` and independent of their order (default 80:20 train/test).

    Each item is its own group (identified by ``id``), split by
    :func:`monai_imbalance.data.split_by_group` without stratification: after sorting by id, the items are
    shuffled with ``numpy.random.default_rng(seed)`` and dealt to the splits so that every split holds its
    fraction of the items up to less than one.

    Raises:
        ValueError: bad fractions, or items without unique ``id`` strings.
    """
    ids = [item.get("id") for item in items]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise ValueError("every item needs a unique, non-empty string 'id' to be split reproducibly.")
    return split_by_group(items, fractions=fractions, seed=seed, group_key=None, stratify=False)


@data_errors_for_users
def load_segmentation_datalists(
    data_format: str,
    dataset_dir: str | os.PathLike | None = None,
    source_split: str | None = None,
    fractions: Mapping[str, float] | None = DEFAULT_SEGMENTATION_FRACTIONS,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Read one split of a segmentation data source and split it, seeded (the ALL paper's 80:20 by default).

    Args:
        data_format: ``"isic2018_task1"``, ``"dsb2018"`` (Kaggle folders, or an ``npz`` file given as
            ``dataset_dir`` or as the only ``.npz`` in ``dataset_dir``) or ``"drive"``.
        dataset_dir: the data location; ``None`` reads the ``DATA_DIR`` environment variable.
        source_split: the source's own split to read: ISIC ``training`` (default), ``validation``, ``test``;
            DRIVE ``training`` (default), ``test``; DSB 2018 ``stage1_train`` (default).
        fractions: ``{split: fraction}`` of :func:`split_segmentation_datalist`; ``None`` returns the
            source split unsplit as ``{"all": items}``.
        seed: seed of the split.
        kwargs: passed to the builder (e.g. ``check_sizes=False``, DRIVE ``require_labels=False``).

    Returns:
        ``{split: items}``.
    """
    builders = {"isic2018_task1": isic2018_task1_datalist, "drive": drive_datalist, "dsb2018": dsb2018_datalist}
    if data_format in builders:
        from .datalist import check_format_kwargs

        check_format_kwargs(data_format, builders[data_format], kwargs)
    if data_format == "isic2018_task1":
        items = isic2018_task1_datalist(dataset_dir, split=source_split or "training", **kwargs)
    elif data_format == "drive":
        items = drive_datalist(dataset_dir, split=source_split or "training", **kwargs)
    elif data_format == "dsb2018":
        root = resolve_dataset_dir(dataset_dir, "Data Science Bowl 2018 data")
        npz = _single_npz(root, source_split or "stage1_train")
        if npz is not None:
            items = dsb2018_npz_datalist(npz)
        else:
            items = dsb2018_datalist(root, stage=source_split or "stage1_train", **kwargs)
    else:
        raise ValueError(f"unknown segmentation data format {data_format!r}; expected one of {SEGMENTATION_FORMATS}.")
    if fractions is None:
        return {"all": items}
    return split_segmentation_datalist(items, fractions=fractions, seed=seed)


def _single_npz(root: Path, stage: str) -> Path | None:
    """``root`` if it is an ``.npz`` file, or the only ``.npz`` in ``root`` when it has no Kaggle folders."""
    if root.is_file() and root.suffix.lower() == ".npz":
        return root
    if not root.is_dir() or (root / stage).is_dir() or any((p / "images").is_dir() for p in root.iterdir()):
        return None
    npzs = sorted(root.glob("*.npz"))
    if len(npzs) > 1:
        raise ValueError(f"several .npz files in {root} ({', '.join(p.name for p in npzs)}): name one as dataset_dir.")
    return npzs[0] if npzs else None
