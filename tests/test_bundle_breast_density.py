"""End-to-end runs of bundles/breast_density: DICOM mammograms with a CSV datalist (true repeats: the two views
of one examination) and the 16 real density-labelled JPEG mammograms in class folders (CPU, tiny settings).

The DICOM files are generated from the real mammograms (downsized, 12-bit, some MONOCHROME1, some with a VOI
window) with ``tests/dicom_helpers.py``; the CSV mixes the density spellings A-D and 1-4.

The training fixture runs the user's command line (``python -m monai.bundle run`` in a subprocess); the
other runs execute the same commands in this process (``run_bundle_in_process``).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import sys

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from dicom_helpers import write_dicom
from PIL import Image

BUNDLE = "breast_density"
pytestmark = pytest.mark.e2e
CLASSES = ["A", "B", "C", "D"]


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: small CNN, 32 px, no workers."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"network_name": "small_cnn", "image_size": 32, "batch_size": 8, **overrides}
    )


def _mammogram(path, size: int = 96) -> np.ndarray:
    """A real mammogram, decoded at reduced size, as 12-bit values (rows, columns)."""
    with Image.open(path) as image:
        image.draft("L", (size * 2, size * 2))
        grey = image.convert("L")
        grey.thumbnail((size, size))
        return np.asarray(grey, dtype=np.uint16) * 16


def _write_view(path, pixels: np.ndarray, monochrome1: bool, window: bool, patient: str) -> None:
    tags = {"PatientID": patient}
    if window:
        tags.update(WindowCenter=2048, WindowWidth=4096)
    stored = 4095 - pixels if monochrome1 else pixels  # MONOCHROME1: the minimum value is displayed white
    write_dicom(path, stored, photometric="MONOCHROME1" if monochrome1 else "MONOCHROME2", **tags)


@pytest.fixture(scope="module")
def dicom_data(tmp_path_factory, shared_data):
    """16 patients (one per real mammogram), two views (CC, MLO) of one visit each, as DICOM + datalist.csv.

    Per density class: two patients train, one val, one test (four test patients, each with a repeat pair).
    """
    root = tmp_path_factory.mktemp("density_dicom")
    rows = [["image", "density", "patient_id", "visit_id", "view", "split"]]
    for c, letter in enumerate(CLASSES):
        for k, jpeg in enumerate(sorted((shared_data / "breast_density_sample" / letter).glob("*.jpg"))):
            patient = f"P{letter}{k}"
            split = ["train", "train", "val", "test"][k]
            pixels = _mammogram(jpeg)
            views = {"CC": pixels, "MLO": np.roll(pixels, 3, axis=0)}  # the second view: repositioned
            for v, (view, image) in enumerate(views.items()):
                name = f"{patient}/v1/{view}.dcm"
                _write_view(root / name, image, monochrome1=(k + v) % 2 == 1, window=k == 0, patient=patient)
                density = letter if v == 0 else str(c + 1)  # both spellings: A-D and 1-4
                rows.append([name, density, patient, "v1", view, split])
    with open(root / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dicom_data):
    root = tmp_path_factory.mktemp("density_run")
    args = tiny(root, dicom_data)
    run_bundle(BUNDLE, ["train"], args)  # the user's command line, once per bundle
    return root, args


def test_dicom_training_and_mc_evaluation_with_true_repeats(trained, tmp_path):
    root, args = trained
    validation = read_json(root / "models" / "metrics.json")["validation"]
    assert validation["class_names"] == CLASSES and validation["num_samples"] == 8

    out = tmp_path / "eval"
    overrides = {**args, "output_dir": str(out), "log_dir": str(tmp_path / "logs")}
    overrides.update({"mc_dropout": True, "mc_samples": 3, "n_boot": 50})
    run_bundle_in_process(BUNDLE, ["train", "evaluate"], overrides)
    metrics = read_json(out / "test-model-mc3" / "metrics.json")
    assert metrics["test"]["num_samples"] == 8 and metrics["test"]["class_names"] == CLASSES
    assert {"ece", "classwise_ece", "brier", "aurc", "referral"} <= set(metrics["test"])
    rep = metrics["repeatability"]
    assert rep["repeats"] == {
        "source": "datalist",
        "unit": ["patient_id", "visit_id"],
        "n_images": 8,
        "n_units_with_repeats": 4,
        "n_images_in_repeat_units": 8,
    }
    assert rep["n_patients"] == 4 and rep["n_images"] == 8 and rep["n_skipped"] == 0
    assert sorted(rep["per_patient"]["patient_id"]) == ["PA3", "PB3", "PC3", "PD3"]
    assert 0 <= rep["disagreement_rate"] <= 1 and rep["loa_pm"] is not None and rep["mc_dropout"] is True
    assert (out / "test-model-mc3" / "bland_altman.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "logs" / "evaluate" / "test-model-mc3").glob("events.out.tfevents.*"))


def test_in_process_run_is_the_command_line_run(trained, tmp_path):
    """``run_bundle_in_process`` (used by most bundle tests) gives what the subprocess gave the fixture: the same
    metrics and recorded settings (the overrides read back from the command line), the same log and refusal,
    and leaves this process as it was."""
    root, args = trained
    here = {**args, "ckpt_dir": str(tmp_path / "models"), "log_dir": str(tmp_path / "logs")}
    state = (os.getcwd(), sys.argv[:], logging.getLogger().handlers[:], torch.get_num_threads(), torch.get_rng_state())
    result = run_bundle_in_process(BUNDLE, ["train"], here)
    assert (os.getcwd(), sys.argv, logging.getLogger().handlers, torch.get_num_threads()) == state[:4]
    assert torch.equal(torch.get_rng_state(), state[4])
    assert "Epoch[2] Metrics" in result.stdout and result.returncode == 0
    command_line, in_process = (
        read_json(root / "models" / "metrics.json"),
        read_json(tmp_path / "models" / "metrics.json"),
    )
    assert in_process["validation"] == command_line["validation"]
    for key in ("ckpt_dir", "log_dir"):  # the only overrides that differ
        assert in_process["settings"]["overrides"].pop(key) == here[key]
        assert command_line["settings"]["overrides"].pop(key) == args[key]
    assert in_process["settings"] == command_line["settings"]
    refused = run_bundle_in_process(BUNDLE, ["train"], here, expect_failure=True)  # as the command prints it
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "--resume true" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_monochrome1_and_window_give_the_same_network_input(dicom_data, tmp_path):
    picture = (np.arange(40 * 24).reshape(40, 24) * 4).astype(np.uint16)
    _write_view(tmp_path / "m2.dcm", picture, monochrome1=False, window=False, patient="x")
    _write_view(tmp_path / "m1.dcm", picture, monochrome1=True, window=False, patient="x")
    _write_view(tmp_path / "w.dcm", picture, monochrome1=True, window=True, patient="x")
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(dicom_data), "image_size": 32})
    transform = parser.get_parsed_content("validate#preprocessing")
    images = [transform({"image": str(tmp_path / n), "label": 0})["image"] for n in ("m2.dcm", "m1.dcm", "w.dcm")]
    assert images[0].shape == (1, 32, 32) and images[0].dtype == torch.float32
    torch.testing.assert_close(images[1], images[0], atol=1e-5, rtol=0)  # MONOCHROME1 inverted back
    assert float(images[0].max()) > 0.95 and float(images[0].min()) == 0.0  # percentiles stretch to [0, 1]
    # the window maps the full 12-bit range (the percentile fallback stretches it): darker, same order
    assert float(images[2].max()) < 1.0
    assert torch.corrcoef(torch.stack([images[0].flatten(), images[2].flatten()]))[0, 1] > 0.99


def test_real_jpeg_mammograms_in_class_folders_and_inference(tmp_path, shared_data, dicom_data):
    folders = shared_data / "breast_density_sample"
    args = tiny(tmp_path, folders, data_format="class_folders", num_epochs=1, batch_size=4, loss_name="focal")
    datalists = parse_bundle(BUNDLE, ["train"], args).get_parsed_content("datalists")
    assert datalists.class_names == CLASSES and sum(len(v) for v in datalists.values()) == 16
    run_bundle_in_process(BUNDLE, ["train"], args)
    run_bundle_in_process(BUNDLE, ["train", "evaluate"], {**args, "n_boot": 20})
    rep = read_json(tmp_path / "eval" / "test-model" / "metrics.json")["repeatability"]
    assert rep["repeats"]["source"] == "simulated" and rep["n_patients"] == len(datalists["test"])

    # predictions for new images of both kinds, JPEG and DICOM, as the MONAI model-zoo bundle does for JPEGs
    new = tmp_path / "new"
    new.mkdir()
    (new / "jpeg_mammogram.jpg").write_bytes((folders / "C" / "sample_C1.jpg").read_bytes())
    (new / "dicom_mammogram.dcm").write_bytes((dicom_data / "PD3" / "v1" / "CC.dcm").read_bytes())
    run_bundle_in_process(BUNDLE, ["train", "inference"], {**args, "input_dir": str(new)})
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == ["dicom_mammogram", "jpeg_mammogram"]
    assert all(row["predicted_class"] in CLASSES for row in rows)
    np.testing.assert_allclose([sum(float(row[f"prob_{c}"]) for c in CLASSES) for row in rows], 1.0, atol=1e-4)


def test_unreadable_dicom_names_the_file(tmp_path, dicom_data):
    data = tmp_path / "data"
    (data / "bad").mkdir(parents=True)
    (data / "bad" / "broken.dcm").write_bytes(b"this is not a DICOM file")
    rows = [r.split(",") for r in (dicom_data / "datalist.csv").read_text().splitlines()]
    rows = [rows[0]] + [[str(dicom_data / r[0]), *r[1:]] for r in rows[1:]]
    rows.append(["bad/broken.dcm", "B", "PX", "v1", "CC", "val"])
    (data / "datalist.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    parser = parse_bundle(BUNDLE, ["train"], tiny(tmp_path, data))
    with pytest.raises(Exception) as error:
        dataset = parser.get_parsed_content("validate#dataset")  # a cached dataset reads every file here
        dataset[len(dataset) - 1]
    chain, cause = [], error.value
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__
    assert any("cannot read image file" in text and "broken.dcm" in text for text in chain), chain


def test_missing_patient_id_column_names_it(tmp_path, dicom_data):
    rows = [r.split(",") for r in (dicom_data / "datalist.csv").read_text().splitlines()]
    rows = [rows[0]] + [[str(dicom_data / r[0]), *r[1:]] for r in rows[1:]]
    (tmp_path / "datalist.csv").write_text("\n".join(",".join(r[:2] + r[3:]) for r in rows) + "\n")  # no patient_id
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(tmp_path)})
    with pytest.raises(RuntimeError) as error:
        parser.get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, ValueError)
    assert "missing column(s) ['patient_id']" in str(error.value.__cause__)


def test_medmnist_style_npz_with_density_names(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 20, 14), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 4).reshape(-1, 1).astype(np.uint8)
    np.savez(tmp_path / "density.npz", **arrays)
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(tmp_path / "density.npz"), "data_format": "medmnist"})
    datalists = parser.get_parsed_content("datalists")
    assert datalists.class_names == CLASSES and [len(datalists[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    image = parser.get_parsed_content("validate#preprocessing")(datalists["test"][0])["image"]
    assert image.shape == (1, 256, 256) and float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_a_dicom_with_half_its_pixel_data_stops_at_the_data_check(tmp_path, dicom_data):
    """Issue 19: a DICOM cut off in its pixel data passed the data check and failed 150 lines later; now the
    check before training names it in one line."""
    rows = [r.split(",") for r in (dicom_data / "datalist.csv").read_text().splitlines()]
    source = dicom_data / rows[-1][0]
    data = tmp_path / "data"
    data.mkdir()
    whole = source.read_bytes()
    (data / "half.dcm").write_bytes(whole[: len(whole) - (len(whole) // 4)])
    rows = [rows[0]] + [[str(dicom_data / r[0]), *r[1:]] for r in rows[1:]]
    rows.append(["half.dcm", "B", "PX", "v1", "CC", "val"])
    (data / "datalist.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    result = run_bundle_in_process(BUNDLE, ["train"], tiny(tmp_path, data), expect_failure=True)
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == ["error: the data check found 1 problem(s):"] and "Traceback" not in result.stderr
    assert re.search(r"'image': truncated DICOM file .*half\.dcm: \d+ of the \d+ bytes of pixel data", result.stderr)
    assert not (tmp_path / "models").exists()
