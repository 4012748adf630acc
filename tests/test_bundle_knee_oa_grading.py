"""End-to-end runs of bundles/knee_oa_grading on tiny real knee radiographs (CPU, a couple of epochs).

One training run on the real PNG sample (module fixture) feeds the evaluation tests: MC-dropout evaluation on
simulated repeats, evaluation on a generated CSV datalist with true repeat images, and inference; these run the
user's commands in this process (``run_bundle_in_process``). The command line itself runs as subprocesses under
``torchrun`` (two Gloo processes). Config-level behaviour (data formats, loss switch, bad input) is checked with
``parse_bundle`` in this process.
"""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from PIL import Image

from monai_imbalance.losses import CrossEntropyLoss, FocalLoss

BUNDLE = "knee_oa_grading"
pytestmark = pytest.mark.e2e


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: small CNN, 32 px, no workers."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"network_name": "small_cnn", "image_size": 32, "batch_size": 16, **overrides}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """A small CNN trained for two epochs on the real kneeKL224 PNG sample (the test split carved by patient)."""
    root = tmp_path_factory.mktemp("knee_run")
    args = tiny(root, shared_data / "knee_kl" / "png224_sample")
    run_bundle_in_process(BUNDLE, ["train"], args)
    return root, args


def test_training_outputs(trained):
    root, _ = trained
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "last_checkpoint_epoch=2.pt").is_file()
    assert list((root / "logs").glob("events.out.tfevents.*"))
    validation = read_json(root / "models" / "metrics.json")["validation"]
    assert validation["class_names"] == ["0", "1", "2", "3", "4"] and 0 <= validation["accuracy"] <= 1


def test_evaluate_with_mc_dropout_on_simulated_repeats(trained, tmp_path):
    _, args = trained
    out = tmp_path / "eval"
    overrides = {**args, "output_dir": str(out), "log_dir": str(tmp_path / "logs")}
    overrides.update({"mc_dropout": True, "mc_samples": 3, "repeat_simulation#num_repeats": 3, "n_boot": 50})
    run_bundle_in_process(BUNDLE, ["train", "evaluate"], overrides)
    metrics = read_json(out / "test-model-mc3" / "metrics.json")
    datalists = parse_bundle(BUNDLE, ["train"], args).get_parsed_content("datalists")
    test_knees = datalists["test"]
    test = metrics["test"]
    assert test["num_samples"] == 3 * len(test_knees)  # every simulated copy is classified
    assert {"accuracy", "balanced_accuracy", "f1_macro", "confusion_matrix"} <= set(test)
    # calibration and referral of the same cases, with the MC scores
    assert {"ece", "classwise_ece", "brier", "aurc", "referral"} <= set(test) and test["mc_dropout"] is True
    assert (
        test["referral"]["0"]["num_retained"] == test["num_samples"]
        and "mutual_information" in test["uncertainty_scores"]
    )
    rep = metrics["repeatability"]
    for key in ("loa", "loa_ci", "loa_pm", "loa_sd", "mean_abs_diff", "disagreement_rate", "icc", "loa_rel"):
        assert key in rep, key
    assert rep["loa_ci"][0] <= rep["loa"] <= rep["loa_ci"][1] or rep["loa_pm"] == 0
    # each test knee is one unit of three copies; both knees of a patient are resampled together
    assert rep["n_patients"] == len(test_knees) and rep["n_skipped"] == 0 and rep["n_images"] == 3 * len(test_knees)
    assert rep["n_patients_distinct"] == len({item["patient_id"] for item in test_knees})
    assert rep["repeats"]["source"] == "simulated" and rep["repeats"]["num_repeats"] == 3
    assert rep["mc_dropout"] is True and rep["mc_samples"] == 3 and rep["n_boot"] == 50
    assert (out / "test-model-mc3" / "bland_altman.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "test-model-mc3" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "logs" / "evaluate" / "test-model-mc3").glob("events.out.tfevents.*"))


def _knee_csv(shared_data, root):
    """A CSV datalist from the real knee PNGs: patient, visit, side, split; test knees imaged twice per visit."""
    sample = shared_data / "knee_kl" / "png224_sample"
    rows = [["image", "label", "patient_id", "visit_id", "side", "split"]]
    for split in ("train", "val"):
        for grade in range(5):
            for path in sorted((sample / split / str(grade)).glob("*.png"))[:2]:
                rows.append([f"{split}/{path.name}", grade, path.stem[:-1], "v00", path.stem[-1], split])
                (root / split).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, root / split / path.name)
    (root / "test").mkdir()
    test_knees = [(g, p) for g in range(5) for p in sorted((sample / "val" / str(g)).glob("*.png"))[2:4]]
    for i, (grade, path) in enumerate(test_knees):
        picture = np.asarray(Image.open(path).convert("L"), dtype=np.int16)
        for repeat in (1, 2) if i else (1,):  # the first knee has a single image: skipped, counted
            # a second acquisition of the same knee: repositioned by two pixels, slightly different exposure
            shifted = np.roll(picture, 2 * (repeat - 1), axis=1) * (1.0 + 0.03 * (repeat - 1))
            name = f"{path.stem}_v01_{repeat}.png"
            Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8)).save(root / "test" / name)
            rows.append([f"test/{name}", grade, path.stem[:-1], "v01", path.stem[-1], "test"])
    with open(root / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return test_knees


def test_csv_datalist_with_true_repeats(trained, tmp_path, shared_data):
    _, args = trained
    data = tmp_path / "knee_csv"
    test_knees = _knee_csv(shared_data, data)
    out = tmp_path / "eval"
    overrides = {**args, "dataset_dir": str(data), "data_format": "csv", "output_dir": str(out), "n_boot": 50}
    overrides["log_dir"] = str(tmp_path / "logs")
    run_bundle_in_process(BUNDLE, ["train", "evaluate"], overrides)
    rep = read_json(out / "test-model" / "metrics.json")["repeatability"]
    assert rep["repeats"]["source"] == "datalist"
    assert rep["repeats"]["unit"] == ["patient_id", "visit_id", "side"]
    assert rep["n_patients"] == len(test_knees) - 1 and rep["n_skipped"] == 1
    assert rep["n_patients_distinct"] == len({p.stem[:-1] for _, p in test_knees[1:]})
    assert set(rep["per_patient"]["visit_id"]) <= {"v01/L", "v01/R"}
    assert read_json(out / "test-model" / "metrics.json")["test"]["num_samples"] == 2 * len(test_knees) - 1


def test_inference_on_a_folder_of_radiographs(trained, tmp_path, shared_data):
    _, args = trained
    folder = tmp_path / "new"
    folder.mkdir()
    for path in sorted((shared_data / "knee_kl" / "png224_sample" / "val" / "4").glob("*.png"))[:2]:
        shutil.copy(path, folder / path.name)
    overrides = {**args, "input_dir": str(folder), "output_dir": str(tmp_path / "pred"), "mc_dropout": True}
    overrides["mc_samples"] = 2
    run_bundle_in_process(BUNDLE, ["train", "inference"], overrides)
    with open(tmp_path / "pred" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == sorted(p.stem for p in folder.iterdir())
    assert {f"prob_{g}" for g in range(5)} | {"mutual_information"} <= set(rows[0])


def test_npz_with_patient_ids_gets_a_patient_level_test_split(shared_data):
    npz = shared_data / "knee_kl" / "knee_kl_64_trainval.npz"
    datalists = parse_bundle(
        BUNDLE, ["train"], {"dataset_dir": str(npz), "data_format": "medmnist"}
    ).get_parsed_content("datalists")
    assert set(datalists) == {"train", "val", "test"} and datalists.class_names == ["0", "1", "2", "3", "4"]
    patients = {split: {item["patient_id"] for item in items} for split, items in datalists.items()}
    assert not patients["train"] & patients["test"] and not patients["val"] & patients["test"]
    assert 0.15 < len(datalists["test"]) / (len(datalists["test"]) + len(datalists["train"])) < 0.3
    assert datalists["test"][0]["knee_id"] == datalists["test"][0]["patient_id"] + datalists["test"][0]["side"]
    # the split is fixed by split_seed, not by the training seed: every seed of a study shares the test patients
    other = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(npz), "data_format": "medmnist", "seed": 3})
    assert [i["id"] for i in other.get_parsed_content("datalists")["test"]] == [i["id"] for i in datalists["test"]]


def test_cross_entropy_default_and_the_papers_focal_loss_by_one_override(shared_data):
    args = {"dataset_dir": str(shared_data / "knee_kl" / "png224_sample"), "network_name": "small_cnn"}
    assert isinstance(parse_bundle(BUNDLE, ["train"], args).get_parsed_content("loss"), CrossEntropyLoss)
    focal = parse_bundle(BUNDLE, ["train"], {**args, "loss_name": "focal"}).get_parsed_content("loss")
    assert isinstance(focal, FocalLoss) and focal.gamma == 2.0 and focal.alpha == 0.25
    network = parse_bundle(BUNDLE, ["train"], args).get_parsed_content("network_def")
    assert any(type(m).__name__ == "Dropout" and m.p == 0.1 for m in network.modules())


def test_repeat_modes_at_config_level(shared_data):
    args = {"dataset_dir": str(shared_data / "knee_kl" / "png224_sample"), "network_name": "small_cnn"}
    none = parse_bundle(BUNDLE, ["train", "evaluate"], {**args, "repeats": "none"})
    assert none.get_parsed_content("evaluate#dataset").source == "none"
    assert none.get_parsed_content("evaluate#additional_metrics") == {}
    forced = parse_bundle(BUNDLE, ["train", "evaluate"], {**args, "repeats": "datalist"})
    with pytest.raises(RuntimeError) as error:  # the folders have one image per knee and no visit ids
        forced.get_parsed_content("evaluate#dataset")
    assert "no two items share 'patient_id', 'visit_id', 'side'" in str(error.value.__cause__ or error.value)


def test_two_process_gloo_training(tmp_path, shared_data):
    args = tiny(tmp_path, shared_data / "knee_kl" / "png224_sample", num_epochs=1, loss_name="focal")
    run_bundle(BUNDLE, ["train", "multi_gpu_train"], args, nproc=2)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0 writes alone


def test_csv_without_the_patient_id_column_names_it(tmp_path, shared_data):
    data = tmp_path / "knee_csv"
    _knee_csv(shared_data, data)
    rows = list(csv.reader((data / "datalist.csv").read_text().splitlines()))
    with open(data / "datalist.csv", "w", newline="") as f:
        csv.writer(f).writerows([row[:2] + row[3:] for row in rows])  # drop patient_id
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(data), "data_format": "csv"})
    with pytest.raises(RuntimeError) as error:
        parser.get_parsed_content("datalists")
    assert isinstance(error.value.__cause__, ValueError)
    assert "missing column(s) ['patient_id']" in str(error.value.__cause__)
    assert "datalist.csv" in str(error.value.__cause__)


def test_float_and_nan_labels_of_an_npz_stop_the_run_in_one_line(tmp_path, shared_data):
    """Issue 19 (Why 2): a knee npz label 1.7 was trained as grade 1 and a NaN label failed as "cannot convert
    float NaN to integer", naming nothing; now both are named by array and index before any training."""
    with np.load(shared_data / "knee_kl" / "knee_kl_64_trainval.npz") as data:
        arrays = {key: data[key][:40] for key in data.files}
    labels = arrays["train_labels"].astype(np.float64)
    labels.reshape(-1)[3], labels.reshape(-1)[7] = 1.7, np.nan
    arrays["train_labels"] = labels
    npz = tmp_path / "knee.npz"
    np.savez(npz, **arrays)
    result = run_bundle_in_process(
        BUNDLE, ["train"], tiny(tmp_path, npz, data_format="medmnist", image_size=32), expect_failure=True
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "error: the data check found 2 problem(s):" in result.stderr
    assert f"{npz}: train_labels[3] = 1.7 is not a whole number" in result.stderr
    assert f"{npz}: train_labels[7] = nan is missing (NaN)" in result.stderr
    assert not (tmp_path / "models").exists()
