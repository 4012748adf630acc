"""check_datalists: every file readable, every label known, every needed split non-empty, all reported at once."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_helpers import write_dicom
from PIL import Image

from monai_imbalance.data import DataCheckError, check_datalists, load_datalists
from monai_imbalance.data.check import check_image_file
from monai_imbalance.errors import UserError


def png(path, value=0, size=(6, 4)):
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return str(path)


def test_five_images_with_the_default_split_stop_before_training(tmp_path):
    # issue 12.11: five images split 70/10/20 leave the validation split empty; MONAI then skipped validation and
    # the run exited 0 without a model. The check stops it first, with the sizes and what to change.
    (tmp_path / "nevus").mkdir()
    for i in range(5):
        png(tmp_path / "nevus" / f"img{i}.png", i)
    datalists = load_datalists("class_folders", tmp_path, warn=False)
    assert [len(datalists[s]) for s in ("train", "val", "test")] == [4, 0, 1]
    with pytest.raises(DataCheckError) as info:
        check_datalists(datalists, class_names=datalists.class_names)
    message = str(info.value)
    assert "the 'val' split is empty (items per split: train 4, val 0, test 1)" in message
    assert "--max_items_per_split" in message and "split_fractions" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    # an evaluation needs only the test split
    assert check_datalists(datalists, required_splits=("test",)) == {"train": 4, "val": 0, "test": 1}


def test_every_problem_is_reported_together(tmp_path):
    good = png(tmp_path / "good.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a picture at all")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((tmp_path / "good.png").read_bytes()[:40])  # header intact, chunks cut off
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    datalists = {
        "train": [
            {"image": good, "label": 0, "id": "a"},
            {"image": good, "label": 3, "id": "b"},  # beyond the 2 classes
            {"image": str(tmp_path / "lost.png"), "label": 1, "id": "c"},
        ],
        "val": [
            {"image": str(garbage), "label": 0, "id": "d"},
            {"image": str(truncated), "label": 1, "id": "e"},
            {"image": str(empty), "label": "nevsu", "id": "f"},
            {"label": 0, "id": "g"},
        ],
    }
    with pytest.raises(DataCheckError) as info:
        check_datalists(datalists, class_names=["melanoma", "nevus"])
    problems = info.value.problems
    assert len(problems) == 7
    text = "\n".join(problems)
    assert "split 'train', item 1 (id 'b'): unknown label value 3; the 2 classes ['melanoma', 'nevus']" in text
    assert f"file not found: {tmp_path / 'lost.png'}" in text
    assert f"split 'val', item 0 (id 'd'), 'image': unreadable file {garbage}" in text
    assert f"unreadable file {truncated}" in text  # a corrupt validation image, found before any epoch
    assert f"empty file (0 bytes): {empty}" in text
    assert "unknown label value 'nevsu'; known class names: ['melanoma', 'nevus'] (closest: 'nevus')" in text
    assert "split 'val', item 3 (id 'g'): missing key 'image'" in text
    assert str(info.value).startswith("the data check found 7 problem(s):")


def test_message_stays_short(tmp_path):
    datalists = {"train": [{"image": str(tmp_path / f"lost{i}.png"), "label": 0} for i in range(25)], "val": []}
    with pytest.raises(DataCheckError) as info:
        check_datalists(datalists)
    assert len(info.value.problems) == 26
    lines = str(info.value).splitlines()
    assert len(lines) == 12 and lines[-1].startswith("  ... and 16 more")


def test_files_are_read_at_header_level_by_format(tmp_path):
    dicom = write_dicom(tmp_path / "a.dcm", np.zeros((6, 4), np.uint16))
    broken_dicom = tmp_path / "b.dcm"
    broken_dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 20)
    not_dicom = tmp_path / "c.dcm"
    not_dicom.write_text("a note, not an image")
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    nifti = tmp_path / "a.nii.gz"
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), nifti)
    items = [
        {"image": str(dicom), "label": [png(tmp_path / "m1.png"), png(tmp_path / "m2.png")]},
        {"image": str(tmp_path / "a.npy"), "label": np.zeros((4, 4))},
        {"image": str(nifti), "label": str(broken_dicom)},
        {"image": np.zeros(4), "label": []},
        {"image": str(not_dicom), "label": str(dicom)},
    ]
    with pytest.raises(DataCheckError) as info:
        check_datalists({"train": items, "val": items[:1]})
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 4, text
    assert f"split 'train', item 2, 'label': DICOM file without an image (no Rows/Columns): {broken_dicom}" in text
    assert f"split 'train', item 4, 'image': unreadable file {not_dicom}: InvalidDicomError" in text
    assert "split 'train', item 3, 'image': array of shape (4,) is not an image" in text
    assert "split 'train', item 3: 'label' is an empty list" in text


def test_check_files_false_skips_the_file_reads(tmp_path):
    datalists = {"train": [{"image": str(tmp_path / "lost.png"), "label": 0}], "val": [{"image": "x", "label": 5}]}
    with pytest.raises(DataCheckError) as info:
        check_datalists(datalists, class_names=["a", "b"], check_files=False)
    assert len(info.value.problems) == 1 and "unknown label value 5" in info.value.problems[0]


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])
    return path


def test_cut_off_pixel_data_is_found_without_decoding(tmp_path):
    """Issue 19: a DICOM with half its pixel data passed the check and failed 150 lines later; PNG, JPEG and TIFF
    cut off in their pixel data are found too, and whole files of each format pass."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    whole = {
        "dicom": write_dicom(tmp_path / "whole.dcm", rng.integers(0, 4095, (32, 40)).astype(np.uint16)),
        "png": tmp_path / "whole.png",
        "jpeg": tmp_path / "whole.jpg",
        "tiff": tmp_path / "whole.tif",
    }
    Image.fromarray(picture).save(whole["png"])
    Image.fromarray(picture).save(whole["jpeg"])
    Image.fromarray(rng.integers(0, 65535, (48, 64)).astype(np.uint16)).save(whole["tiff"])
    for path in whole.values():
        assert check_image_file(path) is None, path
    cut = {}
    for name, path in whole.items():
        copy = tmp_path / f"cut_{path.name}"
        copy.write_bytes(path.read_bytes())
        cut[name] = _cut(copy, lambda n: n - 32 * 40) if name == "dicom" else _cut(copy, lambda n: n // 2)
    assert check_image_file(cut["dicom"]) == (
        f"truncated DICOM file {cut['dicom']}: 1280 of the 2560 bytes of pixel data its header declares "
        "(32 x 40 x 1 samples x 1 frame(s) x 16 bits)"
    )
    assert "Truncated File Read" in check_image_file(cut["png"])
    assert check_image_file(cut["jpeg"]).startswith(f"truncated JPEG file {cut['jpeg']}: image file is truncated")
    assert check_image_file(cut["tiff"]).startswith(f"truncated TIFF file {cut['tiff']}: its pixel data end at byte")
    # a JPEG with bytes after its end-of-image marker is whole: decoded to make sure, and passed
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(whole["jpeg"].read_bytes() + b"camera maker notes")
    assert check_image_file(trailing) is None
    # a DICOM header without any pixel data
    header_only = tmp_path / "header_only.dcm"
    header_only.write_bytes(whole["dicom"].read_bytes()[: whole["dicom"].stat().st_size - 2560 - 12])
    assert "without pixel data" in check_image_file(header_only)
    # all of them in one check, each named
    items = [{"image": str(p), "label": 0, "id": n} for n, p in cut.items()]
    with pytest.raises(DataCheckError) as info:
        check_datalists({"train": items, "val": [{"image": str(whole["png"]), "label": 0}]}, class_names=["a"])
    assert len(info.value.problems) == 4
