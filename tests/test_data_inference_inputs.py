"""What an inference run predicts: unique ids per file, unreadable inputs skipped and listed (or, strict, the first
refused), nothing without an input, the run refusing to start without one."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_imbalance.data import (
    InferenceDatalist,
    MissingInferenceInputError,
    check_inference_input,
    image_folder_datalist,
    inference_datalist,
    report_skipped,
)
from monai_imbalance.data.datalist import unique_ids
from monai_imbalance.errors import UserError


def _picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    return path


def test_same_stem_with_other_extensions_gets_the_file_name_as_id(tmp_path):
    for name in ("x.png", "x.jpg", "y.png"):
        _picture(tmp_path / name)
    items = image_folder_datalist(tmp_path)
    assert [(Path(i["image"]).name, i["id"]) for i in items] == [("x.jpg", "x.jpg"), ("x.png", "x.png"), ("y.png", "y")]


def test_unique_ids_keep_the_shortest_unique_form():
    root = Path("/data")
    paths = [root / p for p in ("a/x.png", "b/x.png", "c/z.png", "c/z.jpg", "scan.nii.gz", "d/scan.nii.gz", "w.png")]
    assert unique_ids(paths, base=root) == [
        "a/x",  # the stem repeats in another folder: the relative path without its suffix
        "b/x",
        "c/z.png",  # the relative path without suffix repeats too: with its suffix
        "c/z.jpg",
        "scan",
        "d/scan",
        "w",
    ]
    assert len(set(unique_ids(paths, base=root))) == len(paths)


def test_unreadable_inputs_are_skipped_with_a_warning_and_listed(tmp_path, caplog):
    _picture(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not a picture")
    (tmp_path / "c.jpg").write_bytes(b"")
    _picture(tmp_path / "d.png")
    with caplog.at_level(logging.WARNING, logger="monai_imbalance.data.inference_inputs"):
        datalist = inference_datalist(tmp_path)
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 2 and "b.png" in warned[0] and "c.jpg" in warned[1]  # one warning per file, at once
        caplog.clear()
        assert [i["id"] for i in datalist] == ["a", "d"]
        assert [Path(path).name for path, _ in datalist.skipped] == ["b.png", "c.jpg"]
        assert report_skipped(datalist) == datalist.skipped
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("skipped 2 unreadable input(s), not predicted:") and "b.png" in message
    assert "empty file (0 bytes)" in message and "c.jpg" in message


def test_strict_stops_at_the_first_unreadable_input(tmp_path):
    _picture(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not a picture")
    (tmp_path / "c.png").write_text("not one either")
    with pytest.raises(UserError, match=r"b\.png.*drop --strict true") as error:
        inference_datalist(tmp_path, strict=True)
    assert isinstance(error.value, ValueError) and "c.png" not in str(error.value)


def test_a_folder_of_only_unreadable_files_and_a_missing_folder_are_errors(tmp_path):
    (tmp_path / "b.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"none of the 1 image file\(s\)"):
        inference_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inference_datalist(tmp_path / "missing")


def test_no_input_builds_an_empty_datalist_and_the_run_refuses_it(tmp_path):
    empty = inference_datalist(None)
    assert isinstance(empty, InferenceDatalist) and list(empty) == [] and empty.skipped == []
    assert report_skipped(empty) == [] and report_skipped([]) == []
    with pytest.raises(MissingInferenceInputError, match=r"nothing to predict: give --input_dir"):
        check_inference_input(input_dir=None)
    with pytest.raises(MissingInferenceInputError, match="not both"):
        check_inference_input(input_dir=str(tmp_path), predict_test_split=True)
    check_inference_input(input_dir=str(tmp_path))
    check_inference_input(input_dir=None, predict_test_split=True)
    assert issubclass(MissingInferenceInputError, (UserError, ValueError))
