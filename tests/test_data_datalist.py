"""The load_datalists dispatcher, validate_datalist and the Datalists container."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import Datalists, load_datalists, validate_datalist
from monai_imbalance.data.datalist import normalise_label_value, resolve_label_map, subset_per_split


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_validate_reports_counts_and_accepts_arrays(images):
    data = {
        "train": [{"image": images[0], "label": 0, "id": "a"}, {"image": np.zeros((4, 4)), "label": np.int64(2)}],
        "test": [{"image": images[1], "label": 1.0, "id": "a"}],
    }
    report = validate_datalist(data, class_names=["x", "y", "z"], warn=False)
    assert report.class_counts == {"train": [1, 0, 1], "test": [0, 1, 0]}
    assert report.missing_training_classes == ["y"]
    assert report.empty_classes["test"] == ["x", "z"]
    assert report.warnings and "['y']" in report.warnings[0]


def test_validate_errors_name_the_item_file_and_value(images, tmp_path):
    with pytest.raises(ValueError, match=r"img0\.png.*unknown label value 7"):
        validate_datalist([{"image": images[0], "label": 7}], num_classes=3)
    with pytest.raises(ValueError, match="unknown label value True"):
        validate_datalist([{"image": images[0], "label": True}], num_classes=3)
    with pytest.raises(ValueError, match="unknown label value 'B'"):
        validate_datalist([{"image": images[0], "label": "B"}], num_classes=3)
    with pytest.raises(FileNotFoundError, match=r"lost\.png"):
        validate_datalist([{"image": str(tmp_path / "lost.png"), "label": 0}])
    with pytest.raises(ValueError, match=r"missing key\(s\) \['label'\]"):
        validate_datalist([{"image": images[0]}])
    with pytest.raises(ValueError, match="duplicate id 'x'"):
        validate_datalist([{"image": images[0], "label": 0, "id": "x"}, {"image": images[1], "label": 0, "id": "x"}])
    with pytest.raises(ValueError, match="'train' split has no items"):
        validate_datalist({"train": [], "val": [{"image": images[0], "label": 0}]})
    with pytest.raises(ValueError, match="path or an array"):
        validate_datalist([{"image": 5, "label": 0}])


def test_patient_leakage_is_warned(images):
    data = {
        "train": [{"image": images[0], "label": 0, "patient_id": "p1"}],
        "test": [{"image": images[1], "label": 0, "patient_id": "p1"}],
    }
    with pytest.warns(UserWarning, match="more than one split"):
        report = validate_datalist(data)
    assert report.patients_in_several_splits == ["p1"]


def test_dispatcher_medmnist_subset_is_class_balanced(shared_data):
    d = load_datalists("medmnist", shared_data / "medmnist", flag="dermamnist", max_items_per_split=21, seed=5)
    assert isinstance(d, Datalists) and d.num_classes == 7
    assert d.report.class_counts["train"] == [3] * 7
    again = load_datalists("medmnist", shared_data / "medmnist", flag="dermamnist", max_items_per_split=21, seed=5)
    assert [i["id"] for i in again["train"]] == [i["id"] for i in d["train"]]


def test_dispatcher_carves_the_knee_test_split_by_patient(shared_data):
    d = load_datalists("medmnist", shared_data / "knee_kl" / "knee_kl_64_trainval.npz", seed=0)
    assert list(d) == ["train", "val", "test"]
    assert len(d["train"]) + len(d["test"]) == 5778 and len(d["val"]) == 826
    assert abs(len(d["test"]) / 5778 - 0.2 / 0.9) < 0.02
    train_patients = {i["patient_id"] for i in d["train"]}
    assert not train_patients & {i["patient_id"] for i in d["test"]}
    assert d.report.patients_in_several_splits == []


def test_dispatcher_splits_a_pool_and_reads_data_dir(shared_data, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(shared_data / "breast_density_sample"))
    d = load_datalists(
        "class_folders", label_map="birads_density", split_fractions={"train": 3, "test": 1}, splits=("train", "test")
    )
    assert [len(d["train"]), len(d["test"])] == [12, 4]
    assert d.report.class_counts["test"] == [1, 1, 1, 1]


def test_dispatcher_bad_arguments(shared_data, monkeypatch):
    with pytest.raises(ValueError, match="unknown data format 'dicom'"):
        load_datalists("dicom", shared_data)
    with pytest.raises(ValueError, match="no fraction"):
        load_datalists("knee_folders", shared_data / "knee_kl" / "png224_sample", splits=("train", "holdout"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="DATA_DIR"):
        load_datalists("class_folders")


def test_label_maps_and_helpers():
    mapping, names = resolve_label_map("birads_density")
    assert names == ["A", "B", "C", "D"] and mapping["3"] == 2
    assert resolve_label_map(None, ["neg", "pos"]) == ({"neg": 0, "pos": 1}, ["neg", "pos"])
    assert resolve_label_map(None) == (None, None)
    with pytest.raises(ValueError, match="unknown label map"):
        resolve_label_map("birads")
    with pytest.raises(ValueError, match=r"0\.\.K-1"):
        resolve_label_map({"a": 1, "b": 2})
    assert normalise_label_value(" 3.0 ") == "3" and normalise_label_value("3.5") == "3.5"
    items = {"train": [{"label": i % 2, "id": str(i)} for i in range(10)]}
    assert [i["label"] for i in subset_per_split(items, 4)["train"]].count(1) == 2


def test_switches_from_the_command_line_are_read_as_booleans(tmp_path, monkeypatch):
    # "--data_kwargs#download false" arrives as the string "false": it must not start a download
    monkeypatch.delenv("DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_datalists("medmnist", tmp_path, flag="dermamnist", download="false")
    with pytest.raises(ValueError, match="expected a switch"):
        load_datalists("medmnist", tmp_path, flag="dermamnist", download="perhaps")
