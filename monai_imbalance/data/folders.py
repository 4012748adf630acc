"""Class-per-folder image trees as datalists, including the knee KL layout with patient ids in file names.

Layouts (``dataset_dir`` is the root; folder names are the classes):

- with splits: ``{split}/{class}/{image}``, ``split`` one of ``train``/``training``, ``val``/``valid``/
  ``validation``, ``test``/``testing`` (other top-level folders are ignored);
- without splits: ``{class}/{image}``; everything lands in the ``"all"`` pool, which
  :func:`monai_imbalance.data.load_datalists` divides by patient.

Images: every file with a suffix of ``extensions`` (PNG, JPEG, BMP, TIFF, GIF, DICOM ``.dcm``, NIfTI; case
insensitive; hidden files skipped) directly inside a class folder. The class order is ``class_names`` /
``label_map`` when given, else the sorted folder names (numerically when all are integers: ``0..4`` for KL
grades; ``A..D`` for breast density).

``id_pattern`` (a regular expression matched against the whole file stem) turns parts of the file name into
item keys: named groups ``patient`` -> ``patient_id``, ``visit`` -> ``visit_id``, ``side``, ``view`` and any
other group by its own name. The knee layout of kneeKL224 / OAI (``{split}/{grade}/{patient}{side}.png``,
e.g. ``train/2/9003126L.png``) uses :data:`KNEE_ID_PATTERN`; a knee is patient + side (``knee_id``), and
``patient_id`` is the patient, used to keep both knees of a patient in one split.

Bundle calls::

    load_datalists("knee_folders", dataset_dir=...)                          # KL grade 0-4 PNGs
    load_datalists("class_folders", dataset_dir=..., label_map="birads_density")  # A/ B/ C/ D/ JPEG mammograms
    load_datalists("class_folders", dataset_dir=..., class_names=["normal", "glaucoma"])
    # transforms: LoadImageOrArrayd(keys="image", channels=1|3, draft_size=image_size), ...
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_imbalance.data.check import raise_problems
from monai_imbalance.data.datalist import (
    SPLIT_ALIASES,
    Datalists,
    closest_names,
    natural_sorted,
    normalise_label_value,
    resolve_dataset_dir,
    resolve_label_map,
    unique_ids,
    validate_datalist,
)
from monai_imbalance.data.formats import register_format

__all__ = [
    "IMAGE_EXTENSIONS",
    "KNEE_ID_PATTERN",
    "image_folder_datalist",
    "list_image_files",
    "load_class_folder_datalists",
    "load_knee_folder_datalists",
]

logger = logging.getLogger(__name__)

#: File suffixes taken as images (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".dcm",
    ".dicom",
    ".nii",
    ".nii.gz",
)

#: Knee file stem ``{patient}{side}``: digits then ``L`` or ``R`` (e.g. ``9003126L``).
KNEE_ID_PATTERN = r"(?P<patient>\d+)(?P<side>[LR])"

_GROUP_KEYS = {"patient": "patient_id", "visit": "visit_id", "side": "side", "view": "view"}


def list_image_files(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case insensitive, hidden files skipped), sorted by name."""
    exts = tuple(e.lower() for e in extensions)
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(exts)
    )


