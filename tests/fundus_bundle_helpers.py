"""Shared pieces of the fundus bundle tests (rnfld_classification, glaucoma_classification).

There is no public RNFL-defect or glaucoma data here, so the tests write *real* fundus photographs (RetinaMNIST,
diabetic retinopathy grades 0-4, 28 px RGB, from ``../shared/data/medmnist``) into the on-disk layouts the bundles
read, re-labelled by grade into the bundle's classes. :func:`run_in_process` runs a bundle's
``initialize``/``run``/``finalize`` in the test process (no interpreter start-up, ~10 s cheaper than
``bundle_runner.run_bundle``) for behaviour that does not depend on the command line.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bundle_runner import parse_bundle
from PIL import Image

RETINAMNIST = Path("medmnist") / "retinamnist.npz"


def retinamnist(shared_data: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """RetinaMNIST ``(N, 28, 28, 3)`` uint8 fundus images and ``(N,)`` grades of ``split``."""
    with np.load(shared_data / RETINAMNIST) as data:
        return data[f"{split}_images"], data[f"{split}_labels"][:, 0]


def pick_fundus(
    shared_data: Path, split: str, grades_of_class: Mapping[str, Sequence[int]], count: int, offset: int = 0
) -> dict[str, np.ndarray]:
    """``{class: (count, 28, 28, 3) images}``: the RetinaMNIST images of ``split`` whose grade is the class's.

    ``offset`` skips that many images of each class first (to draw disjoint sets from one split).
    """
    images, grades = retinamnist(shared_data, split)
    picked = {}
    for name, class_grades in grades_of_class.items():
        index = np.flatnonzero(np.isin(grades, class_grades))[offset : offset + count]
        if len(index) < count:
            raise ValueError(f"RetinaMNIST {split} has only {len(index)} images of grades {class_grades}")
        picked[name] = images[index]
    return picked


def write_fundus_tree(
    root: Path,
    shared_data: Path,
    grades_of_class: Mapping[str, Sequence[int]],
    counts: Mapping[str, Mapping[str, int]] | None = None,
    flat_counts: Mapping[str, int] | None = None,
) -> list[Path]:
    """Write RetinaMNIST JPEGs as ``root/{split}/{class}/*.jpg`` (``counts[split][class]`` images per class,
    from the same RetinaMNIST split) or, with ``flat_counts``, as ``root/{class}/*.jpg`` (from its train split).
    Returns the written files."""
    written = []
    layout = {None: flat_counts} if flat_counts is not None else dict(counts or {})
    for split, per_class in layout.items():
        for name, count in per_class.items():
            images = pick_fundus(shared_data, split or "train", {name: grades_of_class[name]}, count)[name]
            folder = root / name if split is None else root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                path = folder / f"{split or 'eye'}_{name}_{i:03d}.jpg"
                Image.fromarray(image).save(path, quality=95)
                written.append(path)
    return written


def write_csv_datalist(root: Path, tree: Path, csv_name: str = "datalist.csv") -> Path:
    """A CSV datalist (``image, label, split``; paths relative to ``root``) of a ``{split}/{class}/*.jpg`` tree."""
    rows = [
        {"image": path.relative_to(root).as_posix(), "label": path.parent.name, "split": path.parent.parent.name}
        for path in sorted(tree.glob("*/*/*.jpg"))
    ]
    target = root / csv_name
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return target


def run_parsed(parser):
    """Run a parsed bundle's ``initialize``, ``run`` and ``finalize`` sections in this process; return the parser.

    Runs with one torch thread (as ``run_bundle``'s ``OMP_NUM_THREADS=1``): tiny batches on a shared CPU are
    several times slower with more.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for section in ("initialize", "run", "finalize"):
            parser.get_parsed_content(section)
    finally:
        torch.set_num_threads(threads)
    return parser


def run_in_process(bundle: str, configs: Sequence[str], overrides: Mapping[str, Any]):
    """Parse the bundle as ``monai.bundle run`` does and run it here (:func:`run_parsed`).

    Returns the parser: its instantiated components (e.g. ``parser.get_parsed_content("train#trainer")``) are
    the objects the run used.
    """
    return run_parsed(parse_bundle(bundle, configs, overrides))
