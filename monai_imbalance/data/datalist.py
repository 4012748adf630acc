"""Datalists: one entry point for every data source, and their up-front validation.

A datalist is MONAI's list of dicts, one dict per image::

    {"image": "/data/train/2/9003126L.png" | numpy.ndarray, "label": 2, "id": "9003126L",
     "patient_id": "9003126", "visit_id": "v00", "view": "CC", ...}

``image`` is a path string (or, for MedMNIST-style ``npz`` files, the image array itself); ``label`` a
Python ``int`` in ``[0, num_classes)``; ``id`` a string unique within its split (the file stem, or
``<flag>_<split>_<index>`` for ``npz`` items) that the inference CSV uses; ``patient_id`` / ``visit_id`` /
``view`` / ``side`` strings where the source has them.

:func:`load_datalists` returns a :class:`Datalists`: a ``dict`` ``{split: list of items}`` with the splits
asked for (``train``, ``val``, ``test`` by default) that also carries ``class_names`` and a
:class:`DatalistReport` (counts per class and split, classes without training samples, warnings).
Splits the source does not have are made by :func:`monai_imbalance.data.split_by_group` (seeded,
patient-grouped, class-stratified).

The call per format (``dataset_dir=None`` reads the ``DATA_DIR`` environment variable)::

    # MedMNIST npz: a file, or a directory holding {flag}.npz / {flag}_{size}.npz; download=True fetches it
    load_datalists("medmnist", "data/medmnist", flag="dermamnist", size=28, download=False)
    # MedMNIST-like npz with *_patient_ids / *_sides (knee KL): the test split is carved out by patient
    load_datalists("medmnist", "knee_kl/knee_kl_64_trainval.npz")
    # class folders {split}/{class}/*.png or {class}/*.png (no split folders: seeded split by patient)
    load_datalists("class_folders", "fundus", class_names=["normal", "rnfld"])
    load_datalists("class_folders", "density_jpegs", label_map="birads_density")      # A/ B/ C/ D/
    # knee folders {split}/{grade}/{patient}{side}.png: patient_id, side and knee_id from the file name
    load_datalists("knee_folders", "kneeKL224")
    # ISIC 2018 task 3 (or HAM10000): *_Input/ image folders + one-hot ground-truth CSVs
    load_datalists("isic2018_task3", "ISIC2018")
    # generic CSV (image, label, optional patient_id, visit_id, view, split; paths relative to dataset_dir)
    load_datalists("csv", "density", csv_file="datalist.csv", label_column="density",
                   label_map="birads_density", required_columns=["patient_id", "visit_id"])

and then, for every format::

    Dataset(data=datalists["train"], transform=Compose([LoadImageOrArrayd(keys="image"), ...]))
    num_classes = len(datalists.class_names)
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_imbalance.data.check import label_value_problem, raise_problems
from monai_imbalance.data.formats import DATA_FORMATS, format_loader, registered_formats
from monai_imbalance.errors import closest_names, data_errors_for_users
from monai_imbalance.switches import as_bool

__all__ = [
    "DATA_FORMATS",
    "LABEL_MAPS",
    "SPLIT_ALIASES",
    "DatalistReport",
    "Datalists",
    "check_format_kwargs",
    "closest_names",
    "load_datalists",
    "normalise_label_value",
    "reorder_classes",
    "resolve_dataset_dir",
    "resolve_label_map",
    "validate_datalist",
]

logger = logging.getLogger(__name__)

#: Named label maps (raw label value -> class index); each also fixes the class names (the keys of index 0..K-1).
LABEL_MAPS: dict[str, dict[str, int]] = {
    # BI-RADS breast density: letters A-D or numbers 1-4
    "birads_density": {"A": 0, "B": 1, "C": 2, "D": 3, "1": 0, "2": 1, "3": 2, "4": 3},
    # Kellgren-Lawrence knee osteoarthritis grade 0-4
    "kl_grade": {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4},
}

#: Folder / column spellings of the three splits.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

DEFAULT_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class DatalistReport:
    """What :func:`validate_datalist` found.

    Attributes:
        class_names: the class names, index = label.
        class_counts: ``{split: [count of label 0, count of label 1, ...]}``.
        empty_classes: ``{split: [names of classes without any sample in that split]}``.
        missing_training_classes: classes with no sample in the training split (a loss or sampler that needs
            every class, e.g. LDAM margins or a batch-balanced sampler, cannot work for them).
        patients_in_several_splits: patient ids found in more than one split (data leakage between splits).
        warnings: every warning issued, as text.
    """

    class_names: list[str]
    class_counts: dict[str, list[int]] = field(default_factory=dict)
    empty_classes: dict[str, list[str]] = field(default_factory=dict)
    missing_training_classes: list[str] = field(default_factory=list)
    patients_in_several_splits: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Datalists(dict):
    """``{split: list of item dicts}`` plus ``class_names`` (index = label), ``report`` and ``source``.

    A plain ``dict`` to MONAI and to bundle configs (``$@datalists['train']``); the attributes travel with it.
    """

    def __init__(
        self,
        splits: Mapping[str, list[dict[str, Any]]] | None = None,
        class_names: Sequence[str] = (),
        source: str = "",
        report: DatalistReport | None = None,
    ) -> None:
        super().__init__(splits or {})
        self.class_names: list[str] = [str(c) for c in class_names]
        self.source = source
        self.report = report

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.items())
        return f"Datalists({sizes}; classes={self.class_names}; source={self.source!r})"


def resolve_dataset_dir(dataset_dir: str | os.PathLike | None, what: str = "dataset") -> Path:
    """``dataset_dir`` as a ``Path``; ``None`` or ``""`` falls back to the ``DATA_DIR`` environment variable.

    Raises:
        ValueError: neither is set.
    """
    if dataset_dir is None or str(dataset_dir) == "":
        env = os.environ.get("DATA_DIR", "")
        if not env:
            raise ValueError(
                f"no {what} location given: pass dataset_dir=... or set the DATA_DIR environment variable."
            )
        dataset_dir = env
    return Path(dataset_dir).expanduser()


def normalise_label_value(value: Any) -> str:
    """A raw label as text: stripped, and integral numbers without a fraction (``"2.0"`` -> ``"2"``)."""
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+\.0*", text):
        text = text.split(".")[0]
    return text


def resolve_label_map(
    label_map: Mapping[str, int] | str | None, class_names: Sequence[str] | None = None
) -> tuple[dict[str, int] | None, list[str] | None]:
    """Turn ``label_map`` / ``class_names`` into ``(raw value -> index map, class names)``.

    - ``label_map`` a name of :data:`LABEL_MAPS` or a mapping: that map; class names default to, for each
      index, the first key that maps to it (``"birads_density"`` -> ``["A", "B", "C", "D"]``).
    - only ``class_names``: each name maps to its position.
    - neither: ``(None, None)`` (the loader infers the classes from the data).

    Raises:
        ValueError: an unknown map name, indices that are not ``0..K-1``, or ``class_names`` of the wrong length.
    """
    if isinstance(label_map, str):
        if label_map not in LABEL_MAPS:
            raise ValueError(f"unknown label map {label_map!r}; named maps: {sorted(LABEL_MAPS)}.")
        label_map = LABEL_MAPS[label_map]
    if label_map is None:
        if class_names is None:
            return None, None
        names = [str(c) for c in class_names]
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be unique, got {names}.")
        return {normalise_label_value(n): i for i, n in enumerate(names)}, names
    mapping = {normalise_label_value(k): int(v) for k, v in label_map.items()}
    indices = sorted(set(mapping.values()))
    if indices != list(range(len(indices))):
        raise ValueError(f"label_map values must be the class indices 0..K-1, got {indices}.")
    if class_names is None:
        first: dict[int, str] = {}
        for k, v in mapping.items():
            first.setdefault(v, k)
        names = [first[i] for i in indices]
    else:
        names = [str(c) for c in class_names]
        if len(names) != len(indices):
            raise ValueError(f"class_names has {len(names)} entries but label_map has {len(indices)} classes.")
    return mapping, names


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Sort names numerically when they are all integers (``2`` before ``10``), else alphabetically."""
    names = list(names)
    if names and all(re.fullmatch(r"[+-]?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def unique_ids(paths: Sequence[Path], base: Path | None = None) -> list[str]:
    """Item ids for files, unique whenever the paths are: the stem (``.nii.gz`` counts as one suffix); for a stem
    that occurs twice, the relative path without the suffix (``/`` kept, e.g. ``a/x`` and ``b/x``); where that
    still collides (``x.png`` and ``x.jpg`` in one folder), the relative path with its suffix (``x.png``)."""

    def stem(p: Path) -> str:
        name = p.name
        for suffix in (".nii.gz",):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return p.stem

    def relative(p: Path) -> Path:
        return p.relative_to(base) if base is not None and p.is_relative_to(base) else p

    stems = [stem(p) for p in paths]
    stem_counts = Counter(stems)
    without_suffix = [(relative(p).parent / stem(relative(p))).as_posix() for p in paths]
    path_counts = Counter(without_suffix)
    ids = []
    for p, s, rel in zip(paths, stems, without_suffix, strict=True):
        if stem_counts[s] == 1:
            ids.append(s)
        elif path_counts[rel] == 1:
            ids.append(rel)
        else:
            ids.append(relative(p).as_posix())
    return ids


def validate_datalist(
    datalists: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    check_files: bool = True,
    required_keys: Sequence[str] = ("image", "label"),
    train_split: str = "train",
    warn: bool = True,
) -> DatalistReport:
    """Check datalists up front and report their class balance.

    Checks every item: a dict with ``required_keys``; ``label`` an integer in ``[0, K)``; ``image`` an existing
    file (when it is a path and ``check_files``) or an array; ids unique within a split. Then counts classes
    per split, and warns (``warnings.warn`` and the ``logging`` logger of this module) about classes without
    a training sample, empty splits and patients found in several splits.

    Args:
        datalists: ``{split: items}`` or one list of items (reported as split ``"all"``).
        class_names: class names (index = label); defaults to ``datalists.class_names`` or ``"0".."K-1"``.
        num_classes: ``K`` when ``class_names`` is not given; default ``max(label) + 1``.
        check_files: check that image paths exist.
        required_keys: keys every item must have.
        train_split: the split whose missing classes are reported as ``missing_training_classes``.
        warn: issue the warnings (the report holds them either way).

    Returns:
        :class:`DatalistReport`.

    Raises:
        DataCheckError: (a ``ValueError``) every malformed item, unknown, non-integral or NaN label value (names
            the item and the value), duplicate id and image that is neither a path nor an array, all at once
            (the first 10 in the message); a ``DataFilesNotFoundError`` (also a ``FileNotFoundError``) when all
            of them are image files that do not exist.
        ValueError: a training split without any item.
    """
    if isinstance(datalists, Mapping):
        splits = {str(k): list(v) for k, v in datalists.items()}
    else:
        splits = {"all": list(datalists)}
    if class_names is None:
        class_names = getattr(datalists, "class_names", None) or None
    if class_names is not None:
        names = [str(c) for c in class_names]
        k = len(names)
    else:
        labels = [item.get("label") for items in splits.values() for item in items if isinstance(item, Mapping)]
        k = num_classes if num_classes is not None else max((int(v) for v in labels if _is_int(v)), default=-1) + 1
        names = [str(i) for i in range(k)]

    report = DatalistReport(class_names=names)
    patient_splits: dict[str, set[str]] = defaultdict(set)
    problems: list[str] = []
    missing_files = 0
    for split, items in splits.items():
        counts = [0] * k
        seen_ids: dict[str, int] = {}
        for index, item in enumerate(items):
            where = f"split {split!r}, item {index}"
            if isinstance(item, Mapping) and item.get("id") not in (None, ""):
                where = f"{where} (id {item['id']!r})"
            if not isinstance(item, Mapping):
                problems.append(f"{where}: expected a dict, got {type(item).__name__}.")
                continue
            missing = [key for key in required_keys if key not in item]
            if missing:
                problems.append(f"{where}: missing key(s) {missing}.")
            image = item.get("image")
            if isinstance(image, (str, os.PathLike)):
                if check_files and not Path(image).is_file():
                    problems.append(f"image file not found: {image} ({where}).")
                    missing_files += 1
                where = f"{where} ({image})"
            elif image is not None and not isinstance(image, np.ndarray) and not hasattr(image, "shape"):
                problems.append(f"{where}: image must be a path or an array, got {type(image).__name__}.")
            if "label" in item:
                label = item["label"]
                why = label_value_problem(label)
                if why is not None:
                    problems.append(f"{where}: label {label!r} {why}; expected a class index in [0, {k}) for {names}.")
                elif not _is_int(label) or not 0 <= int(label) < k:
                    problems.append(
                        f"{where}: unknown label value {label!r}; expected an integer class index in [0, {k}) "
                        f"for classes {names}."
                    )
                else:
                    counts[int(label)] += 1
            if "id" in item:
                item_id = str(item["id"])
                if item_id in seen_ids:
                    problems.append(
                        f"duplicate id {item_id!r} in split {split!r} (items {seen_ids[item_id]} and {index})."
                    )
                seen_ids[item_id] = index
            if item.get("patient_id") not in (None, ""):
                patient_splits[str(item["patient_id"])].add(split)
        report.class_counts[split] = counts
        report.empty_classes[split] = [names[c] for c in range(k) if counts[c] == 0]
    raise_problems(problems, missing_files=missing_files)

    messages: list[str] = []
    if train_split in splits:
        if not splits[train_split]:
            raise ValueError(f"the {train_split!r} split has no items.")
        report.missing_training_classes = list(report.empty_classes[train_split])
        if report.missing_training_classes:
            messages.append(
                f"class(es) {report.missing_training_classes} have no sample in the {train_split!r} split "
                f"(class counts {dict(zip(names, report.class_counts[train_split], strict=True))})."
            )
    for split, items in splits.items():
        if split != train_split and not items:
            messages.append(f"the {split!r} split has no items.")
    report.patients_in_several_splits = sorted(p for p, s in patient_splits.items() if len(s) > 1)
    if report.patients_in_several_splits:
        shown = report.patients_in_several_splits[:5]
        messages.append(
            f"{len(report.patients_in_several_splits)} patient id(s) occur in more than one split, e.g. {shown}."
        )
    report.warnings = messages
    if warn:
        for message in messages:
            logger.warning(message)
            warnings.warn(message, UserWarning, stacklevel=2)
    return report


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def subset_per_split(
    datalists: Mapping[str, list[dict[str, Any]]], max_items: int, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """At most ``max_items`` items per split, drawn class by class in turn so that every class is represented.

    Items of each class are shuffled with ``seed``; the classes then take turns (label order) until
    ``max_items`` are taken; the subset keeps the original item order. Deterministic for a given seed.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}.")
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, Any]]] = {}
    for split, items in datalists.items():
        if len(items) <= max_items:
            out[split] = list(items)
            continue
        by_class: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            by_class[int(item["label"])].append(i)
        queues = [list(rng.permutation(by_class[c])) for c in sorted(by_class)]
        chosen: list[int] = []
        while len(chosen) < max_items:
            for queue in queues:
                if queue and len(chosen) < max_items:
                    chosen.append(int(queue.pop(0)))
        out[split] = [items[i] for i in sorted(chosen)]
    return out


_SWITCHES = ("download", "progress", "require_labels", "check_sizes")


def check_format_kwargs(format: str, loader: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise a readable ``ValueError`` when ``kwargs`` holds options that ``loader`` (of ``format``) does not take.

    The message names the unexpected options, the options the format takes and the formats whose options they
    are (a bundle's ``data_kwargs`` written for MedMNIST, ``flag``/``size``/``download``, passed on to
    ``isic2018_task3`` otherwise ends in a bare ``TypeError: unexpected keyword argument 'flag'``).
    """
    parameters = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [name for name in list(parameters)[1:] if parameters[name].kind is not inspect.Parameter.VAR_POSITIONAL]
    unexpected = [k for k in kwargs if k not in accepted]
    if not unexpected:
        return
    owners = [
        name
        for name, other in registered_formats().items()
        if name != format and all(k in inspect.signature(other).parameters for k in unexpected)
    ]
    belongs = f" (options of the {' / '.join(repr(o) for o in owners)} format)" if owners else ""
    guesses = {k: difflib.get_close_matches(k, accepted, n=1) for k in unexpected}
    hints = "".join(f"; {k!r}: did you mean {g[0]!r}?" for k, g in guesses.items() if g)
    raise ValueError(
        f"data format {format!r} does not take the option(s) {unexpected}{belongs}; it takes {accepted}{hints}. "
        "In a bundle, give each format its own options (format_kwargs: {<format>: {...}}) or override "
        '--data_kwargs with the options of the chosen format ("{}" for none).'
    )


def reorder_classes(datalists: Datalists, class_names: Sequence[str]) -> Datalists:
    """The same datalists with the labels renumbered to the order of ``class_names`` (matched by name).

    For formats whose classes are fixed by the source (ISIC 2018 task 3: ``MEL, NV, ...``): ``class_names``
    chooses their order. Classes of the source that ``class_names`` lacks may not occur in the data.

    Raises:
        ValueError: an item whose class is not among ``class_names`` (names the item, its file and the class,
            and the closest known names).
    """
    names = [str(c) for c in class_names]
    position = {n: i for i, n in enumerate(names)}
    remap = {i: position.get(n) for i, n in enumerate(datalists.class_names)}
    out: dict[str, list[dict[str, Any]]] = {}
    for split, items in datalists.items():
        out[split] = []
        for index, item in enumerate(items):
            new = remap.get(int(item["label"]))
            if new is None:
                value = datalists.class_names[int(item["label"])]
                raise ValueError(
                    f"{datalists.source}: split {split!r}, item {index} (id {item.get('id')!r}, {item.get('image')}): "
                    f"unknown label value {value!r}; known class names: {names}{closest_names(value, names)}."
                )
            out[split].append({**item, "label": new})
    return Datalists(out, class_names=names, source=datalists.source, report=datalists.report)


@data_errors_for_users
def load_datalists(
    format: str,
    dataset_dir: str | os.PathLike | None = None,
    *,
    class_names: Sequence[str] | None = None,
    splits: Sequence[str] = DEFAULT_SPLITS,
    split_fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    group_key: str = "patient_id",
    max_items_per_split: int | None = None,
    check_files: bool = True,
    warn: bool = True,
    **format_kwargs: Any,
) -> Datalists:
    """Read a dataset in one of :data:`DATA_FORMATS` as validated ``{split: items}`` datalists.

    Args:
        format: ``"medmnist"`` (also MedMNIST-like npz such as the knee KL file), ``"class_folders"``,
            ``"knee_folders"``, ``"isic2018_task3"`` or ``"csv"``; see the module docstring.
        dataset_dir: the file or directory to read; ``None`` reads the ``DATA_DIR`` environment variable.
        class_names: the known classes, in label order (index = label). Given, they fix the class order and
            every label must be one of them: a CSV label, a folder name, an ISIC class or a MedMNIST index
            outside them is an error naming the file, the row (or item) and the value, with the closest known
            names (``melanomaa`` -> ``melanoma``), instead of a new class. ``None`` (default): the classes come
            from the data (CSV values sorted, folder names, the format's own names).
        splits: the splits to return. Splits the source lacks are made from its data: a source without any
            split is divided into ``splits`` by ``split_fractions``; a missing split (e.g. ``test`` of the knee
            npz) is carved out of ``train`` by patient, in the proportion of ``split_fractions``.
        split_fractions: target fractions of the splits (default ``train 0.7, val 0.1, test 0.2``).
        seed: seed of the splitting and of ``max_items_per_split``.
        group_key: item key whose value keeps images together in one split (patients); items without it form
            their own group.
        max_items_per_split: keep at most this many items per split (class-balanced seeded subset; for tests
            and quick demos).
        check_files: check that every image file exists.
        warn: issue the warnings of :func:`validate_datalist`.
        format_kwargs: passed to the format's loader (e.g. ``flag``, ``size``, ``download`` for MedMNIST;
            ``csv_file``, ``label_column``, ``label_map``, ``required_columns`` for CSV). An option the format
            does not take is an error naming it and the format's options.

    Returns:
        :class:`Datalists` with exactly ``splits``, ``class_names`` and ``report``.

    Raises:
        ValueError: an unknown format, an option the format does not take, a label outside ``class_names``,
            or any problem the loader or :func:`validate_datalist` finds.
        FileNotFoundError: missing data (with a hint how to provide it).
    """
    from monai_imbalance.data.splits import DEFAULT_SPLIT_FRACTIONS, split_by_group

    loader = format_loader(format)
    splits = [str(s) for s in splits]
    if not splits:
        raise ValueError("splits must name at least one split.")
    fractions = dict(split_fractions) if split_fractions is not None else dict(DEFAULT_SPLIT_FRACTIONS)
    # switches arrive from the bundle command line as strings ("--data_kwargs#download false")
    format_kwargs = {k: as_bool(v) if k in _SWITCHES else v for k, v in format_kwargs.items()}
    check_files, warn = as_bool(check_files), as_bool(warn)
    check_format_kwargs(format, loader, format_kwargs)
    takes_class_names = "class_names" in inspect.signature(loader).parameters
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if takes_class_names:
            format_kwargs["class_names"] = class_names
    if "warn" in inspect.signature(loader).parameters:
        format_kwargs.setdefault("warn", False)  # the final splits are validated (and warned about) below
    loaded = loader(dataset_dir, **format_kwargs)
    if class_names is not None and loaded.class_names != class_names:
        loaded = reorder_classes(loaded, class_names)

    result: dict[str, list[dict[str, Any]]] = {s: list(v) for s, v in loaded.items() if s != "all"}
    if "all" in loaded and not result:
        missing_fraction = [s for s in splits if s not in fractions]
        if missing_fraction:
            raise ValueError(f"split_fractions has no fraction for split(s) {missing_fraction}.")
        result = split_by_group(loaded["all"], {s: fractions[s] for s in splits}, seed=seed, group_key=group_key)
    else:
        missing = [s for s in splits if s not in result]
        if missing:
            if "train" not in result:
                raise ValueError(
                    f"{format} data in {dataset_dir} has splits {sorted(result)} but neither {missing} nor a "
                    "'train' split to carve them from."
                )
            absent = [s for s in ["train", *missing] if s not in fractions]
            if absent:
                raise ValueError(f"split_fractions has no fraction for split(s) {absent}.")
            carved = split_by_group(
                result["train"], {s: fractions[s] for s in ["train", *missing]}, seed=seed, group_key=group_key
            )
            result.update(carved)
    result = {s: result[s] for s in splits if s in result}
    if max_items_per_split is not None:
        result = subset_per_split(result, max_items_per_split, seed=seed)
    report = validate_datalist(result, class_names=loaded.class_names, check_files=check_files, warn=warn)
    return Datalists(result, class_names=loaded.class_names, source=loaded.source, report=report)
