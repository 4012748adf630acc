"""Seeded, patient-grouped, class-stratified splitting."""

from __future__ import annotations

from collections import Counter

import pytest

from monai_imbalance.data import split_by_group


def items_of(n_patients: int, images_per_patient: int = 1, n_classes: int = 2):
    return [
        {"id": f"{p}_{k}", "patient_id": f"p{p}", "label": p % n_classes}
        for p in range(n_patients)
        for k in range(images_per_patient)
    ]


def test_exact_totals_and_stratification():
    out = split_by_group(items_of(100), {"train": 0.7, "val": 0.1, "test": 0.2}, seed=3)
    assert {s: len(v) for s, v in out.items()} == {"train": 70, "val": 10, "test": 20}
    for split, items in out.items():
        counts = Counter(i["label"] for i in items)
        assert abs(counts[0] - counts[1]) <= 2, (split, counts)


def test_patients_never_straddle_splits_and_every_item_is_kept():
    items = items_of(30, images_per_patient=3, n_classes=3)
    out = split_by_group(items, seed=7)
    patients = {s: {i["patient_id"] for i in v} for s, v in out.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    assert not (patients["val"] & patients["test"])
    assert sorted(i["id"] for v in out.values() for i in v) == sorted(i["id"] for i in items)


def test_seeded_order_independent_and_seed_sensitive():
    items = items_of(40, 2)
    a = split_by_group(items, seed=0)
    b = split_by_group(list(reversed(items)), seed=0)
    assert {s: sorted(i["id"] for i in v) for s, v in a.items()} == {
        s: sorted(i["id"] for i in v) for s, v in b.items()
    }
    c = split_by_group(items, seed=1)
    assert {i["id"] for i in a["test"]} != {i["id"] for i in c["test"]}
    # items keep their input order inside a split
    ids = [i["id"] for i in a["train"]]
    assert ids == [i["id"] for i in items if i["id"] in set(ids)]


def test_tiny_data_still_fills_every_split_it_can():
    out = split_by_group(items_of(16, n_classes=4), {"train": 0.7, "val": 0.1, "test": 0.2})
    assert [len(out[s]) for s in ("train", "val", "test")] == [11, 2, 3]  # 16 f rounded, deficits walked in order


def test_items_without_group_are_their_own_group_and_unstratified_mode():
    items = [{"id": str(i), "label": 0} for i in range(10)]
    out = split_by_group(items, {"a": 0.5, "b": 0.5}, group_key="patient_id")
    assert [len(out["a"]), len(out["b"])] == [5, 5]
    out = split_by_group([{"id": str(i)} for i in range(4)], {"a": 1, "b": 1}, stratify=False)
    assert [len(out["a"]), len(out["b"])] == [2, 2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="fractions"):
        split_by_group(items_of(4), {"train": -1.0, "test": 2.0})
    with pytest.raises(ValueError, match="fractions"):
        split_by_group(items_of(4), {})
    with pytest.raises(ValueError, match="no 'label'"):
        split_by_group([{"id": "x"}], {"train": 1.0})
