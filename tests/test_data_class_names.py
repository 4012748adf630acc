"""Known class names: a label outside them is an error naming the file, row and value (issue 12.4), and the
format options of another format are refused with a readable message (issue 12.7)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import ISIC_TASK3_CLASSES, load_datalists
from monai_imbalance.data.datalist import closest_names

SKIN = ["melanoma", "nevus", "carcinoma"]


def write_skin_csv(root, labels):
    lines = ["image,label"]
    for i, label in enumerate(labels):
        Image.fromarray(np.full((4, 6, 3), i, np.uint8)).save(root / f"img{i}.png")
        lines.append(f"img{i}.png,{label}")
    (root / "datalist.csv").write_text("\n".join(lines) + "\n")


def test_misspelt_csv_label_is_an_error_naming_file_row_and_value(tmp_path):
    labels = ["melanoma", "nevus", "carcinoma", "nevus", "melanomaa"]
    write_skin_csv(tmp_path, labels)
    with pytest.raises(ValueError) as info:
        load_datalists("csv", tmp_path, class_names=SKIN, warn=False)
    message = str(info.value)
    assert "datalist.csv, line 6" in message  # header is line 1, the fifth row is line 6
    assert "img4.png" in message and "'melanomaa'" in message
    assert "(closest: 'melanoma')" in message


def test_without_class_names_the_classes_still_come_from_the_data(tmp_path):
    # today's behaviour, kept: the misspelt value becomes a class of its own (sorted names)
    write_skin_csv(tmp_path, ["melanoma", "nevus", "carcinoma", "nevus", "melanomaa"])
    d = load_datalists("csv", tmp_path, splits=["all"], split_fractions={"all": 1.0}, warn=False)
    assert d.class_names == ["carcinoma", "melanoma", "melanomaa", "nevus"]


def test_class_names_fix_the_class_order(tmp_path):
    write_skin_csv(tmp_path, ["nevus", "carcinoma", "melanoma"])
    d = load_datalists("csv", tmp_path, class_names=SKIN, splits=["all"], split_fractions={"all": 1.0}, warn=False)
    assert d.class_names == SKIN
    assert [(item["id"], item["label"]) for item in d["all"]] == [("img0", 1), ("img1", 2), ("img2", 0)]


def test_unknown_class_folder_names_the_closest_class(tmp_path):
    for name in ("normal", "glaucma"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name / "a.png")
    with pytest.raises(ValueError, match=r"'glaucma'.*\(closest: 'glaucoma'\)"):
        load_datalists("class_folders", tmp_path, class_names=["normal", "glaucoma"], warn=False)


def test_medmnist_label_outside_the_class_names_names_file_split_and_row(tmp_path):
    path = tmp_path / "toy.npz"
    labels = {"train": [0, 1, 0, 1], "val": [0, 1], "test": [0, 2]}
    arrays = {f"{s}_images": np.zeros((len(v), 4, 4), np.uint8) for s, v in labels.items()}
    arrays.update({f"{s}_labels": np.asarray(v, np.uint8)[:, None] for s, v in labels.items()})
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"toy\.npz: test_labels\[1\] = 2 is an unknown label value"):
        load_datalists("medmnist", path, class_names=["a", "b"], warn=False)
    assert load_datalists("medmnist", path, class_names=["a", "b", "c"], warn=False).class_names == ["a", "b", "c"]


def make_isic(root, rows):
    inp = root / "ISIC2018_Task3_Training_Input"
    gt = root / "ISIC2018_Task3_Training_GroundTruth"
    inp.mkdir()
    gt.mkdir()
    lines = ["image," + ",".join(ISIC_TASK3_CLASSES)]
    for image, cls in rows:
        lines.append(image + "," + ",".join("1.0" if c == cls else "0.0" for c in ISIC_TASK3_CLASSES))
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(inp / f"{image}.jpg")
    (gt / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("\n".join(lines) + "\n")


def test_isic_classes_are_reordered_by_name_and_unknown_ones_refused(tmp_path):
    make_isic(tmp_path, [("ISIC_1", "MEL"), ("ISIC_2", "NV"), ("ISIC_3", "VASC")])
    one_split = {"splits": ["train"], "split_fractions": {"train": 1.0}, "warn": False}
    order = ["NV", "MEL", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    d = load_datalists("isic2018_task3", tmp_path, class_names=order, **one_split)
    assert d.class_names == order
    assert [(i["id"], i["label"]) for i in d["train"]] == [("ISIC_1", 1), ("ISIC_2", 0), ("ISIC_3", 6)]
    with pytest.raises(ValueError, match=r"id 'ISIC_3'.*unknown label value 'VASC'.*\['MEL', 'NV'\]"):
        load_datalists("isic2018_task3", tmp_path, class_names=["MEL", "NV"], **one_split)


def test_options_of_another_format_are_refused_readably(tmp_path):
    # issue 12.7: the skin bundle's MedMNIST data_kwargs passed on to isic2018_task3 gave a bare TypeError
    make_isic(tmp_path, [("ISIC_1", "MEL")])
    with pytest.raises(ValueError) as info:
        load_datalists("isic2018_task3", tmp_path, flag="dermamnist", size=28, download=True)
    message = str(info.value)
    assert "'isic2018_task3' does not take the option(s) ['flag', 'size', 'download']" in message
    assert "options of the 'medmnist' format" in message
    assert "'image_suffix'" in message and "--data_kwargs" in message
    with pytest.raises(ValueError, match=r"'label_colum': did you mean 'label_column'\?"):
        load_datalists("csv", tmp_path, label_colum="density")


def test_closest_names():
    assert closest_names("melanomaa", SKIN) == " (closest: 'melanoma')"
    assert closest_names("MEL ", ["mel", "nv"]) == " (closest: 'mel')"
    assert closest_names("xyz", SKIN) == ""
