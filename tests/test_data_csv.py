"""CSV datalists: DICOM density data with repeats, relative paths, label maps, and the errors they must give."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_helpers import write_dicom

from monai_imbalance.data import load_csv_datalists, load_datalists


@pytest.fixture
def density_csv(tmp_path):
    """Six DICOM mammograms of three patients (two repeats each, one MONOCHROME1) and their CSV."""
    rows = ["image,density,patient_id,visit_id,view,split"]
    for p, density, split in (("p1", "A", "train"), ("p2", "4", "train"), ("p3", "C", "test")):
        for r in range(2):
            photometric = "MONOCHROME1" if (p, r) == ("p2", 1) else "MONOCHROME2"
            write_dicom(tmp_path / "dicom" / p / f"L_CC_{r}.dcm", np.full((8, 6), 100 * r, np.uint16), photometric)
            rows.append(f"dicom/{p}/L_CC_{r}.dcm,{density},{p},v1,L_CC,{split}")
    (tmp_path / "datalist.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_density_csv_with_repeats(density_csv):
    d = load_csv_datalists(density_csv, label_column="density", label_map="birads_density", warn=False)
    assert set(d) == {"train", "test"} and d.class_names == ["A", "B", "C", "D"]
    first = d["train"][0]
    assert first["image"] == str(density_csv / "dicom" / "p1" / "L_CC_0.dcm")
    assert (first["label"], first["patient_id"], first["visit_id"], first["view"]) == (0, "p1", "v1", "L_CC")
    assert [i["label"] for i in d["train"]] == [0, 0, 3, 3]  # "4" is density D
    assert [i["id"] for i in d["test"]] == ["dicom/p3/L_CC_0", "dicom/p3/L_CC_1"]  # stems repeat: relative paths


def test_csv_file_path_and_dispatcher_with_required_columns(density_csv):
    d = load_datalists(
        "csv",
        density_csv / "datalist.csv",
        label_column="density",
        label_map="birads_density",
        required_columns=["patient_id", "visit_id"],
        splits=("train", "test"),
        warn=False,
    )
    assert [len(d["train"]), len(d["test"])] == [4, 2]


def test_missing_patient_column_is_named(density_csv):
    (density_csv / "no_patient.csv").write_text("image,density\ndicom/p1/L_CC_0.dcm,A\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['patient_id'\]"):
        load_csv_datalists(density_csv, "no_patient.csv", label_column="density", required_columns=["patient_id"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label'\]"):
        load_csv_datalists(density_csv, "no_patient.csv")


def test_missing_file_and_unknown_label_name_file_and_value(density_csv):
    (density_csv / "bad.csv").write_text("image,label\ndicom/p1/L_CC_0.dcm,B\ndicom/p9/gone.dcm,A\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.dcm.*line 3"):
        load_csv_datalists(density_csv, "bad.csv", label_map="birads_density")
    (density_csv / "bad.csv").write_text("image,label\ndicom/p1/L_CC_0.dcm,E\n")
    with pytest.raises(ValueError, match=r"L_CC_0\.dcm.*unknown label value 'E'"):
        load_csv_datalists(density_csv, "bad.csv", label_map="birads_density")
    (density_csv / "bad.csv").write_text("image,label,patient_id\ndicom/p1/L_CC_0.dcm,A,\n")
    with pytest.raises(ValueError, match="empty value in required column 'patient_id'"):
        load_csv_datalists(density_csv, "bad.csv", label_map="birads_density", required_columns=["patient_id"])
    (density_csv / "bad.csv").write_text("image,label,split\ndicom/p1/L_CC_0.dcm,A,holdout\n")
    with pytest.raises(ValueError, match="unknown split value 'holdout'"):
        load_csv_datalists(density_csv, "bad.csv", label_map="birads_density")
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        load_csv_datalists(density_csv, "absent.csv")


def test_label_inference_without_a_map(density_csv):
    (density_csv / "ints.csv").write_text("image,label\ndicom/p1/L_CC_0.dcm,2.0\ndicom/p1/L_CC_1.dcm,0\n")
    d = load_csv_datalists(density_csv, "ints.csv", warn=False)
    assert d.class_names == ["0", "1", "2"] and [i["label"] for i in d["all"]] == [2, 0]
    (density_csv / "names.csv").write_text("image,label\ndicom/p1/L_CC_0.dcm,normal\ndicom/p1/L_CC_1.dcm,glaucoma\n")
    d = load_csv_datalists(density_csv, "names.csv", warn=False)
    assert d.class_names == ["glaucoma", "normal"] and [i["label"] for i in d["all"]] == [1, 0]
    d = load_csv_datalists(density_csv, "names.csv", class_names=["normal", "glaucoma"], warn=False)
    assert [i["label"] for i in d["all"]] == [0, 1]


def test_ids_extra_columns_and_absolute_paths(density_csv):
    absolute = density_csv / "dicom" / "p2" / "L_CC_1.dcm"
    (density_csv / "x.csv").write_text(f"image,label,id,laterality\n{absolute},1,scan-7,L\n")
    item = load_csv_datalists(density_csv, "x.csv", extra_columns=["laterality"], warn=False)["all"][0]
    assert (item["image"], item["id"], item["laterality"]) == (str(absolute), "scan-7", "L")
    (density_csv / "dup.csv").write_text(f"image,label,id\n{absolute},1,a\n{absolute},1,a\n")
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        load_csv_datalists(density_csv, "dup.csv", warn=False)


def test_blank_optional_cells_keep_every_item_batchable(density_csv):
    from monai.data import list_data_collate

    csv_path = density_csv / "datalist.csv"
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1].replace(",v1,", ",,")  # one image without a visit id
    csv_path.write_text("\n".join(lines) + "\n")
    d = load_csv_datalists(density_csv, label_column="density", label_map="birads_density", warn=False)
    assert {frozenset(item) for item in d["train"]} == {frozenset(d["train"][1])}  # the same keys everywhere
    assert d["train"][0]["visit_id"] == ""
    batch = list_data_collate([{k: v for k, v in item.items() if k != "image"} for item in d["train"]])
    assert batch["visit_id"] == ["", "v1", "v1", "v1"]


def test_load_datalists_errors_are_user_errors_that_keep_their_builtin_type(density_csv):
    """A bundle run ends in the loader's sentence (UserError), and callers' except clauses still match."""
    from monai_imbalance.errors import DataError, DataNotFoundError, UserError

    (density_csv / "bad.csv").write_text("image,label\ndicom/p1/L_CC_0.dcm,A\ndicom/p1/L_CC_1.dcm,Z\n")
    options = {"csv_file": "bad.csv", "label_map": "birads_density", "splits": ("train",)}
    with pytest.raises(DataError, match=r"bad\.csv.*'Z'") as raised:
        load_datalists("csv", density_csv, **options)
    assert isinstance(raised.value, UserError) and isinstance(raised.value, ValueError)
    with pytest.raises(DataNotFoundError) as missing:
        load_datalists("csv", density_csv / "nowhere", **options)
    assert isinstance(missing.value, (UserError, FileNotFoundError))
