"""End-to-end runs of bundles/retinal_vessel_segmentation on a tiny generated DRIVE tree (TIFF images, GIF masks).

The training runs as the user's command line (``python -m monai.bundle run`` in a subprocess); evaluation and
inference run the same commands in this process (``run_bundle_in_process``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from PIL import Image, ImageDraw

BUNDLE = "retinal_vessel_segmentation"
pytestmark = pytest.mark.e2e

SIZE = (60, 56)  # rows, columns (the real DRIVE images are 584 x 565)


def drive_tree(root, seed=0):
    """DRIVE layout: 5 training and 2 test images, each with a circular field of view and line "vessels" in it."""
    rng = np.random.default_rng(seed)
    height, width = SIZE
    rows, cols = np.mgrid[:height, :width]
    fov = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (0.45 * min(SIZE)) ** 2
    for split, numbers in (("training", range(21, 26)), ("test", range(1, 3))):
        for sub in ("images", "1st_manual", "mask"):
            (root / split / sub).mkdir(parents=True)
        for n in numbers:
            drawing = Image.new("L", (width, height), 0)
            for _ in range(4):
                ends = [tuple(int(v) for v in rng.integers(0, [width, height])) for _ in range(2)]
                ImageDraw.Draw(drawing).line(ends, fill=255, width=2)
            vessels = (np.asarray(drawing) > 0) & fov
            grey = np.where(fov, 150, 10) - 70 * vessels + rng.integers(0, 20, SIZE)
            Image.fromarray(np.stack([grey] * 3, -1).clip(0, 255).astype(np.uint8)).save(
                root / split / "images" / f"{n:02d}_{split}.tif"
            )
            Image.fromarray((vessels * 255).astype(np.uint8)).convert("P").save(
                root / split / "1st_manual" / f"{n:02d}_manual1.gif"
            )
            Image.fromarray((fov * 255).astype(np.uint8)).convert("P").save(
                root / split / "mask" / f"{n:02d}_{split}_mask.gif"
            )
    return root


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: 16 x 16 patches, 8 per image and epoch, a narrow U-Net, two epochs."""
    return quick_run_overrides(
        tmp_path,
        dataset_dir,
        {"patch_size": [16, 16], "patches_per_image": 8, "network_channels": [4, 8, 16], **overrides},
    )


def _scores_inside_fov(prediction, truth, fov):
    tp = np.sum(prediction & truth & fov)
    fp = np.sum(prediction & ~truth & fov)
    fn = np.sum(~prediction & truth & fov)
    tn = np.sum(~prediction & ~truth & fov)
    return {"jaccard": tp / (tp + fp + fn), "dice": 2 * tp / (2 * tp + fp + fn), "recall": tp / (tp + fn),
            "specificity": tn / (tn + fp)}  # fmt: skip


def test_patch_training_sliding_window_evaluation_inside_the_fov_and_inference(tmp_path):
    root = drive_tree(tmp_path / "DRIVE")
    args = tiny(tmp_path, root)
    run_bundle(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    validation = read_json(models / "metrics.json")["validation"]
    assert validation["num_samples"] == 1 and validation["loss"] == "all"
    assert (models / "validation_overlays.png").read_bytes()[:4] == b"\x89PNG"

    run_bundle_in_process(BUNDLE, ["train", "evaluate"], args)
    test = read_json(tmp_path / "eval" / "test-model" / "metrics.json")["test"]
    assert test["num_samples"] == 2 and test["mc_dropout"] is False
    assert (
        set(test["uncertainty_scores"]) == {"max_probability", "entropy"} and 0 <= test["pixel_uncertainty_auroc"] <= 1
    )
    assert [row["num_retained"] for row in test["referral"].values()] == [2, 2, 2, 1, 1]
    assert (tmp_path / "eval" / "test-model" / "overlays.png").read_bytes()[:4] == b"\x89PNG"

    # inference on the test folder (--predict_test_split true): whole-image masks, cleared outside the FOV,
    # with the evaluation's scores
    run_bundle_in_process(BUNDLE, ["train", "inference"], {**args, "predict_test_split": True})
    masks = tmp_path / "eval" / "masks"
    assert sorted(p.name for p in masks.iterdir()) == ["01_test_mask.png", "02_test_mask.png"]
    predicted, truth, fov = [], [], []
    for n in (1, 2):
        predicted.append(np.asarray(Image.open(masks / f"{n:02d}_test_mask.png")) == 255)
        truth.append(np.asarray(Image.open(root / "test" / "1st_manual" / f"{n:02d}_manual1.gif").convert("L")) > 0)
        fov.append(np.asarray(Image.open(root / "test" / "mask" / f"{n:02d}_test_mask.gif").convert("L")) > 0)
    assert predicted[0].shape == SIZE and not np.any(predicted[0] & ~fov[0])
    expected = _scores_inside_fov(*(np.stack(x) for x in (predicted, truth, fov)))
    for key, value in expected.items():
        assert test[key] == pytest.approx(value, abs=1e-6), key


def test_training_patches_come_from_inside_the_fov(tmp_path):
    root = drive_tree(tmp_path / "DRIVE")
    parser = parse_bundle(BUNDLE, ["train"], tiny(tmp_path, root, fov_patch_fraction=1.0, patches_per_image=5))
    dataset = parser.get_parsed_content("train#dataset")
    assert len(dataset) == 4 * 5  # 80% of the 5 training images, 5 patches each
    for index in range(len(dataset)):
        (patch,) = dataset[index]
        assert patch["image"].shape == (3, 16, 16) and patch["label"].shape == (1, 16, 16)
        assert patch["mask"][0, 8, 8] == 1  # every patch centre lies inside the field of view
        assert "mask_fg_indices" not in patch
    assert len(dataset._cache) == 4  # one cached image per training image, whatever the patch count


@pytest.mark.parametrize(
    ("layout", "message"),
    [("label_size", r"vessel annotation .*22_manual1\.gif is 20x10"), ("missing_fov", r"no field-of-view mask.*23")],
)
def test_bad_data_gives_a_clear_error_naming_the_file(tmp_path, layout, message):
    root = drive_tree(tmp_path / "DRIVE")
    if layout == "label_size":
        Image.new("P", (20, 10)).save(root / "training" / "1st_manual" / "22_manual1.gif")
    else:
        (root / "training" / "mask" / "23_training_mask.gif").unlink()
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], tiny(tmp_path, root)).get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, (ValueError, FileNotFoundError))
    assert re.search(message, str(error.value.__cause__))
