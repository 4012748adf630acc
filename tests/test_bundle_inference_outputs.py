"""What ``configs/inference.yaml`` writes, run as a user runs it (``python -m monai.bundle run``, here in process)
with the model folder only: fake weights of the configured network, a folder of new images, no training data.

Re-running into the same place is refused in one line with the CLI spelling ``--overwrite true``; two files of
one stem (``x.png``, ``x.jpg``) get two ids; an unreadable image is skipped and listed (``--strict true`` stops
at it); a run without ``--input_dir`` is refused in one line; a segmentation run that dies midway leaves no
folder that looks complete.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle, run_bundle_in_process
from PIL import Image

CLASSIFICATION = "skin_lesion_classification"
SEGMENTATION = "nuclei_segmentation"


def _model_folder(bundle: str, tmp_path: Path, **settings) -> dict:
    """Overrides of a quick inference run, with ``models/model.pt`` holding random weights of that network."""
    overrides = {
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "out"),
        "num_workers": 0,
        "progress_bar": False,
        **settings,
    }
    network = parse_bundle(bundle, ["inference"], overrides).get_parsed_content("network_def")
    (tmp_path / "models").mkdir()
    torch.save(network.state_dict(), tmp_path / "models" / "model.pt")
    return overrides


@pytest.fixture
def classifier(tmp_path) -> dict:
    return _model_folder(CLASSIFICATION, tmp_path, network_name="small_cnn", image_size=32, batch_size=2)


def _pictures(folder: Path, names, size=(40, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_second_run_is_refused_in_one_line_naming_overwrite_true(classifier, tmp_path):
    overrides = {**classifier, "input_dir": str(_pictures(tmp_path / "new", ["a.png", "b.png"]))}
    run_bundle_in_process(CLASSIFICATION, ["inference"], overrides)
    first = (tmp_path / "out" / "predictions.csv").read_text()
    result = run_bundle_in_process(CLASSIFICATION, ["inference"], overrides, expect_failure=True)
    line = _one_line_error(result)
    assert "predictions.csv already exists" in line and "--overwrite true" in line and "overwrite=True" in line
    assert (tmp_path / "out" / "predictions.csv").read_text() == first
    run_bundle_in_process(CLASSIFICATION, ["inference"], {**overrides, "overwrite": True})


def test_files_of_one_stem_get_unique_ids(classifier, tmp_path):
    folder = _pictures(tmp_path / "new", ["x.png", "x.jpg", "y.png"])
    run_bundle_in_process(CLASSIFICATION, ["inference"], {**classifier, "input_dir": str(folder)})
    assert [row["id"] for row in _rows(tmp_path / "out" / "predictions.csv")] == ["x.jpg", "x.png", "y"]


def test_an_unreadable_image_is_skipped_and_listed_and_strict_stops(classifier, tmp_path):
    folder = _pictures(tmp_path / "new", ["a.png", "c.png"])
    (folder / "b.png").write_text("not a picture")
    result = run_bundle_in_process(CLASSIFICATION, ["inference"], {**classifier, "input_dir": str(folder)})
    assert [row["id"] for row in _rows(tmp_path / "out" / "predictions.csv")] == ["a", "c"]
    log = result.stdout
    warning, listing = log.index("skipping an unreadable input"), log.index("skipped 1 unreadable input(s)")
    assert warning < log.index("predictions to") < listing  # warned at the start, listed again at the end
    assert "b.png" in log[warning : warning + 400] and "b.png" in log[listing:]

    strict = {**classifier, "input_dir": str(folder), "strict": True, "output_dir": str(tmp_path / "strict")}
    result = run_bundle_in_process(CLASSIFICATION, ["inference"], strict, expect_failure=True)
    assert "b.png" in _one_line_error(result) and "--strict true" in result.stderr
    assert not (tmp_path / "strict").exists()


def test_without_input_dir_or_with_a_missing_one_the_run_is_refused_in_one_line(classifier, tmp_path):
    result = run_bundle_in_process(CLASSIFICATION, ["inference"], classifier, expect_failure=True)
    assert "nothing to predict: give --input_dir" in _one_line_error(result)
    missing = {**classifier, "input_dir": str(tmp_path / "missing")}
    result = run_bundle_in_process(CLASSIFICATION, ["inference"], missing, expect_failure=True)
    assert "missing does not exist or is not a folder" in _one_line_error(result)


class _Killed(BaseException):
    """Stands in for SIGTERM: not an ``Exception``, so neither ignite nor the runner handles it."""


def test_interrupted_segmentation_inference_leaves_no_complete_looking_output(tmp_path):
    from ignite.engine import Events

    overrides = _model_folder(SEGMENTATION, tmp_path, image_size=[32, 32], batch_size=1)
    overrides["input_dir"] = str(_pictures(tmp_path / "new", [f"n{i}.png" for i in range(4)], size=(32, 32)))
    masks = tmp_path / "out" / "masks"

    def kill_at_the_third_image(parser):
        def kill(engine):
            raise _Killed

        parser.get_parsed_content("evaluator").add_event_handler(Events.ITERATION_COMPLETED(once=3), kill)

    with pytest.raises(_Killed):
        run_bundle_in_process(SEGMENTATION, ["inference"], overrides, before_run=kill_at_the_third_image)
    assert not masks.exists()  # nothing that looks like a result
    partial = tmp_path / "out" / ".masks.partial"
    assert sorted(p.name for p in partial.iterdir()) == ["n0_mask.png", "n1_mask.png", "n2_mask.png"]

    run_bundle_in_process(SEGMENTATION, ["inference"], overrides)  # the next run replaces the partial set
    assert sorted(p.name for p in masks.iterdir()) == [f"n{i}_mask.png" for i in range(4)]
    assert not partial.exists()
    result = run_bundle_in_process(SEGMENTATION, ["inference"], overrides, expect_failure=True)
    assert "already holds predicted masks" in _one_line_error(result) and "--overwrite true" in result.stderr
