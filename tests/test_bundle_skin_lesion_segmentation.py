"""End-to-end runs of bundles/skin_lesion_segmentation on a tiny generated ISIC 2018 task 1 tree (CPU).

The training runs as the user's command line (``python -m monai.bundle run`` in a subprocess); resuming,
evaluating and inferring run the same commands in this process (``run_bundle_in_process``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from PIL import Image, ImageDraw

BUNDLE = "skin_lesion_segmentation"
pytestmark = pytest.mark.e2e

INPUT = "ISIC2018_Task1-2_Training_Input"
TRUTH = "ISIC2018_Task1_Training_GroundTruth"


def isic_tree(root, count=10, size=(48, 64), seed=0):
    """``count`` JPEG dermoscopy-like pictures (height x width ``size``) with a dark ellipse and its PNG mask."""
    rng = np.random.default_rng(seed)
    (root / INPUT).mkdir(parents=True)
    (root / TRUTH).mkdir(parents=True)
    height, width = size
    for i in range(count):
        name = f"ISIC_{i:07d}"
        mask = Image.new("L", (width, height), 0)
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        rx, ry = rng.uniform(0.15, 0.3) * width, rng.uniform(0.15, 0.3) * height
        ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        lesion = np.asarray(mask) > 0
        skin = np.array([200, 160, 140]) + rng.integers(-15, 15, (height, width, 3))
        picture = np.where(lesion[..., None], skin * 0.45, skin).clip(0, 255).astype(np.uint8)
        Image.fromarray(picture).save(root / INPUT / f"{name}.jpg", quality=95)
        mask.save(root / TRUTH / f"{name}_segmentation.png")
    return root


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: 32 x 48 pixels, a narrow network, two epochs."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"image_size": [32, 48], "network_channels": [8, 16, 32], "batch_size": 4, **overrides}
    )


def test_focusnet_focal_tversky_train_resume_evaluate_and_infer(tmp_path):
    args = tiny(tmp_path, isic_tree(tmp_path / "ISIC2018"), network_name="focusnet", loss_name="focal_tversky")
    run_bundle(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert (models / "validation_overlays.png").read_bytes()[:4] == b"\x89PNG"
    validation = read_json(models / "metrics.json")["validation"]
    assert validation["num_samples"] == 1 and validation["network"] == "focusnet"
    assert validation["loss"] == "focal_tversky"
    for key in ("jaccard", "dice", "recall", "specificity"):
        assert 0 <= validation[key] <= 1
    assert validation["auc"] is None or 0 <= validation["auc"] <= 1

    # an earlier run is never overwritten silently; --resume true continues it
    with pytest.raises(RuntimeError) as error:
        parse_bundle(BUNDLE, ["train"], {**args, "num_epochs": 3}).get_parsed_content("resume_path")
    assert "--resume true" in str(error.value.__cause__)
    result = run_bundle_in_process(BUNDLE, ["train"], {**args, "num_epochs": 3, "resume": True})
    log = result.stdout + result.stderr
    assert "Restored all variables" in log and "Epoch[3]" in log and "Epoch[1]" not in log
    assert (models / "last_checkpoint_epoch=3.pt").is_file()

    run_bundle_in_process(BUNDLE, ["train", "evaluate"], args)
    test = read_json(tmp_path / "eval" / "test-model" / "metrics.json")["test"]
    assert test["num_samples"] == 2 and test["mc_dropout"] is False
    assert {"jaccard", "dice", "recall", "specificity", "auc"} <= set(test)
    assert (tmp_path / "eval" / "test-model" / "overlays.png").read_bytes()[:4] == b"\x89PNG"

    # masks for new images come back at each image's own size (the first is a different size)
    folder = tmp_path / "new"
    folder.mkdir()
    Image.fromarray(np.full((30, 50, 3), 120, np.uint8)).save(folder / "lesion_a.jpg")
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(folder / "lesion_b.png")
    run_bundle_in_process(BUNDLE, ["train", "inference"], {**args, "input_dir": str(folder)})
    masks = tmp_path / "eval" / "masks"
    assert sorted(p.name for p in masks.iterdir()) == ["lesion_a_mask.png", "lesion_b_mask.png"]
    first = np.asarray(Image.open(masks / "lesion_a_mask.png"))
    assert first.shape == (30, 50) and set(np.unique(first)) <= {0, 255}
    assert np.asarray(Image.open(masks / "lesion_b_mask.png")).shape == (48, 64)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("mask_size", r"ISIC_0000003_segmentation\.png is 20x10"),
        ("missing_mask", r"no ground-truth mask.*ISIC_0000002"),
    ],
)
def test_bad_data_gives_a_clear_error_naming_the_file(tmp_path, layout, message):
    root = isic_tree(tmp_path / "ISIC2018", count=4)
    if layout == "mask_size":
        Image.new("L", (20, 10)).save(root / TRUTH / "ISIC_0000003_segmentation.png")
    else:
        (root / TRUTH / "ISIC_0000002_segmentation.png").unlink()
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], tiny(tmp_path, root)).get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, (ValueError, FileNotFoundError))
    assert re.search(message, str(error.value.__cause__))


def test_split_is_seeded_80_20_with_a_validation_share(tmp_path):
    root = isic_tree(tmp_path / "ISIC2018", count=20, size=(8, 8))
    seeds = [{"split_seed": 0}, {"split_seed": 0, "seed": 1}, {"split_seed": 1}]  # the split ignores --seed
    splits = [parse_bundle(BUNDLE, ["train"], tiny(tmp_path, root, **s)).get_parsed_content("datalists") for s in seeds]
    sizes = {name: len(items) for name, items in splits[0].items()}
    assert sizes == {"train": 14, "val": 2, "test": 4}
    ids = [{name: [item["id"] for item in items] for name, items in split.items()} for split in splits]
    assert ids[0] == ids[1] and ids[0]["test"] != ids[2]["test"]
    assert not set(ids[0]["test"]) & (set(ids[0]["train"]) | set(ids[0]["val"]))
