"""End-to-end runs of bundles/nuclei_segmentation on real DSB 2018 images written out in the Kaggle layout (CPU).

The user's command line runs as subprocesses under ``torchrun`` (two Gloo processes); the train -> evaluate ->
inference chain runs the same commands in this process (``run_bundle_in_process``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from monai.transforms import Compose
from PIL import Image
from scipy import ndimage

BUNDLE = "nuclei_segmentation"
pytestmark = pytest.mark.e2e


def kaggle_tree(shared_data, root, count=20):
    """The first ``count`` DSB 2018 npz images as ``stage1_train/<id>/images/<id>.png`` + one mask per nucleus."""
    with np.load(shared_data / "dsb2018" / "dsb2018_256.npz") as data:
        images, masks, ids = data["images"][:count], data["masks"][:count], data["ids"][:count]
    for image, mask, sample in zip(images, masks, ids, strict=True):
        folder = root / "stage1_train" / str(sample)
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        Image.fromarray(image).save(folder / "images" / f"{sample}.png")
        nuclei, number = ndimage.label(mask > 0)  # the Kaggle layout: one binary PNG per nucleus
        for k in range(1, number + 1):
            Image.fromarray(np.where(nuclei == k, 255, 0).astype(np.uint8)).save(folder / "masks" / f"nucleus_{k}.png")
    return root


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: 32 x 32 pixels, a narrow U-Net, two epochs."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"image_size": [32, 32], "network_channels": [4, 8, 16], "batch_size": 7, **overrides}
    )


@pytest.fixture(scope="module")
def dsb_root(shared_data, tmp_path_factory):
    return kaggle_tree(shared_data, tmp_path_factory.mktemp("dsb2018"))


def test_train_evaluate_with_mc_dropout_and_infer(tmp_path, dsb_root):
    args = tiny(tmp_path, dsb_root)
    run_bundle_in_process(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    validation = read_json(models / "metrics.json")["validation"]
    assert validation["num_samples"] == 2 and validation["loss"] == "all" and validation["network"] == "unet"
    assert 1 <= validation["epoch"] <= 2 and 0 <= validation["jaccard"] <= validation["dice"] <= 1

    run_bundle_in_process(BUNDLE, ["train", "evaluate"], {**args, "mc_dropout": True, "mc_samples": 3})
    test = read_json(tmp_path / "eval" / "test-model-mc3" / "metrics.json")["test"]
    assert test["num_samples"] == 4 and test["mc_dropout"] is True and test["mc_samples"] == 3
    for key in ("jaccard", "dice", "recall", "specificity", "auc"):
        assert 0 <= test[key] <= 1
    assert (tmp_path / "eval" / "test-model-mc3" / "overlays.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "logs" / "evaluate" / "test-model-mc3").glob("events.out.tfevents.*"))
    # what the MC uncertainty is worth: pixel uncertainty-error AUROC, Dice of the images kept after referral
    assert test["uncertainty_score"] == "max_probability" and 0 <= test["pixel_uncertainty_auroc"] <= 1
    assert set(test["uncertainty_scores"]) == {"max_probability", "entropy", "mutual_information", "variance"}
    assert all(0 <= row["dice"] <= 1 for row in test["referral"].values()) and 0 <= test["image_aurc"] <= 1
    assert [row["num_retained"] for row in test["referral"].values()] == [4, 4, 3, 3, 2]

    # the held-out split, with an uncertainty map per image, at the images' own 256 x 256 size
    inference = {**args, "predict_test_split": True}
    run_bundle_in_process(BUNDLE, ["train", "inference"], {**inference, "mc_dropout": True, "mc_samples": 3})
    test_ids = [item["id"] for item in parse_bundle(BUNDLE, ["train"], args).get_parsed_content("datalists")["test"]]
    masks = tmp_path / "eval" / "masks"
    expected = sorted([f"{i}_mask.png" for i in test_ids] + [f"{i}_entropy.png" for i in test_ids])
    assert sorted(p.name for p in masks.iterdir()) == expected
    mask = np.asarray(Image.open(masks / f"{test_ids[0]}_mask.png"))
    assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
    # a second run refuses to overwrite the masks
    result = run_bundle_in_process(BUNDLE, ["train", "inference"], inference, expect_failure=True)
    assert "already holds predicted masks" in result.stderr and "--overwrite true" in result.stderr


def test_two_process_gloo_training(tmp_path, dsb_root):
    args = tiny(tmp_path, dsb_root, loss_name="dice", num_epochs=1)
    result = run_bundle(BUNDLE, ["train", "multi_gpu_train"], args, nproc=2)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0 writes alone
    assert "Epoch[1] Metrics" in result.stdout + result.stderr
    assert read_json(tmp_path / "models" / "metrics.json")["validation"]["num_samples"] == 2  # both ranks' images


def test_kaggle_folders_and_npz_give_the_same_tensors(tmp_path, shared_data, dsb_root):
    npz = shared_data / "dsb2018" / "dsb2018_256.npz"
    prepared = {}
    sample = sorted(p.name for p in (dsb_root / "stage1_train").iterdir())[0]
    for source in (dsb_root, npz):
        parser = parse_bundle(BUNDLE, ["train"], tiny(tmp_path, source, image_size=[64, 64]))
        items = {item["id"]: item for split in parser.get_parsed_content("datalists").values() for item in split}
        prepared[source] = Compose(parser.get_parsed_content("preprocessing"))(items[sample])
    folder, array = prepared[dsb_root], prepared[npz]
    assert folder["image"].shape == (3, 64, 64) and folder["label"].shape == (1, 64, 64)
    torch.testing.assert_close(folder["image"].as_tensor(), array["image"].as_tensor())
    torch.testing.assert_close(folder["label"].as_tensor(), array["label"].as_tensor())  # union of the nuclei
    assert 0 < folder["label"].mean() < 1 and folder["image"].min() >= 0 and folder["image"].max() <= 1


@pytest.mark.parametrize(("layout", "message"), [("mask_size", r"nucleus_1\.png is 8x8"), ("missing_mask", r"no mask")])
def test_bad_data_gives_a_clear_error_naming_the_file(tmp_path, shared_data, layout, message):
    root = kaggle_tree(shared_data, tmp_path / "dsb", count=3)
    sample = sorted((root / "stage1_train").iterdir())[1]
    if layout == "mask_size":
        Image.new("L", (8, 8)).save(sample / "masks" / "nucleus_1.png")
    else:
        for path in (sample / "masks").iterdir():
            path.unlink()
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], tiny(tmp_path, root)).get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, (ValueError, FileNotFoundError))
    assert re.search(message, str(error.value.__cause__)) and sample.name in str(error.value.__cause__)
