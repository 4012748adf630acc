"""Seeded, patient-grouped, class-stratified train/val/test splitting for data that comes without splits.

All images of one group (a patient, by default the item key ``patient_id``) go to the same split, so no
patient is seen in training and evaluated again. Groups are stratified by their label (the most frequent
label of their images, ties to the smaller label), so every split gets about the same class mix.

Algorithm, for groups ``g`` with label ``y_g`` and target fractions ``f_s`` (normalised to sum to 1):

1. for each class ``c`` in label order, take its groups sorted by key and shuffle them with one
   ``numpy.random.default_rng(seed)`` generator; concatenate the classes in label order;
2. walk through that sequence and give the ``k``-th group (``k = 0, 1, ...``) to the split with the largest
   deficit ``f_s (k + 1) - n_s`` (``n_s``: groups it has so far; ties to the split listed first).

After ``N`` groups every split holds ``f_s N`` groups up to less than one, and since the classes are walked
one after another, each class is divided in about the same proportions (exactly so for large classes;
tiny data still gets every split that ``f_s N >= 1`` asks for, which per-class rounding would starve).
Items keep their input order inside each split.

The result depends only on the items (not on their order) and the seed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_SPLIT_FRACTIONS", "split_by_group"]

#: Default target fractions of the three splits.
DEFAULT_SPLIT_FRACTIONS: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}


def split_by_group(
    items: Sequence[Mapping[str, Any]],
    fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
    group_key: str | None = "patient_id",
    stratify: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Divide ``items`` into splits by group, seeded and stratified by class (see the module docstring).

    Args:
        items: datalist items with ``label`` and (optionally) ``group_key``.
        fractions: ``{split name: target fraction}``; split order is the order of this mapping.
        seed: seed of the shuffling.
        group_key: item key that holds the group (patient); items without it (or ``group_key=None``) are
            their own group, identified by ``id`` (else by position).
        stratify: stratify groups by label; ``False`` shuffles all groups together.

    Returns:
        ``{split: items}`` for every split in ``fractions`` (possibly empty for tiny data).

    Raises:
        ValueError: bad fractions, or items without ``label`` when ``stratify`` is on.
    """
    names = list(fractions)
    f = np.asarray([fractions[s] for s in names], dtype=np.float64)
    if f.size == 0 or (f < 0).any() or not np.isfinite(f).all() or f.sum() <= 0:
        raise ValueError(f"fractions must be non-negative, finite and not all zero, got {dict(fractions)}.")
    f = f / f.sum()
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        value = item.get(group_key) if group_key else None
        key = f"group:{value}" if value not in (None, "") else f"item:{item.get('id', index)}"
        groups[key].append(index)

    strata: dict[int, list[str]] = defaultdict(list)
    for key, members in groups.items():
        if stratify:
            try:
                counts = Counter(int(items[i]["label"]) for i in members)
            except KeyError as e:
                raise ValueError(f"item {members[0]} has no 'label' to stratify on (stratify=False to skip).") from e
            top = max(counts.values())
            strata[min(c for c, n in counts.items() if n == top)].append(key)
        else:
            strata[0].append(key)

    rng = np.random.default_rng(seed)
    order: list[str] = []
    for label in sorted(strata):
        keys = sorted(strata[label])
        order.extend(keys[i] for i in rng.permutation(len(keys)))
    taken = np.zeros(len(names))
    assigned: dict[str, list[int]] = {s: [] for s in names}
    for k, key in enumerate(order):
        target = int(np.argmax(f * (k + 1) - taken))  # argmax returns the first of equal deficits
        taken[target] += 1
        assigned[names[target]].extend(groups[key])
    return {s: [dict(items[i]) for i in sorted(assigned[s])] for s in names}
