"""Generic CSV datalists: one row per image with its label and, optionally, patient, visit, view and split.

CSV (header row required; column names configurable)::

    image,label,patient_id,visit_id,view,split
    dicom/p001/v1/L_CC.dcm,B,p001,v1,L_CC,train
    dicom/p001/v1/L_CC_repeat.dcm,B,p001,v1,L_CC,train
    ...

- ``image``: a path relative to ``dataset_dir`` (or absolute); any format
  :class:`~monai_imbalance.transforms.LoadImageOrArrayd` reads (DICOM, PNG, JPEG, TIFF, NIfTI, ...).
- ``label``: class indices ``0..K-1``, or values mapped by ``label_map`` (a mapping, or a name of
  :data:`~monai_imbalance.data.datalist.LABEL_MAPS`, e.g. ``"birads_density"``: ``A-D`` or ``1-4``), or the
  names in ``class_names``. Without either, integer labels are used as they are and other values are
  sorted into classes.
- ``patient_id``, ``visit_id``, ``view`` (optional, kept as strings): several rows with the same patient and
  visit are true repeat acquisitions for the repeatability report. ``required_columns`` makes any of them
  mandatory (a CSV without the column is an error naming it).
- ``split`` (optional): ``train``/``val``/``test`` (also ``training``, ``valid``, ``validation``,
  ``testing``); without it every row goes to the ``"all"`` pool, split later by patient.
- ``id`` (optional): the item id; default the file stem (or the relative path for stems that repeat).
- ``extra_columns``: further columns to copy into the items as strings.

Bundle call (breast density, DICOM)::

    datalists = load_datalists("csv", dataset_dir=..., csv_file="datalist.csv", label_column="density",
                               label_map="birads_density", required_columns=["patient_id", "visit_id"])
    Compose([LoadImageOrArrayd(keys="image", dicom_tags=True, channels=1),
             ScaleIntensityByTyped(keys="image", rule="mammogram"),
             ResizeLongestPadd(keys="image", spatial_size=image_size)])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_imbalance.data.check import label_value_problem, raise_problems
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

__all__ = ["load_csv_datalists"]


def _is_number(text: str) -> bool:
    """Whether a label cell reads as a number (``2``, ``1.7``, ``nan``, ``inf``, ``1e3``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_format("csv")
def load_csv_datalists(
    dataset_dir: str | os.PathLike | None,
    csv_file: str | os.PathLike = "datalist.csv",
    image_column: str = "image",
    label_column: str = "label",
    patient_column: str = "patient_id",
    visit_column: str = "visit_id",
    view_column: str = "view",
    split_column: str = "split",
    id_column: str = "id",
    label_map: Mapping[str, int] | str | None = None,
    class_names: Sequence[str] | None = None,
    required_columns: Sequence[str] = (),
    extra_columns: Sequence[str] = (),
    check_files: bool = True,
    warn: bool = True,
) -> Datalists:
    """Read a CSV datalist as ``{split: items}`` (see the module docstring).

    Args:
        dataset_dir: the folder that image paths are relative to (and that holds ``csv_file``), or the CSV file
            itself (paths then relative to its folder); ``None``: the ``DATA_DIR`` environment variable.
        csv_file: CSV path relative to ``dataset_dir`` (or absolute).
        image_column, label_column, patient_column, visit_column, view_column, split_column, id_column: column
            names. The optional ones are used when present.
        label_map: raw label value -> class index, or a named map (``"birads_density"``, ``"kl_grade"``).
        class_names: class names (index = label); with no ``label_map`` the raw labels must be these names (a
            value outside them, e.g. a misspelt ``melanomaa``, is an error naming the file, line and value).
        required_columns: further columns that must exist and be non-empty in every row, e.g.
            ``["patient_id", "visit_id"]`` for a repeatability study (use the column names of the CSV).
        extra_columns: further columns copied into each item (under the column name).
        check_files: check that every image file exists.
        warn: warn about classes without training samples.

    Returns:
        :class:`Datalists`; items ``{"image": str, "label": int, "id": str[, "patient_id", "visit_id", "view",
        ...extra columns]}``.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: a missing column (named) or an empty CSV.
        DataCheckError: (a ``ValueError``) every problem of the rows at once, each naming the line, the file
            and the value: an image file that does not exist, an empty image or label cell, an unknown label, a
            numeric label that is not a whole class index (``1.7``, ``nan``, ``-1``), an empty required cell,
            an unknown split value (the first 10 in the message, all in ``.problems``); a
            ``DataFilesNotFoundError`` (also a ``FileNotFoundError``) when all are missing image files.
    """
    base = resolve_dataset_dir(dataset_dir, "CSV datalist")
    if base.is_file():
        csv_path, base = base, base.parent
    else:
        csv_path = Path(csv_file) if Path(csv_file).is_absolute() else base / csv_file
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV datalist not found: {csv_path}")
    mapping, names = resolve_label_map(label_map, class_names)

    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    needed = [image_column, label_column, *required_columns, *extra_columns]
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {missing}; the CSV has columns {columns}.")
    if not rows:
        raise ValueError(f"{csv_path} has a header but no rows.")

    problems: list[str] = []
    missing_files = 0
    if mapping is None:
        raw = [normalise_label_value(r[label_column]) for r in rows]
        present = [v for v in raw if v]
        if present and all(_is_number(v) for v in present):  # a numeric column: whole class indices 0..K-1
            whole = [int(float(v)) for v in present if label_value_problem(float(v)) is None]
            k = max(whole, default=-1) + 1
            names = [str(i) for i in range(k)]
            mapping = {str(i): i for i in range(k)}
        else:
            names = natural_sorted(set(present))
            mapping = {n: i for i, n in enumerate(names)}
    assert names is not None

    optional = {patient_column: "patient_id", visit_column: "visit_id", view_column: "view"}
    rows_out: list[tuple[str, dict[str, Any], Path]] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path}, line {line}"
        image = row[image_column]
        if not image:
            problems.append(f"{where}: empty {image_column!r} cell.")
            continue
        path = Path(image).expanduser()
        path = path if path.is_absolute() else base / path
        if check_files and not path.is_file():
            problems.append(f"image file not found: {path} ({where}).")
            missing_files += 1
        raw_label = normalise_label_value(row[label_column])
        number_problem = label_value_problem(float(raw_label)) if _is_number(raw_label) else None
        if not raw_label:
            problems.append(f"{where} ({path}): empty label cell in column {label_column!r}.")
        elif raw_label not in mapping and number_problem is not None:
            problems.append(
                f"{where} ({path}): label {row[label_column]!r} in column {label_column!r} {number_problem}."
            )
        elif raw_label not in mapping:
            problems.append(
                f"{where} ({path}): unknown label value {row[label_column]!r} in column {label_column!r}; "
                f"known values: {sorted(mapping)}{closest_names(raw_label, mapping)}."
            )
        for column in required_columns:
            if not row[column]:
                problems.append(f"{where} ({path}): empty value in required column {column!r}.")
        split = "all"
        if split_column in columns:
            value = row[split_column].lower()
            if value not in SPLIT_ALIASES:
                problems.append(
                    f"{where} ({path}): unknown split value {row[split_column]!r}; "
                    f"expected one of {sorted(SPLIT_ALIASES)}."
                )
            split = SPLIT_ALIASES.get(value, "all")
        if raw_label not in mapping:
            continue
        item: dict[str, Any] = {"image": str(path), "label": mapping[raw_label]}
        for column, key in optional.items():
            if column in columns:  # every item gets the key (empty when the cell is), so items batch together
                item[key] = row[column]
        for column in extra_columns:
            item[column] = row[column]
        if id_column in columns and row[id_column]:
            item["id"] = row[id_column]
        rows_out.append((split, item, path))
    raise_problems(problems, missing_files=missing_files)

    pools: dict[str, list[dict[str, Any]]] = {}
    for (split, item, _), default_id in zip(rows_out, unique_ids([r[2] for r in rows_out], base=base), strict=True):
        item.setdefault("id", default_id)
        pools.setdefault(split, []).append(item)
    report = validate_datalist(pools, class_names=names, check_files=False, warn=warn)
    return Datalists(pools, class_names=names, source=str(csv_path), report=report)
