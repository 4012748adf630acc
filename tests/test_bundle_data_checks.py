"""The bundles check their data before any training (issue 12): data options per format, unknown labels, mask
binarisation, empty splits and unreadable images, each reproduced on tiny real data (DermaMNIST pictures in the
ISIC 2018 task 3 and CSV layouts, DSB 2018 nuclei in the Kaggle layout) and run in this process."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle, quick_run_overrides, run_bundle_in_process
from monai.transforms import Compose
from PIL import Image

from monai_imbalance.data import ISIC_TASK3_CLASSES

SKIN = "skin_lesion_classification"
NUCLEI = "nuclei_segmentation"
pytestmark = pytest.mark.e2e


def dermamnist_pictures(shared_data, count):
    """The first ``count`` DermaMNIST training pictures, ``(count, 28, 28, 3)`` uint8."""
    with np.load(shared_data / "medmnist" / "dermamnist.npz") as data:
        return data["train_images"][:count]


def isic_task3_training_folder(shared_data, root, count):
    """``count`` real pictures in the ISIC 2018 task 3 layout, training folder only (no split of its own):
    ``ISIC2018_Task3_Training_Input/ISIC_*.jpg`` and the one-hot ground-truth CSV, classes in turn."""
    inputs = root / "ISIC2018_Task3_Training_Input"
    truth = root / "ISIC2018_Task3_Training_GroundTruth"
    inputs.mkdir(parents=True)
    truth.mkdir()
    rows = ["image," + ",".join(ISIC_TASK3_CLASSES)]
    for i, picture in enumerate(dermamnist_pictures(shared_data, count)):
        Image.fromarray(picture).save(inputs / f"ISIC_{i:07d}.jpg")
        diagnosis = ISIC_TASK3_CLASSES[i % len(ISIC_TASK3_CLASSES)]
        rows.append(f"ISIC_{i:07d}," + ",".join("1.0" if c == diagnosis else "0.0" for c in ISIC_TASK3_CLASSES))
    (truth / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    return root


def skin_csv(shared_data, root, labels, splits):
    """``root/datalist.csv`` (image, label, split) over real pictures ``lesion_<i>.png``; returns the CSV path."""
    root.mkdir(parents=True)
    rows = ["image,label,split"]
    pictures = dermamnist_pictures(shared_data, len(labels))
    for i, (picture, label, split) in enumerate(zip(pictures, labels, splits, strict=True)):
        Image.fromarray(picture).save(root / f"lesion_{i}.png")
        rows.append(f"lesion_{i}.png,{label},{split}")
    csv_file = root / "datalist.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    return csv_file


def tiny_skin(tmp_path, dataset_dir, **settings):
    return quick_run_overrides(
        tmp_path,
        dataset_dir,
        {"network_name": "small_cnn", "image_size": 16, "batch_size": 3, "num_epochs": 1, **settings},
    )


def assert_stopped_before_training(result, tmp_path):
    output = result.stdout + result.stderr
    assert "Epoch[1]" not in output and not (tmp_path / "models").exists(), output[-3000:]


def test_isic_command_without_data_kwargs_and_empty_split(tmp_path, shared_data):
    """Issues 12.7 and 12.11: `--data_format isic2018_task3` needs no `--data_kwargs "{}"`; five images with the
    default 70/10/20 split stop before training with the split sizes and the override that fixes it, which works."""
    root = isic_task3_training_folder(shared_data, tmp_path / "ISIC2018", count=5)
    args = tiny_skin(tmp_path, root, data_format="isic2018_task3", loss_name="focal")

    result = run_bundle_in_process(SKIN, ["train"], args, expect_failure=True)
    assert "the 'val' split is empty (items per split: train 4, val 0, test 1)" in result.stderr
    assert "--split_fractions" in result.stderr and "Traceback" not in result.stderr
    assert_stopped_before_training(result, tmp_path)

    fraction_args = {**args, "split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}}  # the hint's own example
    result = run_bundle_in_process(SKIN, ["train"], fraction_args)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert "unexpected keyword argument" not in result.stdout + result.stderr


def test_unknown_label_names_file_row_and_value(tmp_path, shared_data):
    """Issue 12.4: a CSV label outside the bundle's class names is an error, not an eighth class."""
    labels = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC", "melanomaa"]
    csv_file = skin_csv(shared_data, tmp_path / "data", labels, ["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    args = tiny_skin(tmp_path, csv_file.parent, data_format="csv")
    result = run_bundle_in_process(SKIN, ["train"], args, expect_failure=True)
    assert re.search(rf"{re.escape(str(csv_file))}, line 9 .*unknown label value 'melanomaa'", result.stderr)
    assert "'MEL'" in result.stderr  # the closest known name
    assert_stopped_before_training(result, tmp_path)


def test_corrupt_validation_image_found_before_training(tmp_path, shared_data):
    """Issue 12.10: an unreadable validation picture (and a missing test one) are reported together, by file,
    before the first training epoch; `--check_data_files false` skips the reads (very large data sets)."""
    labels = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC", "MEL"]
    csv_file = skin_csv(shared_data, tmp_path / "data", labels, ["train"] * 5 + ["val"] * 2 + ["test"])
    corrupt = csv_file.parent / "lesion_5.png"
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a truncated download
    args = tiny_skin(tmp_path, csv_file.parent, data_format="csv")
    result = run_bundle_in_process(SKIN, ["train"], args, expect_failure=True)
    assert "the data check found 1 problem(s)" in result.stderr
    assert re.search(r"split 'val', item 0.*'image': unreadable file .*lesion_5\.png", result.stderr)
    assert_stopped_before_training(result, tmp_path)

    # the opt-out: labels and splits only (focal: LMF's margins need training images of every class; no caching:
    # initialize builds the trainer, whose cached dataset would read every file)
    opt_out = {**args, "check_data_files": False, "loss_name": "focal", "cache_rate": 0}
    parser = parse_bundle(SKIN, ["train"], opt_out)
    parser.get_parsed_content("initialize")


def test_nuclei_masks_with_background_stored_as_one(tmp_path, shared_data):
    """Issue 12.5: masks stored as 1 (background) and 255 (nuclei) give their true foreground, not 100 %;
    `--mask_threshold 0` ("any non-zero value") gives the old all-foreground masks, with a warning."""
    with np.load(shared_data / "dsb2018" / "dsb2018_256.npz") as data:
        images, masks, ids = data["images"][:10], data["masks"][:10], data["ids"][:10]
    for image, mask, sample in zip(images, masks, ids, strict=True):
        folder = tmp_path / "dsb" / "stage1_train" / str(sample)
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        Image.fromarray(image).save(folder / "images" / f"{sample}.png")
        Image.fromarray(np.where(mask > 0, 255, 1).astype(np.uint8)).save(folder / "masks" / "nuclei.png")
    args = quick_run_overrides(tmp_path, tmp_path / "dsb", {"image_size": [256, 256], "batch_size": 4})  # exact shares

    parser = parse_bundle(NUCLEI, ["train"], args)
    parser.get_parsed_content("initialize")  # the data check passes
    item = parser.get_parsed_content("datalists")["train"][0]
    label = Compose(parser.get_parsed_content("preprocessing"))(item)["label"]
    truth = masks[[str(s) for s in ids].index(item["id"])] > 0
    assert 0 < float(label.mean()) < 0.5
    np.testing.assert_array_equal(label[0].numpy().T, truth)  # MONAI's (W, H) layout

    parser = parse_bundle(NUCLEI, ["train"], {**args, "mask_threshold": 0})
    with pytest.warns(UserWarning, match="implausible mask: 100%"):
        label = Compose(parser.get_parsed_content("preprocessing"))(item)["label"]
    assert float(label.mean()) == 1.0


def test_a_nan_loss_stops_the_run_at_once_in_one_line(tmp_path, shared_data):
    """Issue 19 (Why 3): a loss that turns NaN (here: NaN weights from the start of epoch 2) stops at that
    iteration, naming the epoch, the iteration and the last good checkpoint (epoch 1's), instead of failing at
    validation hundreds of lines later; no checkpoint of the NaN epoch is written."""
    from bundle_runner import tiny_dermamnist_overrides
    from ignite.engine import Events

    def poison_at_epoch_2(parser):
        network = parser.get_parsed_content("network")

        def poison(engine):
            with torch.no_grad():
                next(network.parameters()).fill_(float("nan"))

        parser.get_parsed_content("train#trainer").add_event_handler(Events.EPOCH_STARTED(once=2), poison)

    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=3, loss_name="ce")
    result = run_bundle_in_process(SKIN, ["train"], args, expect_failure=True, before_run=poison_at_epoch_2)
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.search(r"the training loss is nan at epoch 2, iteration 1 of \d+ \(iteration \d+ overall\)", error[0])
    last = tmp_path / "models" / "last_checkpoint_epoch=1.pt"
    assert f"the last good checkpoint is {last}" in error[0]
    assert sorted(p.name for p in (tmp_path / "models").glob("last_checkpoint_epoch=*.pt")) == [last.name]


@pytest.mark.parametrize("loading", ["cached", "workers"])
def test_nan_pixels_of_an_image_file_stop_naming_the_file(tmp_path, shared_data, loading):
    """Issue 19 (Why 3): a float TIFF with NaN pixels ended 309 lines later, at validation, after a NaN loss; now
    its pre-processing stops in one line naming the file, whether the image is cached or read by a worker."""
    labels = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC", "MEL"]
    csv_file = skin_csv(shared_data, tmp_path / "data", labels, ["train"] * 5 + ["val"] * 2 + ["test"])
    picture = np.asarray(Image.open(csv_file.parent / "lesion_2.png").convert("L"), dtype=np.float32) / 255.0
    picture[3, 4] = np.nan
    Image.fromarray(picture).save(csv_file.parent / "lesion_2.tif")
    csv_file.write_text(csv_file.read_text().replace("lesion_2.png", "lesion_2.tif"))
    settings = {"cache_rate": 0, "num_workers": 1} if loading == "workers" else {}
    args = tiny_skin(tmp_path, csv_file.parent, data_format="csv", loss_name="ce", **settings)
    result = run_bundle_in_process(SKIN, ["train"], args, expect_failure=True)
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert re.search(r"lesion_2\.tif: [13] NaN and 0 infinite pixel value\(s\) of \d+; replace them", error[0]), error
    assert not list((tmp_path / "models").glob("last_checkpoint_epoch=*.pt"))
