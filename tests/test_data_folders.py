"""Class-per-folder datalists: the real knee PNG sample and density JPEGs, generated trees, bad layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import load_class_folder_datalists, load_knee_folder_datalists


def touch_png(path, value: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)
    return path


def test_real_knee_sample(shared_data):
    root = shared_data / "knee_kl" / "png224_sample"
    d = load_knee_folder_datalists(root)
    assert set(d) == {"train", "val"}
    assert d.class_names == ["0", "1", "2", "3", "4"]
    assert d.report.class_counts == {"train": [8] * 5, "val": [8] * 5}
    item = next(i for i in d["train"] if i["id"] == "9003126R")
    assert item["image"] == str(root / "train" / "0" / "9003126R.png")
    assert (item["label"], item["patient_id"], item["side"], item["knee_id"]) == (0, "9003126", "R", "9003126R")
    for split, items in d.items():
        for it in items:
            assert it["label"] == int(it["class_name"]) and f"/{split}/{it['class_name']}/" in it["image"]


def test_real_density_jpegs_with_birads_map(shared_data):
    d = load_class_folder_datalists(shared_data / "breast_density_sample", label_map="birads_density")
    assert list(d) == ["all"] and len(d["all"]) == 16
    assert d.class_names == ["A", "B", "C", "D"]
    assert {i["id"]: i["label"] for i in d["all"]}["sample_C3"] == 2


def test_generated_tree_with_split_aliases_and_class_names(tmp_path):
    touch_png(tmp_path / "Training" / "glaucoma" / "a.png")
    touch_png(tmp_path / "Training" / "normal" / "b.PNG")
    touch_png(tmp_path / "Training" / "normal" / ".hidden.png")
    (tmp_path / "Training" / "normal" / "notes.txt").write_text("not an image")
    touch_png(tmp_path / "validation" / "normal" / "c.png")
    touch_png(tmp_path / "extra" / "normal" / "z.png")  # not a split folder: ignored
    d = load_class_folder_datalists(tmp_path, class_names=["normal", "glaucoma"])
    assert set(d) == {"train", "val"}
    assert sorted((i["id"], i["label"]) for i in d["train"]) == [("a", 1), ("b", 0)]
    assert d.report.missing_training_classes == []
    assert d.report.empty_classes["val"] == ["glaucoma"]


def test_numeric_class_folders_sort_numerically_and_duplicate_stems_get_paths(tmp_path):
    for grade in ("2", "10", "1"):
        touch_png(tmp_path / grade / "same.png")
    d = load_class_folder_datalists(tmp_path)
    assert d.class_names == ["1", "2", "10"]
    assert sorted(i["id"] for i in d["all"]) == ["1/same", "10/same", "2/same"]


def test_unknown_class_folder_names_the_folder(tmp_path):
    touch_png(tmp_path / "A" / "x.png")
    touch_png(tmp_path / "E" / "y.png")
    with pytest.raises(ValueError, match=r"unknown label value 'E'.*[/\\]E"):
        load_class_folder_datalists(tmp_path, label_map="birads_density")


def test_empty_or_missing_dataset_dir(tmp_path):
    with pytest.raises(ValueError, match="no images found"):
        load_class_folder_datalists(tmp_path)
    (tmp_path / "A").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_class_folder_datalists(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_class_folder_datalists(tmp_path / "nowhere")


def test_knee_file_name_checks(tmp_path):
    touch_png(tmp_path / "train" / "0" / "9001L.png")
    touch_png(tmp_path / "train" / "3" / "9001L.png")  # the same knee graded twice
    with pytest.raises(ValueError, match=r"'9001L' appears in two class folders"):
        load_knee_folder_datalists(tmp_path)
    (tmp_path / "train" / "3" / "9001L.png").unlink()
    touch_png(tmp_path / "train" / "1" / "knee_9002.png")
    with pytest.raises(ValueError, match=r"knee_9002\.png.*does not match"):
        load_knee_folder_datalists(tmp_path)


def test_knee_grade_without_training_images_is_reported(tmp_path):
    touch_png(tmp_path / "train" / "0" / "1L.png")
    touch_png(tmp_path / "train" / "1" / "2R.png")
    touch_png(tmp_path / "val" / "4" / "3L.png")
    with pytest.warns(UserWarning, match="no sample in the 'train' split"):
        d = load_knee_folder_datalists(tmp_path)
    assert d.report.missing_training_classes == ["2", "3", "4"]


def test_custom_id_pattern_fields(tmp_path):
    touch_png(tmp_path / "B" / "p17_v2_RMLO.png")
    d = load_class_folder_datalists(
        tmp_path, label_map="birads_density", id_pattern=r"(?P<patient>p\d+)_(?P<visit>v\d+)_(?P<view>\w+)"
    )
    item = d["all"][0]
    assert (item["patient_id"], item["visit_id"], item["view"], item["label"]) == ("p17", "v2", "RMLO", 1)


def test_image_folder_datalist(tmp_path):
    from monai_imbalance.data import image_folder_datalist

    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_datalist(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no image"):
        image_folder_datalist(tmp_path)
    picture = Image.fromarray(np.zeros((4, 4), np.uint8))
    picture.save(tmp_path / "b.png")
    (tmp_path / "sub").mkdir()
    picture.save(tmp_path / "sub" / "b.png")
    picture.save(tmp_path / "sub" / "a.jpg")
    assert image_folder_datalist(tmp_path) == [{"image": str(tmp_path / "b.png"), "id": "b"}]
    items = image_folder_datalist(tmp_path, recursive=True)
    # ids are file stems, or relative paths where a stem repeats
    assert [(Path(item["image"]).relative_to(tmp_path).as_posix(), item["id"]) for item in items] == [
        ("b.png", "b"),
        ("sub/a.jpg", "a"),
        ("sub/b.png", "sub/b"),
    ]