def image_folder_datalist(
    folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS, recursive: bool = False
) -> list[dict[str, str]]:
    """Unlabelled images of ``folder`` as a datalist for inference: ``[{"image": path, "id": ...}, ...]``.

    ``id`` is the file stem, or the path relative to ``folder`` (without suffix) when a stem occurs twice.

    Args:
        folder: the folder of images (any format of :data:`IMAGE_EXTENSIONS`).
        extensions: file suffixes taken as images.
        recursive: also take images in sub-folders.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: ``folder`` holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())] if recursive else [root]
    paths = [path for f in folders for path in list_image_files(f, extensions)]
    if not paths:
        raise ValueError(f"{root} holds no image file (looked for {', '.join(extensions)})")
    return [{"image": str(p), "id": i} for p, i in zip(paths, unique_ids(paths, base=root), strict=True)]


def _fields_from_name(stem: str, pattern: re.Pattern | None, path: Path) -> dict[str, str]:
    if pattern is None:
        return {}
    match = pattern.fullmatch(stem)
    if match is None:
        raise ValueError(f"file name {path.name!r} ({path}) does not match the id pattern {pattern.pattern!r}.")
    return {_GROUP_KEYS.get(k, k): v for k, v in match.groupdict().items() if v is not None}


@register_format("class_folders")
def load_class_folder_datalists(
    dataset_dir: str | os.PathLike | None,
    class_names: Sequence[str] | None = None,
    label_map: Mapping[str, int] | str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    id_pattern: str | None = None,
    warn: bool = True,
) -> Datalists:
    """Read a class-per-folder tree (with or without split folders) as ``{split: items}``.

    Args:
        dataset_dir: root of the tree; ``None``: the ``DATA_DIR`` environment variable.
        class_names: class order (folder names); folders of other names are an error.
        label_map: folder name -> class index, or a named map (``"birads_density"``, ``"kl_grade"``).
        extensions: image file suffixes.
        id_pattern: regular expression for the file stem whose named groups become item keys (module docstring).
        warn: warn about classes without training samples.

    Returns:
        :class:`Datalists` with splits ``train``/``val``/``test`` (those present) or ``all``; items
        ``{"image": str path, "label": int, "id": stem, "class_name": folder, ...fields from id_pattern}``.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist.
        ValueError: no images (empty dataset dir).
        DataCheckError: (a ``ValueError``) every class folder not in ``class_names``/``label_map`` (names the
            folder), every file name that does not match ``id_pattern`` and, with an ``id_pattern``, every file
            stem found in two class folders of one split (e.g. a knee with two grades), all at once.
    """
    root = resolve_dataset_dir(dataset_dir, "image folder")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    mapping, names = resolve_label_map(label_map, class_names)
    pattern = re.compile(id_pattern) if id_pattern else None

    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = {SPLIT_ALIASES[p.name.lower()]: p for p in subdirs if p.name.lower() in SPLIT_ALIASES}
    if split_dirs:
        ignored = [p.name for p in subdirs if p.name.lower() not in SPLIT_ALIASES]
        if ignored:
            logger.info("%s: ignoring folders %s beside the split folders", root, ignored)
        layout = {
            split: sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            for split, d in split_dirs.items()
        }
    else:
        layout = {"all": subdirs}

    if names is None:
        names = natural_sorted({d.name for dirs in layout.values() for d in dirs})
        mapping = {normalise_label_value(n): i for i, n in enumerate(names)}
    assert mapping is not None

    result: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for split, class_dirs in layout.items():
        files: list[tuple[Path, int, str]] = []
        for class_dir in class_dirs:
            key = normalise_label_value(class_dir.name)
            if key not in mapping:
                problems.append(
                    f"unknown label value {class_dir.name!r}: folder {class_dir} is not one of the classes {names}"
                    f"{closest_names(class_dir.name, names)}."
                )
                continue
            files.extend((path, mapping[key], class_dir.name) for path in list_image_files(class_dir, extensions))
        ids = unique_ids([f[0] for f in files], base=root)
        items = []
        seen: dict[str, Path] = {}
        for (path, label, folder), item_id in zip(files, ids, strict=True):
            stem = Path(item_id).name
            if stem in seen and pattern is not None:
                problems.append(f"{stem!r} appears in two class folders of split {split!r}: {seen[stem]} and {path}.")
            seen[stem] = path
            item: dict[str, Any] = {"image": str(path), "label": label, "id": item_id, "class_name": folder}
            try:
                item.update(_fields_from_name(stem, pattern, path))
            except ValueError as e:
                problems.append(str(e))
            items.append(item)
        result[split] = items
    raise_problems(problems)

    if not any(result.values()):
        expected = ", ".join(e.lstrip(".") for e in extensions)
        raise ValueError(
            f"no images found in {root}: expected {{split}}/{{class}}/<image> or {{class}}/<image> with one of the "
            f"suffixes {expected}."
        )
    report = validate_datalist(result, class_names=names, check_files=False, warn=warn)
    return Datalists(result, class_names=names, source=str(root), report=report)


@register_format("knee_folders")
def load_knee_folder_datalists(
    dataset_dir: str | os.PathLike | None,
    class_names: Sequence[str] | None = ("0", "1", "2", "3", "4"),
    id_pattern: str = KNEE_ID_PATTERN,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    warn: bool = True,
) -> Datalists:
    """Read the knee KL layout ``{split}/{grade}/{patient}{side}.png`` (see the module docstring).

    Items get ``patient_id`` (the patient), ``side`` (``L``/``R``) and ``knee_id`` (patient + side) from the file
    name; the classes are the KL grades ``0``-``4`` (a grade without images is reported, not dropped).
    """
    datalists = load_class_folder_datalists(
        dataset_dir, class_names=class_names, extensions=extensions, id_pattern=id_pattern, warn=warn
    )
    for items in datalists.values():
        for item in items:
            if "patient_id" in item and "side" in item:
                item["knee_id"] = f"{item['patient_id']}{item['side']}"
    return datalists
