"""Issue 19: non-integral and NaN labels in every format, NaN/inf pixels in arrays, and every problem of a file
listed at once (capped, with the count), each naming its file and row; tiny files in each format's layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import DataCheckError, check_datalists, load_datalists, validate_datalist
from monai_imbalance.data.check import DataFilesNotFoundError, label_value_problem, non_finite_items
from monai_imbalance.data.segmentation_datalists import dsb2018_npz_datalist
from monai_imbalance.errors import UserError


def _npz(path, train_labels, train_images=None, **more):
    images = train_images if train_images is not None else np.zeros((len(train_labels), 4, 4), np.uint8)
    val = {"val_images": np.zeros((2, 4, 4), np.uint8), "val_labels": np.array([[0], [1]])}
    np.savez(path, train_images=images, train_labels=np.asarray(train_labels).reshape(-1, 1), **val, **more)
    return path


def test_label_value_problem():
    assert label_value_problem(2) is None and label_value_problem(2.0) is None and label_value_problem("B") is None
    assert label_value_problem(1.7).startswith("is not a whole number")
    assert label_value_problem(float("nan")) == "is missing (NaN)"
    assert label_value_problem(np.float32("inf")) == "is infinite"
    assert label_value_problem(-1).startswith("is negative")
    assert label_value_problem(True) is None  # not a number label: the class check refuses it


def test_npz_float_and_nan_labels_are_refused_not_truncated(tmp_path):
    """1.7 was read as class 1 (int() truncates); NaN failed as 'cannot convert float NaN to integer'."""
    path = _npz(tmp_path / "knee.npz", [0.0, 1.7, 1.0, np.nan, 2.0])
    with pytest.raises(DataCheckError) as info:
        load_datalists("medmnist", path, splits=("train", "val"), warn=False)
    assert info.value.problems == [
        f"{path}: train_labels[1] = 1.7 is not a whole number (a class index is 0, 1, 2, ...)",
        f"{path}: train_labels[3] = nan is missing (NaN)",
    ]
    assert isinstance(info.value, UserError)
    whole = _npz(tmp_path / "whole.npz", [0.0, 1.0, 2.0])  # float labels that are whole numbers stay fine
    assert [i["label"] for i in load_datalists("medmnist", whole, splits=("train", "val"), warn=False)["train"]] == [
        0,
        1,
        2,
    ]


def test_npz_nan_and_inf_pixels_are_found_at_load(tmp_path):
    images = np.random.default_rng(0).random((4, 5, 5)).astype(np.float32)
    images[1, 2, 3], images[3, 0, 0] = np.nan, -np.inf
    path = _npz(tmp_path / "float.npz", [0, 1, 0, 1], train_images=images)
    with pytest.raises(DataCheckError) as info:
        load_datalists("medmnist", path, splits=("train", "val"), warn=False)
    assert info.value.problems == [
        f"{path}: train_images[1] holds NaN or infinite pixel values (1 of 25)",
        f"{path}: train_images[3] holds NaN or infinite pixel values (1 of 25)",
    ]
    assert non_finite_items(np.zeros((3, 2, 2), np.uint8)) == []
    big = np.zeros((50, 1024, 1024), np.float32)  # 200 MB: read in chunks
    big[37, 5, 5] = np.nan
    assert non_finite_items(big) == [37]


def test_dsb_npz_nan_pixels_name_the_item(tmp_path):
    images = np.zeros((3, 4, 4), np.float32)
    images[2, 1, 1] = np.inf
    path = tmp_path / "dsb.npz"
    np.savez(path, images=images, masks=np.zeros((3, 4, 4), np.uint8), ids=np.array(["a", "b", "c"]))
    with pytest.raises(DataCheckError, match=r"dsb\.npz: images\[2\] \(id 'c'\) holds NaN or infinite values"):
        dsb2018_npz_datalist(path)


def _csv_folder(tmp_path, rows):
    for i in range(6):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "datalist.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_csv_lists_every_problem_not_the_first(tmp_path):
    """An unknown label hid a missing image: now both, and every other problem, are listed with their lines."""
    root = _csv_folder(
        tmp_path,
        ["img0.png,0", "img1.png,1.7", "img2.png,nan", "gone.png,1", "img3.png,", "img4.png,-1", "img5.png,2"],
    )
    with pytest.raises(DataCheckError) as info:
        load_datalists("csv", root, splits=("train",), warn=False)
    csv = root / "datalist.csv"
    assert info.value.problems == [
        f"{csv}, line 3 ({root / 'img1.png'}): label '1.7' in column 'label' is not a whole number (a class index "
        "is 0, 1, 2, ...).",
        f"{csv}, line 4 ({root / 'img2.png'}): label 'nan' in column 'label' is missing (NaN).",
        f"image file not found: {root / 'gone.png'} ({csv}, line 5).",
        f"{csv}, line 6 ({root / 'img3.png'}): empty label cell in column 'label'.",
        f"{csv}, line 7 ({root / 'img4.png'}): label '-1' in column 'label' is negative (a class index is 0, 1, "
        "2, ...).",
    ]
    assert str(info.value).startswith("the data check found 5 problem(s):")
    # with a label map the same values are refused too, and an unknown label no longer hides a missing image
    (root / "mapped.csv").write_text("image,label\nimg0.png,2\nimg1.png,2.5\ngone.png,7\n")
    with pytest.raises(DataCheckError) as info:
        load_datalists("csv", root, csv_file="mapped.csv", label_map="kl_grade", splits=("train",), warn=False)
    assert len(info.value.problems) == 3
    assert "label '2.5' in column 'label' is not a whole number" in info.value.problems[0]
    assert "image file not found" in info.value.problems[1] and "unknown label value '7'" in info.value.problems[2]


def test_only_missing_files_stay_a_file_not_found_error(tmp_path):
    root = _csv_folder(tmp_path, ["img0.png,0", "gone1.png,1", "gone2.png,1"])
    with pytest.raises(DataFilesNotFoundError) as info:
        load_datalists("csv", root, splits=("train",), warn=False)
    assert isinstance(info.value, FileNotFoundError) and len(info.value.problems) == 2


def test_many_problems_are_capped_in_the_message_with_the_count(tmp_path):
    root = _csv_folder(tmp_path, [f"img{i % 6}.png,{i}.5" for i in range(25)])
    with pytest.raises(DataCheckError) as info:
        load_datalists("csv", root, splits=("train",), warn=False)
    message = str(info.value)
    assert message.startswith("the data check found 25 problem(s):") and len(info.value.problems) == 25
    assert message.count("\n  - ") == 10 and "... and 15 more" in message


def test_isic_ground_truth_lists_every_bad_row(tmp_path):
    from monai_imbalance.data import ISIC_TASK3_CLASSES

    inputs, truth = tmp_path / "ISIC2018_Task3_Training_Input", tmp_path / "ISIC2018_Task3_Training_GroundTruth"
    inputs.mkdir()
    truth.mkdir()
    k = len(ISIC_TASK3_CLASSES)
    rows = ["image," + ",".join(ISIC_TASK3_CLASSES)]
    rows += ["ISIC_0," + ",".join(["1.0"] + ["0.0"] * (k - 1)), "ISIC_1," + ",".join(["nan"] + ["0.0"] * (k - 1))]
    rows += ["ISIC_2," + ",".join(["0.5", "0.5"] + ["0.0"] * (k - 2)), "ISIC_3," + ",".join(["x"] * k)]
    csv = truth / "ISIC2018_Task3_Training_GroundTruth.csv"
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataCheckError) as info:
        load_datalists("isic2018_task3", tmp_path, splits=("train",), warn=False)
    lines = [p.split(": image")[0] for p in info.value.problems]
    assert lines == [f"{csv}, line 3", f"{csv}, line 4", f"{csv}, line 5"]


def test_in_memory_labels_name_the_item(tmp_path):
    items = [{"image": np.zeros((4, 4)), "label": v, "id": f"x{i}"} for i, v in enumerate([0, 1.7, float("nan"), 1])]
    with pytest.raises(DataCheckError) as info:
        check_datalists({"train": items, "val": items[:1]}, class_names=["a", "b"])
    assert info.value.problems == [
        "split 'train', item 1 (id 'x1'): label 1.7 is not a whole number (a class index is 0, 1, 2, ...); the 2 "
        "classes ['a', 'b'] take the labels 0..1",
        "split 'train', item 2 (id 'x2'): label nan is missing (NaN); the 2 classes ['a', 'b'] take the labels 0..1",
    ]
    with pytest.raises(DataCheckError) as info:
        validate_datalist({"train": items}, class_names=["a", "b"], warn=False)
    assert len(info.value.problems) == 2 and "label nan is missing (NaN)" in info.value.problems[1]


def test_class_folders_list_every_unknown_folder_and_bad_name(tmp_path):
    for folder in ("train/0", "train/1", "train/11", "train/x", "val/0"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("train/0/9001L.png", "train/1/9001L.png", "train/1/bad.png", "val/0/9002R.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    with pytest.raises(DataCheckError) as info:
        load_datalists("knee_folders", tmp_path, class_names=["0", "1"], splits=("train", "val"), warn=False)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert "unknown label value '11'" in problems[0] and "unknown label value 'x'" in problems[1]
    assert "'9001L' appears in two class folders" in problems[2] and "'bad.png'" in problems[3]


def test_in_memory_arrays_with_nan_are_found_by_the_data_check():
    good, bad = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    bad[1, 1], bad[2, 2] = np.nan, np.inf
    items = [{"image": good, "label": 0, "id": "a"}, {"image": bad, "label": 1, "id": "b"}]
    with pytest.raises(DataCheckError) as info:
        check_datalists({"train": items, "val": items[:1]}, class_names=["x", "y"])
    assert info.value.problems == ["split 'train', item 1 (id 'b'), 'image': 2 NaN or infinite value(s) of 16"]
