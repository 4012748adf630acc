"""ISIC 2018 task 3 (HAM10000) skin-lesion classification data as datalists.

Official ISIC 2018 task 3 layout under ``dataset_dir`` (any subset of the three splits)::

    ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...
    ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
    ISIC2018_Task3_Training_LesionGroupings.csv            (optional: image, lesion_id, ...)
    ISIC2018_Task3_Validation_Input/ + ISIC2018_Task3_Validation_GroundTruth/...GroundTruth.csv
    ISIC2018_Task3_Test_Input/       + ISIC2018_Task3_Test_GroundTruth/...GroundTruth.csv

A ground-truth CSV has a column ``image`` (the image id, file ``<image>.jpg`` in the split's ``*_Input``
folder) and one-hot columns ``MEL, NV, BCC, AKIEC, BKL, DF, VASC`` (``1.0`` for the diagnosis, ``0.0``
otherwise). The label is the index of the one column set to 1, in that column order:
``MEL=0, NV=1, BCC=2, AKIEC=3, BKL=4, DF=5, VASC=6`` (note: DermaMNIST orders the same classes differently).

The HAM10000 release (``HAM10000_metadata.csv`` with ``lesion_id, image_id, dx, ...`` and the images in
``HAM10000_images_part_1/``, ``HAM10000_images_part_2/`` or any folder below ``dataset_dir``) is read too,
as one ``"all"`` pool (it is the ISIC 2018 training set; ``dx`` ``mel, nv, bcc, akiec, bkl, df, vasc``).

HAM10000 has no patient ids; several images show the same lesion. Where a lesion id is known (lesion
groupings CSV, HAM10000 metadata) the items get ``lesion_id`` and ``patient_id = lesion_id``, so patient-
grouped splitting keeps all images of a lesion together.

Bundle call::

    datalists = load_datalists("isic2018_task3", dataset_dir=...)   # train/val/test as present, else split
    # transforms: LoadImageOrArrayd(keys="image", draft_size=image_size), ScaleIntensityByTyped, Resized, ...
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_imbalance.data.check import raise_problems
from monai_imbalance.data.datalist import Datalists, closest_names, resolve_dataset_dir, validate_datalist
from monai_imbalance.data.formats import register_format

__all__ = ["HAM10000_DX", "ISIC_TASK3_CLASSES", "load_isic2018_task3_datalists", "read_isic_ground_truth"]

#: The one-hot columns of the ISIC 2018 task 3 ground truth, in label order.
ISIC_TASK3_CLASSES: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")

#: HAM10000 ``dx`` codes -> ISIC 2018 task 3 class.
HAM10000_DX: dict[str, str] = {
    "mel": "MEL",
    "nv": "NV",
    "bcc": "BCC",
    "akiec": "AKIEC",
    "bkl": "BKL",
    "df": "DF",
    "vasc": "VASC",
}

_SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; the CSV has columns {columns}.")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read CSV file {path}: {e}") from e


def read_isic_ground_truth(csv_path: str | os.PathLike) -> dict[str, int]:
    """Read an ISIC 2018 task 3 ground-truth CSV as ``{image id: label}`` (label order of ISIC_TASK3_CLASSES).

    Raises:
        ValueError: a missing column (named).
        DataCheckError: (a ``ValueError``) every row with a non-numeric or NaN cell, that is not one-hot or
            that repeats an image, at once (each names the line, the image and its values).
    """
    path = Path(csv_path)
    labels: dict[str, int] = {}
    problems: list[str] = []
    for line, row in enumerate(_read_csv(path, ["image", *ISIC_TASK3_CLASSES]), start=2):  # line 1: the header
        where = f"{path}, line {line}: image {row['image']!r}"
        try:
            values = [float(row[c]) for c in ISIC_TASK3_CLASSES]
        except ValueError as e:
            problems.append(f"{where}: non-numeric ground truth: {e}")
            continue
        hot = [i for i, v in enumerate(values) if v == 1.0]
        if len(hot) != 1 or any(v not in (0.0, 1.0) for v in values):
            shown = dict(zip(ISIC_TASK3_CLASSES, values, strict=True))
            problems.append(f"{where} is not one-hot (exactly one class = 1, the others 0): {shown}.")
            continue
        if row["image"] in labels:
            problems.append(f"{where} is listed twice.")
            continue
        labels[row["image"]] = hot[0]
    raise_problems(problems)
    return labels


def _find(root: Path, regex: str, want_dir: bool) -> Path | None:
    pattern = re.compile(regex, re.IGNORECASE)
    hits = sorted(p for p in root.rglob("*") if (p.is_dir() if want_dir else p.is_file()) and pattern.fullmatch(p.name))
    return hits[0] if hits else None


def _lesion_ids(root: Path) -> dict[str, str]:
    path = _find(root, r".*lesion_?groupings.*\.csv", want_dir=False)
    if path is None:
        return {}
    return {row["image"]: row["lesion_id"] for row in _read_csv(path, ["image", "lesion_id"]) if row["lesion_id"]}


def _task3_split(root: Path, split: str, image_suffix: str, lesions: dict[str, str]) -> list[dict[str, Any]] | None:
    word = _SPLIT_WORDS[split]
    gt = _find(root, rf".*task_?3.*{word}.*ground_?truth.*\.csv", want_dir=False)
    if gt is None:
        return None
    input_dir = _find(root, rf".*task_?3.*{word}.*_input", want_dir=True)
    if input_dir is None:
        raise FileNotFoundError(f"found the ground truth {gt} but no image folder '*Task3_{word}_Input' under {root}.")
    items = []
    missing = []
    for image_id, label in read_isic_ground_truth(gt).items():
        path = input_dir / f"{image_id}{image_suffix}"
        if not path.is_file():
            missing.append(f"image file not found: {path} (listed in {gt}).")
            continue
        item: dict[str, Any] = {"image": str(path), "label": label, "id": image_id}
        if image_id in lesions:
            item["lesion_id"] = item["patient_id"] = lesions[image_id]
        items.append(item)
    raise_problems(missing, missing_files=len(missing))
    return items


def _ham10000(root: Path, image_suffix: str) -> list[dict[str, Any]] | None:
    meta = _find(root, r"ham10000_metadata(\.csv)?", want_dir=False)
    if meta is None:
        return None
    index = {p.stem: p for p in root.rglob(f"*{image_suffix}")}
    items = []
    problems: list[str] = []
    missing = 0
    for line, row in enumerate(_read_csv(meta, ["lesion_id", "image_id", "dx"]), start=2):
        dx = row["dx"].lower()
        path = index.get(row["image_id"])
        if dx not in HAM10000_DX:
            problems.append(
                f"{meta}, line {line}: unknown label value {row['dx']!r} for image {row['image_id']!r}; "
                f"expected {sorted(HAM10000_DX)}{closest_names(dx, HAM10000_DX)}."
            )
        if path is None:
            problems.append(
                f"image file not found: {row['image_id']}{image_suffix} (listed in {meta}, line {line}) under {root}."
            )
            missing += 1
        if path is None or dx not in HAM10000_DX:
            continue
        label = ISIC_TASK3_CLASSES.index(HAM10000_DX[dx])
        items.append(
            {
                "image": str(path),
                "label": label,
                "id": row["image_id"],
                "lesion_id": row["lesion_id"],
                "patient_id": row["lesion_id"],
            }
        )
    raise_problems(problems, missing_files=missing)
    return items


@register_format("isic2018_task3")
def load_isic2018_task3_datalists(
    dataset_dir: str | os.PathLike | None, image_suffix: str = ".jpg", warn: bool = True
) -> Datalists:
    """Read ISIC 2018 task 3 (or HAM10000) as ``{split: items}`` (see the module docstring).

    Returns:
        :class:`Datalists` with the splits found (``train``/``val``/``test``), or ``all`` for HAM10000;
        ``class_names`` = :data:`ISIC_TASK3_CLASSES`; items ``{"image", "label", "id"[, "lesion_id",
        "patient_id"]}``.

    Raises:
        FileNotFoundError: ``dataset_dir`` missing, or images listed in a ground truth that are not on disk
            (all of them named, as a ``DataFilesNotFoundError``).
        ValueError: no ground-truth CSV found, a missing CSV column, or rows that are not one-hot (all of them
            named, as a ``DataCheckError``).
    """
    root = resolve_dataset_dir(dataset_dir, "ISIC 2018 task 3")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    lesions = _lesion_ids(root)
    result = {}
    for split in _SPLIT_WORDS:
        items = _task3_split(root, split, image_suffix, lesions)
        if items is not None:
            result[split] = items
    if not result:
        ham = _ham10000(root, image_suffix)
        if ham is None:
            raise ValueError(
                f"no ISIC 2018 task 3 data in {root}: expected ISIC2018_Task3_<Training|Validation|Test>_Input/ "
                "folders with ISIC2018_Task3_<...>_GroundTruth.csv files, or HAM10000_metadata.csv."
            )
        result["all"] = ham
    if not any(result.values()):
        raise ValueError(f"the ground-truth CSV files under {root} list no images.")
    classes = list(ISIC_TASK3_CLASSES)
    report = validate_datalist(result, class_names=classes, check_files=False, warn=warn)
    return Datalists(result, class_names=classes, source=str(root), report=report)
