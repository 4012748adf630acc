"""Tests of monai_imbalance.data.RepeatAcquisitions (simulated repeat acquisitions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_imbalance.data import RepeatAcquisitions


def _items(n: int = 3, size: int = 24) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        # a smooth blob so that small shifts change pixels only a little
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        blob = torch.exp(-((yy - size / 2 - i) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 5) ** 2))
        out.append({"image": (blob + 0.05 * torch.rand(size, size, generator=gen))[None], "label": i % 2})
    return out


def test_length_order_and_derived_ids():
    ds = RepeatAcquisitions(_items(3), num_repeats=4, seed=0)
    assert len(ds) == 12
    items = [ds[i] for i in range(len(ds))]
    assert [it["source_index"] for it in items] == [0] * 4 + [1] * 4 + [2] * 4
    assert [it["repeat_index"] for it in items] == [0, 1, 2, 3] * 3
    assert [it["patient_id"] for it in items] == ["0"] * 4 + ["1"] * 4 + ["2"] * 4
    assert [it["visit_id"] for it in items] == [it["patient_id"] for it in items]
    assert items[5]["label"] == 1 and ds[-1]["source_index"] == 2


def test_existing_ids_are_kept_and_visits_derived_per_source():
    items = _items(3)
    items[0].update(patient_id="p1", visit_id=np.int64(2))
    items[1].update(patient_id=torch.tensor(7))
    ds = RepeatAcquisitions(items, num_repeats=2)
    assert (ds[0]["patient_id"], ds[0]["visit_id"]) == ("p1", "2")
    assert (ds[2]["patient_id"], ds[2]["visit_id"]) == ("7", "1")
    assert (ds[4]["patient_id"], ds[4]["visit_id"]) == ("2", "2")


def test_copies_are_mild_distinct_and_deterministic_per_seed():
    items = _items(2)
    a = RepeatAcquisitions(items, num_repeats=3, seed=5)
    b = RepeatAcquisitions(items, num_repeats=3, seed=5)
    c = RepeatAcquisitions(items, num_repeats=3, seed=6)
    first = [torch.as_tensor(a[i]["image"]) for i in range(6)]
    assert all(torch.equal(x, torch.as_tensor(b[i]["image"])) for i, x in enumerate(first))
    assert torch.equal(first[4], torch.as_tensor(a[4]["image"]))  # same copy again: same image
    assert not torch.equal(first[0], torch.as_tensor(c[0]["image"]))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    original = items[0]["image"]
    for copy in first[:3]:
        assert copy.shape == original.shape
        assert not torch.equal(copy, original)
        assert (copy - original).abs().mean() < 0.15 * original.abs().mean()  # mild
        # fine radiograph texture: a 1-pixel shift already lowers the pixel correlation noticeably
        assert np.corrcoef(copy.ravel(), original.ravel())[0, 1] > 0.75
    assert torch.equal(items[0]["image"], original)  # the source item is not modified


def test_perturbation_can_be_switched_off():
    items = _items(1)
    ds = RepeatAcquisitions(
        items,
        max_rotation_deg=0,
        max_translation=0,
        max_zoom=0,
        intensity_scale=0,
        gamma_range=(1.0, 1.0),
        noise_std=0,
    )
    torch.testing.assert_close(torch.as_tensor(ds[1]["image"]), items[0]["image"], atol=1e-5, rtol=0)


def test_masks_follow_the_spatial_transform_only():
    mask = torch.zeros(1, 24, 24)
    mask[:, 6:18, 8:16] = 1
    items = [{"image": mask.clone(), "mask": mask.clone()}]
    ds = RepeatAcquisitions(
        items, mask_keys="mask", max_rotation_deg=10, max_translation=0.1, intensity_scale=0, noise_std=0, seed=3
    )
    out = ds[1]
    moved_mask, moved_image = torch.as_tensor(out["mask"]), torch.as_tensor(out["image"])
    assert set(moved_mask.unique().tolist()) <= {0.0, 1.0}  # nearest neighbour: still binary
    assert not torch.equal(moved_mask, mask)
    # the image (a bilinear copy of the mask) moved the same way: thresholded it matches the mask
    assert ((moved_image > 0.5).float() != moved_mask).float().mean() < 0.02


def test_three_d_images_and_a_transform_after():
    items = [{"image": torch.rand(1, 8, 10, 12)}]
    ds = RepeatAcquisitions(items, transform=lambda d: {**d, "tag": d["image"].shape})
    assert ds[0]["tag"] == (1, 8, 10, 12)


def test_batches_of_string_ids_collate_for_monai_engines():
    ds = RepeatAcquisitions(Dataset(_items(2)), num_repeats=2)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["patient_id"] == ["0", "0", "1", "1"]
    assert batch["image"].shape == (4, 1, 24, 24)


def test_real_knee_radiographs_keep_their_patient_ids(shared_data):
    with np.load(shared_data / "knee_kl" / "knee_kl_64_trainval.npz") as z:
        images, patients = z["val_images"][:4], z["val_patient_ids"][:4]
    items = [
        {"image": img[None].astype(np.float32) / 255.0, "patient_id": pid}
        for img, pid in zip(images, patients, strict=True)
    ]
    ds = RepeatAcquisitions(items, num_repeats=2, seed=0)
    # left and right knee of one patient: same patient id, separate repeat groups (visit = source index)
    assert [ds[i]["patient_id"] for i in range(8)] == [str(p) for p in np.repeat(patients, 2)]
    assert [ds[i]["visit_id"] for i in range(8)] == ["0", "0", "1", "1", "2", "2", "3", "3"]
    for i in range(8):
        copy = torch.as_tensor(ds[i]["image"]).numpy()[0]
        original = items[i // 2]["image"][0]
        # fine radiograph texture: a 1-pixel shift already lowers the pixel correlation noticeably
        assert np.corrcoef(copy.ravel(), original.ravel())[0, 1] > 0.75


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_repeats": 1}, ValueError, "num_repeats"),
        ({"max_rotation_deg": -1}, ValueError, "max_rotation_deg"),
        ({"max_zoom": 1.0}, ValueError, "max_zoom"),
        ({"gamma_range": (1.2, 0.8)}, ValueError, "gamma_range"),
        ({"noise_std": float("nan")}, ValueError, "noise_std"),
        ({"keys": ()}, ValueError, "keys"),
        ({"mask_keys": "image"}, ValueError, "overlap"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        RepeatAcquisitions(_items(1), **kwargs)


def test_bad_items():
    with pytest.raises(TypeError, match="dict items"):
        RepeatAcquisitions([torch.zeros(1, 4, 4)])[0]
    with pytest.raises(TypeError, match="file name"):
        RepeatAcquisitions([{"image": "/data/knee.png"}])[0]
    with pytest.raises(KeyError, match="'image'"):
        RepeatAcquisitions([{"img": torch.zeros(1, 4, 4)}])[0]
    with pytest.raises(ValueError, match="channel-first 2D or 3D"):
        RepeatAcquisitions([{"image": torch.zeros(4)}])[0]
    with pytest.raises(IndexError):
        RepeatAcquisitions(_items(1))[2]
    with pytest.raises(TypeError, match="sequence"):
        RepeatAcquisitions(3)  # type: ignore[arg-type]
