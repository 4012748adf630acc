"""ISIC 2018 task 3 / HAM10000 datalists from generated trees in the official layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import ISIC_TASK3_CLASSES, load_datalists, load_isic2018_task3_datalists
from monai_imbalance.data.isic_classification import read_isic_ground_truth

HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n"


def one_hot(cls: str) -> str:
    return ",".join("1.0" if c == cls else "0.0" for c in ISIC_TASK3_CLASSES)


def make_split(root, word: str, rows: list[tuple[str, str]], write_images: bool = True):
    inp = root / f"ISIC2018_Task3_{word}_Input"
    inp.mkdir(parents=True)
    (inp / "LICENSE.txt").write_text("license")
    gt_dir = root / f"ISIC2018_Task3_{word}_GroundTruth"
    gt_dir.mkdir()
    lines = [f"{image},{one_hot(cls)}\n" for image, cls in rows]
    (gt_dir / f"ISIC2018_Task3_{word}_GroundTruth.csv").write_text(HEADER + "".join(lines))
    if write_images:
        for image, _ in rows:
            Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(inp / f"{image}.jpg")
    return gt_dir / f"ISIC2018_Task3_{word}_GroundTruth.csv"


def test_official_layout_three_splits_and_lesion_groupings(tmp_path):
    make_split(tmp_path, "Training", [("ISIC_0000001", "MEL"), ("ISIC_0000002", "VASC"), ("ISIC_0000003", "NV")])
    (tmp_path / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text(
        "image,lesion_id,diagnosis_confirm_type\nISIC_0000001,HAM_01,histopathology\nISIC_0000002,HAM_01,serial\n"
    )
    make_split(tmp_path, "Validation", [("ISIC_0000010", "BCC")])
    make_split(tmp_path, "Test", [("ISIC_0000020", "DF"), ("ISIC_0000021", "AKIEC")])
    d = load_isic2018_task3_datalists(tmp_path, warn=False)
    assert d.class_names == ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert {k: [(i["id"], i["label"]) for i in v] for k, v in d.items()} == {
        "train": [("ISIC_0000001", 0), ("ISIC_0000002", 6), ("ISIC_0000003", 1)],
        "val": [("ISIC_0000010", 2)],
        "test": [("ISIC_0000020", 5), ("ISIC_0000021", 3)],
    }
    assert d["train"][0]["patient_id"] == d["train"][1]["lesion_id"] == "HAM_01"
    assert "patient_id" not in d["train"][2]
    assert d["val"][0]["image"].endswith("ISIC2018_Task3_Validation_Input/ISIC_0000010.jpg")


def test_training_only_is_split_by_lesion_through_the_dispatcher(tmp_path):
    rows = [(f"ISIC_{i:07d}", ISIC_TASK3_CLASSES[i % 7]) for i in range(28)]
    make_split(tmp_path, "Training", rows)
    groupings = "".join(f"ISIC_{i:07d},HAM_{i // 2:02d},x\n" for i in range(28))
    (tmp_path / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text("image,lesion_id,type\n" + groupings)
    d = load_datalists("isic2018_task3", tmp_path, seed=1, warn=False)
    assert set(d) == {"train", "val", "test"}
    assert sum(len(v) for v in d.values()) == 28
    lesions = {s: {i["lesion_id"] for i in v} for s, v in d.items()}
    assert not (lesions["train"] & lesions["test"]) and not (lesions["train"] & lesions["val"])


def test_ham10000_release(tmp_path):
    for part, image in (("HAM10000_images_part_1", "ISIC_0024306"), ("HAM10000_images_part_2", "ISIC_0034320")):
        (tmp_path / part).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / part / f"{image}.jpg")
    (tmp_path / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
        "HAM_0000118,ISIC_0024306,nv,follow_up,45,male,trunk\nHAM_0002730,ISIC_0034320,bkl,histo,80,male,scalp\n"
    )
    d = load_isic2018_task3_datalists(tmp_path, warn=False)
    assert [(i["id"], i["label"], i["lesion_id"]) for i in d["all"]] == [
        ("ISIC_0024306", 1, "HAM_0000118"),
        ("ISIC_0034320", 4, "HAM_0002730"),
    ]


def test_bad_ground_truth_and_missing_images(tmp_path):
    gt = make_split(tmp_path / "a", "Training", [("ISIC_1", "MEL")], write_images=False)
    with pytest.raises(FileNotFoundError, match=r"ISIC_1\.jpg"):
        load_isic2018_task3_datalists(tmp_path / "a")
    gt.write_text(HEADER + "ISIC_1,1.0,1.0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"'ISIC_1' is not one-hot"):
        read_isic_ground_truth(gt)
    gt.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF\nISIC_1,1,0,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['VASC'\]"):
        read_isic_ground_truth(gt)
    with pytest.raises(ValueError, match="no ISIC 2018 task 3 data"):
        load_isic2018_task3_datalists(tmp_path / "a" / "ISIC2018_Task3_Training_Input")
