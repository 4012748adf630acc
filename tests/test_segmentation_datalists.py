"""Segmentation datalists: the real DSB2018 npz (also written in the Kaggle layout), generated ISIC and DRIVE trees."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from monai_imbalance.data import (
    DataCheckError,
    drive_datalist,
    dsb2018_datalist,
    dsb2018_npz_datalist,
    isic2018_task1_datalist,
    load_segmentation_datalists,
    split_segmentation_datalist,
)
from monai_imbalance.transforms import LoadBinaryMaskd, LoadImageOrArrayd

N_DSB = 3


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dsb_npz(shared_data: Path) -> Path:
    return shared_data / "dsb2018" / "dsb2018_256.npz"


@pytest.fixture(scope="module")
def dsb_arrays(dsb_npz: Path) -> dict[str, np.ndarray]:
    with np.load(dsb_npz) as data:
        return {k: data[k][:N_DSB] for k in ("images", "masks", "ids")}


def write_dsb_kaggle_tree(root: Path, arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Write images as RGBA PNGs (as Kaggle ships them) and split each union mask into one PNG per nucleus."""
    counts = {}
    for image, mask, sample_id in zip(arrays["images"], arrays["masks"], arrays["ids"], strict=True):
        sample = root / "stage1_train" / str(sample_id)
        (sample / "images").mkdir(parents=True)
        (sample / "masks").mkdir()
        rgba = np.dstack([image, image, image, np.full_like(image, 255)])
        Image.fromarray(rgba, mode="RGBA").save(sample / "images" / f"{sample_id}.png")
        instances, n = ndimage.label(mask > 0)
        assert n >= 2, "the test needs several nuclei per image"
        for k in range(1, n + 1):
            Image.fromarray(np.where(instances == k, 255, 0).astype(np.uint8)).save(sample / "masks" / f"m{k:04d}.png")
        counts[str(sample_id)] = n
    return counts


@pytest.fixture()
def dsb_tree(tmp_path: Path, dsb_arrays) -> tuple[Path, dict[str, int]]:
    return tmp_path, write_dsb_kaggle_tree(tmp_path, dsb_arrays)


def _random_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.where(rng.random(shape) > 0.7, 255, 0).astype(np.uint8)


ISIC_IDS = ["ISIC_0000000", "ISIC_0000001", "ISIC_0000003", "ISIC_0000004", "ISIC_0000006"]


