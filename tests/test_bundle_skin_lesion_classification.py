"""End-to-end runs of bundles/skin_lesion_classification on tiny real data (CPU, a couple of epochs).

The user's command line runs as subprocesses under ``torchrun`` (two Gloo processes); the other runs execute the
same commands in this process (``run_bundle_in_process``).
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from bundle_runner import parse_bundle, read_json, run_bundle, run_bundle_in_process, tiny_dermamnist_overrides
from PIL import Image

from monai_imbalance.data import ISIC_TASK3_CLASSES

BUNDLE = "skin_lesion_classification"
pytestmark = pytest.mark.e2e

# DermaMNIST label -> ISIC 2018 task 3 column (DermaMNIST: akiec, bcc, bkl, df, mel, nv, vasc)
DERMAMNIST_TO_ISIC = ["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]


def test_train_evaluate_with_mc_dropout_and_infer(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data)
    run_bundle_in_process(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    validation = read_json(models / "metrics.json")["validation"]
    assert validation["num_classes"] == 7 and 0 <= validation["f1_macro"] <= 1

    run_bundle_in_process(BUNDLE, ["train", "evaluate"], {**args, "mc_dropout": True, "mc_samples": 3})
    test = read_json(tmp_path / "eval" / "test-model-mc3" / "metrics.json")["test"]
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "auc", "per_class"):
        assert key in test
    assert np.asarray(test["confusion_matrix"]).sum() == test["num_samples"] == 28
    assert (tmp_path / "eval" / "test-model-mc3" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    # inference on a folder of new images, with MC-dropout uncertainty columns
    images = np.load(shared_data / "medmnist" / "dermamnist.npz")["test_images"][:3]
    folder = tmp_path / "new_images"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"lesion_{i}.png")
    run_bundle_in_process(
        BUNDLE, ["train", "inference"], {**args, "input_dir": str(folder), "mc_dropout": True, "mc_samples": 3}
    )
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == ["lesion_0", "lesion_1", "lesion_2"]
    probabilities = [[float(v) for k, v in row.items() if k.startswith("prob_")] for row in rows]
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-4)
    assert {"entropy", "mutual_information"} <= set(rows[0])
    # a second inference run refuses to overwrite the CSV
    result = run_bundle_in_process(
        BUNDLE, ["train", "inference"], {**args, "input_dir": str(folder)}, expect_failure=True
    )
    assert "predictions.csv" in result.stderr and "overwrite" in result.stderr


def test_resume_after_interruption_and_no_silent_overwrite(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(
        tmp_path, shared_data, num_epochs=1, loss_name="focal", sampler_name="batch_balanced"
    )
    run_bundle_in_process(BUNDLE, ["train"], args)
    result = run_bundle_in_process(BUNDLE, ["train"], {**args, "num_epochs": 2}, expect_failure=True)
    assert "--resume true" in result.stderr  # the earlier run's checkpoints are not overwritten
    result = run_bundle_in_process(BUNDLE, ["train"], {**args, "num_epochs": 2, "resume": True})
    assert "Restored all variables" in result.stdout + result.stderr
    assert "Epoch[2]" in result.stdout + result.stderr and "Epoch[1]" not in result.stdout + result.stderr
    assert (tmp_path / "models" / "last_checkpoint_epoch=2.pt").is_file()


def test_isic_layout_with_cost_sensitive_ldam_and_cosine_head(tmp_path, shared_data):
    """Real DermaMNIST pictures written out in the ISIC 2018 task 3 layout (JPEG + one-hot CSV)."""
    data = np.load(shared_data / "medmnist" / "dermamnist.npz")
    root = tmp_path / "ISIC2018"
    for split, word, per_class in (("train", "Training", 4), ("val", "Validation", 2)):
        folder = root / f"ISIC2018_Task3_{word}_Input"
        folder.mkdir(parents=True)
        rows = ["image," + ",".join(ISIC_TASK3_CLASSES)]
        labels = data[f"{split}_labels"][:, 0]
        for i in np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(7)]):
            name = f"ISIC_{split}{i:05d}"
            Image.fromarray(data[f"{split}_images"][i]).save(folder / f"{name}.jpg")
            diagnosis = DERMAMNIST_TO_ISIC[int(data[f"{split}_labels"][i, 0])]
            rows.append(name + "," + ",".join("1.0" if c == diagnosis else "0.0" for c in ISIC_TASK3_CLASSES))
        truth = root / f"ISIC2018_Task3_{word}_GroundTruth"
        truth.mkdir()
        (truth / f"ISIC2018_Task3_{word}_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    args = tiny_dermamnist_overrides(
        tmp_path, shared_data, dataset_dir=str(root), data_format="isic2018_task3", data_kwargs={}
    )
    args.update(loss_name="ldam", head="cosine", class_weighting="effective_number", num_epochs=1)
    run_bundle_in_process(BUNDLE, ["train"], args)
    assert read_json(tmp_path / "models" / "metrics.json")["validation"]["class_names"] == list(ISIC_TASK3_CLASSES)


def test_same_seed_gives_the_same_metrics(tmp_path, shared_data):
    reports = []
    for run in ("a", "b"):
        args = tiny_dermamnist_overrides(tmp_path / run, shared_data, num_epochs=1, augment=True)
        run_bundle_in_process(BUNDLE, ["train"], args)
        reports.append(read_json(tmp_path / run / "models" / "metrics.json")["validation"])
    assert reports[0] == reports[1]


def test_two_process_gloo_training(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data, sampler_name="batch_balanced")
    result = run_bundle(BUNDLE, ["train", "multi_gpu_train"], args, nproc=2)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0 writes alone
    assert result.stdout.count("Epoch[2] Metrics") + result.stderr.count("Epoch[2] Metrics") >= 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing_file", r"missing\.png"),
        ("unknown_label", "'E'"),
        ("empty_dir", "no images found in"),
    ],
)
def test_bad_data_gives_a_clear_error(tmp_path, shared_data, layout, message):
    root = tmp_path / "data"
    root.mkdir()
    picture = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    if layout != "empty_dir":
        picture.save(root / "a.png")
        label = "E" if layout == "unknown_label" else "B"
        rows = ["image,label", "a.png,A", f"a.png,{label}"]
        if layout == "missing_file":
            rows.append("missing.png,A")
        (root / "datalist.csv").write_text("\n".join(rows) + "\n")
    args = tiny_dermamnist_overrides(tmp_path, shared_data, dataset_dir=str(root), data_format="csv")
    args.update(data_kwargs={"csv_file": "datalist.csv"}, class_names=["A", "B"])
    if layout == "empty_dir":
        args.update(data_format="class_folders", data_kwargs={})
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], args).get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, (ValueError, FileNotFoundError))
    assert re.search(message, str(error.value.__cause__))
