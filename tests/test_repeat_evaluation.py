"""Tests of monai_imbalance.data.RepeatEvaluationDataset and repeat_units (true or simulated repeats)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import EnsureTyped, Lambdad

from monai_imbalance.data import REPEAT_UNIT_KEY, RepeatEvaluationDataset, repeat_units
from monai_imbalance.metrics import repeatability_report
from monai_imbalance.transforms import LoadImageOrArrayd


def _items(visits: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = [("p1", "v1", "L"), ("p1", "v1", "L"), ("p1", "v1", "R"), ("p2", "v1", "L"), ("p2", "v2", "L")]
    items = []
    for i, (patient, visit, side) in enumerate(rows):
        item = {"image": rng.integers(0, 255, (12, 12), dtype=np.uint8), "label": i % 2, "id": f"x{i}"}
        item.update(patient_id=patient, side=side)
        if visits:
            item["visit_id"] = visit
        items.append(item)
    return items


LOAD = [LoadImageOrArrayd(keys="image")]
FINAL = EnsureTyped(keys=["image", "label"], track_meta=False)


def test_repeat_units_by_hand():
    items = _items()
    assert repeat_units(items, unit_keys=("side",)) == [
        ("p1", "v1/L"),
        ("p1", "v1/L"),
        ("p1", "v1/R"),
        ("p2", "v1/L"),
        ("p2", "v2/L"),
    ]
    assert repeat_units(items)[2] == ("p1", "v1")  # without side, both knees of a visit are one unit
    items[3].pop("patient_id")
    items[4].pop("visit_id")
    units = repeat_units(items, unit_keys=("side",))
    assert units[3] == ("item:3", "item:3") and units[4] == ("p2", "item:4")
    with pytest.raises(TypeError, match="item 0"):
        repeat_units(["not a dict"])


def test_auto_uses_the_datalists_true_repeats():
    items = _items()
    ds = RepeatEvaluationDataset(items, LOAD, FINAL, unit_keys=["side"])
    assert ds.source == "datalist" and len(ds) == 5
    assert ds.info == {
        "source": "datalist",
        "unit": ["patient_id", "visit_id", "side"],
        "n_images": 5,
        "n_units_with_repeats": 1,
        "n_images_in_repeat_units": 2,
    }
    first = ds[0]
    assert first[REPEAT_UNIT_KEY] == "v1/L" and first["patient_id"] == "p1"
    assert first["image"].shape == (1, 12, 12)
    assert torch.equal(first["image"][0], torch.as_tensor(items[0]["image"]).float().T)  # (1, W, H), MONAI's order
    assert REPEAT_UNIT_KEY not in items[0]  # the user's datalist is not modified
    # the ids that a RepeatabilityHandler reads from the batches group the two p1/v1/L images
    batch = next(iter(DataLoader(ds, batch_size=5)))
    report = repeatability_report(
        torch.linspace(0, 1, 5), batch["patient_id"], num_classes=2, visit_ids=batch[REPEAT_UNIT_KEY], n_boot=0
    )
    assert report["n_patients"] == 1 and report["n_skipped"] == 3
    assert report["per_patient"]["difference"] == pytest.approx([-0.25])


def test_auto_simulates_when_there_are_no_repeats():
    items = _items(visits=False)
    ds = RepeatEvaluationDataset(items, LOAD, FINAL, simulation={"num_repeats": 3, "seed": 1})
    assert ds.source == "simulated" and len(ds) == 15
    assert ds.info["n_source_images"] == 5 and ds.info["num_repeats"] == 3 and ds.info["strength"] == 1.0
    assert ds.info["perturbation"]["seed"] == 1 and "not comparable" in ds.info["note"]
    copies = [ds[i] for i in range(6)]
    assert [c[REPEAT_UNIT_KEY] for c in copies] == ["0", "0", "0", "1", "1", "1"]
    assert [c["patient_id"] for c in copies] == ["p1"] * 6  # the patient is kept: resampled together
    assert not torch.equal(copies[0]["image"], copies[1]["image"])
    assert isinstance(copies[0]["image"], torch.Tensor) and copies[0]["image"].shape == (1, 12, 12)
    again = RepeatEvaluationDataset(items, LOAD, FINAL, simulation={"num_repeats": 3, "seed": 1})
    assert torch.equal(again[4]["image"], copies[4]["image"])


def test_strength_scales_every_perturbation_and_zero_gives_the_original():
    ds = RepeatEvaluationDataset(_items(False), LOAD, simulation={"strength": 2.0, "max_rotation_deg": 1.0})
    p = ds.info["perturbation"]
    assert p["max_rotation_deg"] == 2.0 and p["max_translation"] == pytest.approx(0.04)
    assert p["max_zoom"] == pytest.approx(0.06) and p["noise_std"] == pytest.approx(0.04)
    assert p["gamma_range"] == pytest.approx((0.8, 1.2))
    still = RepeatEvaluationDataset(_items(False), LOAD, FINAL, repeats="simulate", simulation={"strength": 0})
    original = torch.as_tensor(_items(False)[0]["image"]).float().T  # the loader gives MONAI's (1, W, H)
    for i in (0, 1):
        torch.testing.assert_close(still[i]["image"][0], original, atol=1e-3, rtol=0)


def test_each_source_image_is_loaded_once_for_its_copies():
    calls = []
    counting = Lambdad(keys="image", func=lambda x: calls.append(1) or x)
    ds = RepeatEvaluationDataset(_items(False), [*LOAD, counting], repeats="simulate", simulation={"num_repeats": 4})
    for i in range(len(ds)):
        ds[i]
    assert len(calls) == 5


def test_none_and_forced_modes():
    items = _items()
    none = RepeatEvaluationDataset(items, LOAD, repeats="none")
    assert none.source == "none" and none.info == {"source": "none", "n_images": 5}
    assert REPEAT_UNIT_KEY not in none[0]
    forced = RepeatEvaluationDataset(items, LOAD, repeats="Simulate")
    assert forced.source == "simulated" and len(forced) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": "sometimes"}, "repeats must be one of"),
        ({"simulation": {"num_repeat": 3}}, r"unknown simulation keyword\(s\) \['num_repeat'\]"),
        ({"simulation": {"strength": -1}}, "strength must be a number >= 0"),
        ({"simulation": {"strength": 20}}, "gamma range"),
        ({"repeats": "datalist", "unit_keys": "id"}, "no two items share 'patient_id', 'visit_id', 'id'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepeatEvaluationDataset(_items(), LOAD, **kwargs)


def test_empty_datalist():
    with pytest.raises(ValueError, match="empty"):
        RepeatEvaluationDataset([], LOAD)