@pytest.fixture()
def isic_tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """ISIC 2018 task 1 training folders plus the distractors of a real download (task 3 inputs, task 2 masks)."""
    rng = np.random.default_rng(0)
    inputs = tmp_path / "ISIC2018_Task1-2_Training_Input"
    truth = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    task2 = tmp_path / "ISIC2018_Task2_Training_GroundTruth_v3"
    task3 = tmp_path / "ISIC2018_Task3_Training_Input"
    for folder in (inputs, truth, task2, task3):
        folder.mkdir()
    (inputs / "LICENSE.txt").write_text("CC-BY-NC")
    (truth / "ATTRIBUTION.txt").write_text("ISIC")
    masks = {}
    for i, image_id in enumerate(ISIC_IDS):
        h, w = 24 + 2 * i, 32
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(inputs / f"{image_id}.jpg", quality=95)
        masks[image_id] = _random_mask(rng, (h, w))
        Image.fromarray(masks[image_id]).save(truth / f"{image_id}_segmentation.png")
        Image.fromarray(masks[image_id]).save(task2 / f"{image_id}_attribute_globules.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(task3 / "ISIC_0024306.jpg")
    return tmp_path, masks


def write_drive_tree(root: Path, split: str, numbers: list[int], size=(20, 24), with_manual: bool = True):
    """DRIVE layout with TIFF images and GIF annotation / field-of-view masks; returns the arrays written."""
    rng = np.random.default_rng(sum(numbers))
    base = root / "DRIVE" / split
    for sub in ("images", "1st_manual", "mask"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    fov = (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1).astype(np.uint8) * 255
    written = {}
    for n in numbers:
        stem = f"{n:02d}_{split}"
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        vessels = _random_mask(rng, (h, w)) & fov
        Image.fromarray(image).save(base / "images" / f"{stem}.tif")
        Image.fromarray(fov).save(base / "mask" / f"{stem}_mask.gif")
        if with_manual:
            Image.fromarray(vessels).save(base / "1st_manual" / f"{n:02d}_manual1.gif")
        written[stem] = {"image": image, "label": vessels, "mask": fov}
    return written


# ----------------------------------------------------------------------------------------------- DSB 2018
def test_dsb2018_npz_datalist_reads_the_real_file(dsb_npz: Path, dsb_arrays):
    items = dsb2018_npz_datalist(dsb_npz)
    assert len(items) == 334
    assert [it["id"] for it in items[:N_DSB]] == [str(i) for i in dsb_arrays["ids"]]
    assert len({it["id"] for it in items}) == 334
    assert items[0]["image"].shape == items[0]["label"].shape == (256, 256)
    np.testing.assert_array_equal(items[1]["label"], dsb_arrays["masks"][1])


def test_dsb2018_kaggle_layout_pairs_every_image_with_all_its_instance_masks(dsb_tree):
    root, counts = dsb_tree
    items = dsb2018_datalist(root)
    assert [it["id"] for it in items] == sorted(counts)
    for item in items:
        assert item["image"] == str(root / "stage1_train" / item["id"] / "images" / f"{item['id']}.png")
        assert len(item["label"]) == counts[item["id"]]
        assert all(Path(p).parent.name == "masks" for p in item["label"])
    # the stage folder itself works as dataset_dir too
    assert dsb2018_datalist(root / "stage1_train") == items


def test_dsb2018_folders_and_npz_load_to_the_same_tensors(dsb_tree, dsb_arrays):
    """Union of the instance masks == the npz union mask; RGBA file == grey array, pixel for pixel."""
    root, _ = dsb_tree
    by_id = {str(i): k for k, i in enumerate(dsb_arrays["ids"])}
    transform_files = [LoadImageOrArrayd(keys="image", channels=1), LoadBinaryMaskd(keys="label")]
    for item in dsb2018_datalist(root):
        k = by_id[item["id"]]
        from_files = dict(item)
        from_arrays = {"image": dsb_arrays["images"][k], "label": dsb_arrays["masks"][k]}
        for t in transform_files:
            from_files = t(from_files)
            from_arrays = t(from_arrays)
        assert from_files["label"].shape == (1, 256, 256)
        torch.testing.assert_close(from_files["label"].as_tensor(), from_arrays["label"].as_tensor())
        # MONAI's orientation: (1, W, H), the transpose of the rows-first npz array
        expected = (dsb_arrays["masks"][k] > 0).astype(np.float32).T
        np.testing.assert_array_equal(from_files["label"][0].numpy(), expected)
        torch.testing.assert_close(from_files["image"].as_tensor(), from_arrays["image"].as_tensor(), atol=1e-3, rtol=0)


def test_dsb2018_mask_of_another_size_names_the_file(dsb_tree):
    root, _ = dsb_tree
    sample = sorted((root / "stage1_train").iterdir())[1]
    bad = sample / "masks" / "zz_bad.png"
    Image.fromarray(np.zeros((255, 256), np.uint8)).save(bad)
    with pytest.raises(ValueError, match=r"zz_bad\.png is 256x255 pixels .* is 256x256"):
        dsb2018_datalist(root)
    assert len(dsb2018_datalist(root, check_sizes=False)) == N_DSB


def test_dsb2018_missing_masks_and_images_name_the_path(dsb_tree):
    root, _ = dsb_tree
    samples = sorted((root / "stage1_train").iterdir())
    for mask in (samples[0] / "masks").iterdir():
        mask.unlink()
    with pytest.raises(FileNotFoundError, match=rf"no mask for image .*{samples[0].name}\.png"):
        dsb2018_datalist(root)
    (samples[0] / "masks").rmdir()
    with pytest.raises(FileNotFoundError, match="no mask for image"):
        dsb2018_datalist(root)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(samples[0] / "masks.png")  # noise, not a folder
    (samples[0] / "masks").mkdir()
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(samples[0] / "masks" / "m.png")
    (samples[1] / "images" / f"{samples[1].name}.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"no image for sample {samples[1].name}"):
        dsb2018_datalist(root)


def test_dsb2018_empty_or_missing_folders(tmp_path: Path):
    (tmp_path / "stage1_train").mkdir()
    with pytest.raises(ValueError, match="no samples in"):
        dsb2018_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset directory not found"):
        dsb2018_datalist(tmp_path / "absent")
    (tmp_path / "stage1_train").rmdir()
    with pytest.raises(FileNotFoundError, match="stage1_train/<id>/images"):
        dsb2018_datalist(tmp_path)


def test_dsb2018_npz_bad_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="npz file not found"):
        dsb2018_npz_datalist(tmp_path / "none.npz")
    images = np.zeros((2, 8, 8), np.uint8)
    np.savez(tmp_path / "a.npz", images=images)
    with pytest.raises(ValueError, match=r"a\.npz lacks the array\(s\) \['masks'\]"):
        dsb2018_npz_datalist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", images=images, masks=np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="of one size"):
        dsb2018_npz_datalist(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", images=images, masks=images, ids=np.array(["x", "x"]))
    with pytest.raises(ValueError, match="not unique"):
        dsb2018_npz_datalist(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", images=images, masks=images[:1])
    with pytest.raises(ValueError, match="counts must agree"):
        dsb2018_npz_datalist(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", images=images, masks=images)
    assert [it["id"] for it in dsb2018_npz_datalist(tmp_path / "e.npz")] == ["e_0000", "e_0001"]


# ----------------------------------------------------------------------------------------------- splitting
def test_load_segmentation_datalists_splits_the_real_dsb_npz_80_20(shared_data: Path):
    splits = load_segmentation_datalists("dsb2018", shared_data / "dsb2018", seed=0)
    assert sorted(splits) == ["test", "train"]
    assert (len(splits["train"]), len(splits["test"])) == (267, 67)
    train_ids = {it["id"] for it in splits["train"]}
    assert not train_ids & {it["id"] for it in splits["test"]}
    again = load_segmentation_datalists("dsb2018", shared_data / "dsb2018" / "dsb2018_256.npz", seed=0)
    assert [it["id"] for it in again["test"]] == [it["id"] for it in splits["test"]]
    other = load_segmentation_datalists("dsb2018", shared_data / "dsb2018", seed=1)
    assert {it["id"] for it in other["test"]} != {it["id"] for it in splits["test"]}
    whole = load_segmentation_datalists("dsb2018", shared_data / "dsb2018", fractions=None)
    assert len(whole["all"]) == 334


def test_split_is_fixed_by_seed_and_independent_of_item_order():
    items = [{"id": f"img{i:02d}", "image": f"{i}.png", "label": f"{i}_m.png"} for i in range(10)]
    a = split_segmentation_datalist(items, seed=3)
    b = split_segmentation_datalist(list(reversed(items)), seed=3)
    assert (len(a["train"]), len(a["test"])) == (8, 2)
    assert sorted(it["id"] for it in a["test"]) == sorted(it["id"] for it in b["test"])
    three = split_segmentation_datalist(items, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert [len(three[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    with pytest.raises(ValueError, match="unique, non-empty string 'id'"):
        split_segmentation_datalist([{"id": "a"}, {"id": "a"}])
    with pytest.raises(ValueError, match="unknown segmentation data format"):
        load_segmentation_datalists("kvasir", "x")


# ----------------------------------------------------------------------------------------------- ISIC 2018
def test_isic_task1_pairs_inputs_with_segmentation_masks(isic_tree):
    root, masks = isic_tree
    items = isic2018_task1_datalist(root)
    assert [it["id"] for it in items] == ISIC_IDS
    for item in items:
        assert Path(item["image"]).parent.name == "ISIC2018_Task1-2_Training_Input"
        assert Path(item["label"]).name == f"{item['id']}_segmentation.png"
        loaded = LoadBinaryMaskd(keys="label")(LoadImageOrArrayd(keys="image")(item))
        h, w = masks[item["id"]].shape
        assert loaded["image"].shape == (3, w, h)  # MONAI's orientation: columns (x) first
        np.testing.assert_array_equal(loaded["label"][0].numpy(), masks[item["id"]].T > 0)
    splits = load_segmentation_datalists("isic2018_task1", root, seed=0)
    assert (len(splits["train"]), len(splits["test"])) == (4, 1)


def test_isic_explicit_folders_and_other_splits(isic_tree):
    root, _ = isic_tree
    items = isic2018_task1_datalist(
        root, image_dir="ISIC2018_Task1-2_Training_Input", label_dir=root / "ISIC2018_Task1_Training_GroundTruth"
    )
    assert len(items) == len(ISIC_IDS)
    with pytest.raises(FileNotFoundError, match="no ISIC 2018 task 1 Validation Input folder"):
        isic2018_task1_datalist(root, split="validation")
    with pytest.raises(ValueError, match="split must be one of"):
        isic2018_task1_datalist(root, split="train")


def test_isic_missing_mask_names_image_and_expected_mask(isic_tree):
    root, _ = isic_tree
    (root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000003_segmentation.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ISIC_0000003\.jpg: expected .*ISIC_0000003_segmentation\.png"):
        isic2018_task1_datalist(root)


def test_isic_mask_of_another_size_names_the_file(isic_tree):
    root, _ = isic_tree
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(
        root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png"
    )
    with pytest.raises(
        ValueError, match=r"ISIC_0000001_segmentation\.png is 10x10 pixels .*ISIC_0000001\.jpg is 32x26"
    ):
        isic2018_task1_datalist(root)


def test_isic_orphan_mask_warns_and_empty_input_folder_fails(isic_tree):
    root, _ = isic_tree
    (root / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000006.jpg").unlink()
    with pytest.warns(UserWarning, match=r"1 mask\(s\) .* have no image .*ISIC_0000006_segmentation\.png"):
        items = isic2018_task1_datalist(root)
    assert len(items) == len(ISIC_IDS) - 1
    for image in (root / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"):
        image.unlink()
    with pytest.raises(ValueError, match=r"no ISIC_\*\.jpg images in"):
        isic2018_task1_datalist(root)


def test_isic_ambiguous_input_folders(isic_tree):
    root, _ = isic_tree
    (root / "ISIC2018_Task1-2_Training_Input").rename(root / "ISIC2018_TaskA_Training_Input")
    (root / "Other_Training_Input").mkdir()
    with pytest.raises(ValueError, match="several ISIC Training Input folders"):
        isic2018_task1_datalist(root)


# ----------------------------------------------------------------------------------------------- DRIVE
def test_drive_pairs_images_annotations_and_field_of_view(tmp_path: Path):
    train = write_drive_tree(tmp_path, "training", [21, 22, 23])
    test = write_drive_tree(tmp_path, "test", [1, 2])
    items = drive_datalist(tmp_path / "DRIVE")
    assert [it["id"] for it in items] == ["21_training", "22_training", "23_training"]
    assert Path(items[0]["label"]).name == "21_manual1.gif"
    assert Path(items[0]["mask"]).name == "21_training_mask.gif"
    test_items = drive_datalist(tmp_path, split="test")  # the parent of DRIVE/ works too
    assert [(Path(it["image"]).name, Path(it["label"]).name, Path(it["mask"]).name) for it in test_items] == [
        ("01_test.tif", "01_manual1.gif", "01_test_mask.gif"),
        ("02_test.tif", "02_manual1.gif", "02_test_mask.gif"),
    ]
    load = [LoadImageOrArrayd(keys="image"), LoadBinaryMaskd(keys=["label", "mask"])]
    for item in items + test_items:
        for t in load:
            item = t(item)
        arrays = {**train, **test}[item["id"]]
        assert item["image"].shape == (3, 24, 20)  # MONAI's orientation: columns (x) first
        np.testing.assert_array_equal(item["image"].numpy(), np.moveaxis(arrays["image"], -1, 0).swapaxes(1, 2))
        np.testing.assert_array_equal(item["label"][0].numpy(), arrays["label"].T > 0)
        np.testing.assert_array_equal(item["mask"][0].numpy(), arrays["mask"].T > 0)
    splits = load_segmentation_datalists("drive", tmp_path, source_split="test", fractions=None)
    assert [it["id"] for it in splits["all"]] == ["01_test", "02_test"]


def test_drive_test_set_without_annotations(tmp_path: Path):
    write_drive_tree(tmp_path, "test", [1, 2], with_manual=False)
    with pytest.raises(
        FileNotFoundError, match=r"no vessel annotation for image .*01_test\.tif: expected .*01_manual1"
    ):
        drive_datalist(tmp_path, split="test")
    items = drive_datalist(tmp_path, split="test", require_labels=False)
    assert [sorted(it) for it in items] == [["id", "image", "mask"]] * 2


def test_drive_second_observer(tmp_path: Path):
    write_drive_tree(tmp_path, "test", [1])
    (tmp_path / "DRIVE" / "test" / "2nd_manual").mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "DRIVE" / "test" / "2nd_manual" / "01_manual2.gif")
    items = drive_datalist(tmp_path, split="test", manual="2nd_manual")
    assert Path(items[0]["label"]).name == "01_manual2.gif"
    with pytest.raises(ValueError, match="manual must be one of"):
        drive_datalist(tmp_path, manual="3rd_manual")


def test_drive_bad_data_names_the_file(tmp_path: Path):
    write_drive_tree(tmp_path, "training", [21, 22])
    base = tmp_path / "DRIVE" / "training"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(base / "1st_manual" / "22_manual1.gif")
    with pytest.raises(
        ValueError, match=r"vessel annotation .*22_manual1\.gif is 20x20 pixels .*22_training\.tif is 24x20"
    ):
        drive_datalist(tmp_path)
    (base / "mask" / "21_training_mask.gif").unlink()
    with pytest.raises(DataCheckError) as both:  # every problem of the folder, not only the first (issue 19)
        drive_datalist(tmp_path)
    assert len(both.value.problems) == 2 and "22_manual1.gif is 20x20" in both.value.problems[1]
    assert re.search(r"no field-of-view mask for image .*21_training\.tif", both.value.problems[0])
    (base / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(FileNotFoundError, match=r"no field-of-view mask for image .*21_training\.tif"):
        drive_datalist(tmp_path, require_labels=False)
    with pytest.raises(FileNotFoundError, match="DRIVE test folder not found"):
        drive_datalist(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        drive_datalist(tmp_path, split="validation")
    for image in (base / "images").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match="no images in"):
        drive_datalist(tmp_path)


def test_dataset_dir_from_environment(tmp_path: Path, monkeypatch):
    write_drive_tree(tmp_path, "training", [21])
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "DRIVE"))
    assert [it["id"] for it in drive_datalist()] == ["21_training"]


def test_unknown_builder_option_is_refused_readably(tmp_path):
    with pytest.raises(ValueError, match=r"'drive' does not take the option\(s\) \['manuel'\].*did you mean 'manual'"):
        load_segmentation_datalists("drive", tmp_path, manuel="2nd_manual")
