"""The model folder describes its model (issue 18): evaluation, inference and resume read what training decided.

Regression tests of the reported bugs, as tiny CPU runs in this process on real data:

- a nuclei model trained with other split fractions and image size, evaluated without those flags, ran at the
  config's size on a test split holding training images;
- a classifier trained at 32 px ran inference at 224; a DermaMNIST model evaluated on the ISIC class order
  exited 0;
- ``--resume true`` accepted another loss, batch size, or grown data;
- a model folder of 0.2 (no ``model_settings.json``) must still evaluate and resume, with a warning.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bundle_runner import (
    BUNDLES,
    parse_bundle,
    quick_run_overrides,
    read_json,
    run_bundle_in_process,
    run_command_in_process,
    tiny_dermamnist_overrides,
)
from PIL import Image

from monai_imbalance.bundles import bundle_names
from monai_imbalance.workflow import DATA_KEYS, MODEL_KEYS, MODEL_SETTINGS_FILE, RUN_ARGS_FILE, SPLIT_IDS_FILE

pytestmark = pytest.mark.e2e

DERMA, NUCLEI, KNEE = "skin_lesion_classification", "nuclei_segmentation", "knee_oa_grading"
FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}


def dsb_npz(shared_data: Path, path: Path, count: int) -> Path:
    """The first ``count`` DSB 2018 images as an npz at ``path`` (replaced if there)."""
    with np.load(shared_data / "dsb2018" / "dsb2018_256.npz") as full:
        arrays = {key: full[key][:count] for key in ("images", "masks", "ids")}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def nuclei(tmp_path: Path, npz: Path, **extra) -> dict:
    settings = {"image_size": [32, 32], "network_channels": [4, 8], "batch_size": 6, "num_epochs": 1}
    return quick_run_overrides(tmp_path, npz, {**settings, "split_fractions": FRACTIONS, **extra})


def last_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith("error: "), result.stderr[-3000:]
    return lines[-1]


def folder_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bundle", bundle_names())
def test_every_bundle_records_its_model_and_evaluation_and_inference_read_it(bundle):
    """Each key of train.yaml's model_settings / data_settings is a known one, and evaluate.yaml (class names
    aside: they are checked against the data's) and inference.yaml read it from the model folder."""
    configs = {
        name: yaml.safe_load((BUNDLES / bundle / "configs" / f"{name}.yaml").read_text())
        for name in ("train", "evaluate", "inference")
    }
    model, data = configs["train"]["model_settings"], configs["train"]["data_settings"]
    assert set(model) <= set(MODEL_KEYS) and set(data) <= set(DATA_KEYS)
    assert {"network_name", "in_channels", "preprocessing"} <= set(model)
    assert {"data_format", "dataset_dir", "split_seed", "split_fractions"} <= set(data)
    keys = [key for key, value in {**model, **data}.items() if value == f"@{key}"]
    assert ("image_size" in keys) != ("patch_size" in keys)
    for name in ("evaluate", "inference"):
        for key in keys:
            if name == "evaluate" and key == "class_names":
                assert key not in configs[name]
                continue
            assert configs[name][key].startswith(f"$monai_imbalance.workflow.model_setting(@ckpt_dir, '{key}'"), (
                name,
                key,
            )
    assert "check_model_settings" in " ".join(configs["evaluate"]["initialize"])
    assert "check_evaluation_items" in " ".join(configs["evaluate"]["initialize"])
    assert "check_model_settings" in " ".join(configs["inference"]["initialize"])


def test_evaluation_takes_the_split_and_size_from_the_model_folder(tmp_path, shared_data):
    """The reported bug: trained with other split fractions and size, evaluated without those flags."""
    npz = dsb_npz(shared_data, tmp_path / "dsb.npz", 24)
    args = nuclei(tmp_path, npz)
    run_bundle_in_process(NUCLEI, ["train"], args)
    models = tmp_path / "models"
    settings = read_json(models / MODEL_SETTINGS_FILE)
    assert settings["model"]["image_size"] == [32, 32] and settings["model"]["network_channels"] == [4, 8]
    assert settings["data"]["split_fractions"] == FRACTIONS
    assert {s: v["count"] for s, v in settings["data"]["splits"].items()} == {"train": 12, "val": 6, "test": 6}
    assert len(read_json(models / SPLIT_IDS_FILE)["train"]) == 12
    checkpoint = torch.load(models / "last_checkpoint_epoch=1.pt", weights_only=True)
    assert checkpoint["model_settings"] == settings

    plain = {k: v for k, v in args.items() if k not in ("image_size", "split_fractions", "network_channels")}
    result = run_bundle_in_process(NUCLEI, ["train", "evaluate"], plain)
    assert result.workflow.parser.get_parsed_content("image_size") == [32, 32]
    # the training's test split
    assert read_json(tmp_path / "eval" / "test-model" / "metrics.json")["test"]["num_samples"] == 6

    # other fractions put training images into "test": refused, with their count
    other = {**plain, "split_fractions": {"train": 0.1, "val": 0.05, "test": 0.85}}
    error = last_error(run_bundle_in_process(NUCLEI, ["train", "evaluate"], other, expect_failure=True))
    assert "of the 20 items of split 'test' were training items" in error
    trained = set(read_json(models / SPLIT_IDS_FILE)["train"])
    evaluated = {item["id"] for item in parse_bundle(NUCLEI, ["train"], other).get_parsed_content("datalists")["test"]}
    assert error.startswith(f"error: {len(trained & evaluated)} of the 20 items") and trained & evaluated
    # another size contradicts the model
    error = last_error(
        run_bundle_in_process(NUCLEI, ["train", "evaluate"], {**plain, "image_size": [64, 64]}, expect_failure=True)
    )
    assert "--image_size [64, 64]" in error and "image_size [32, 32]" in error


def test_inference_takes_the_size_and_class_names_and_refuses_another_class_order(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1)
    run_bundle_in_process(DERMA, ["train"], args)
    names = read_json(tmp_path / "models" / MODEL_SETTINGS_FILE)["model"]["class_names"]
    assert names[0] == "actinic keratoses and intraepithelial carcinoma"

    folder = tmp_path / "new_images"
    folder.mkdir()
    for i, image in enumerate(np.load(shared_data / "medmnist" / "dermamnist.npz")["test_images"][:3]):
        Image.fromarray(image).save(folder / f"lesion_{i}.png")
    bare = {"ckpt_dir": args["ckpt_dir"], "output_dir": args["output_dir"], "progress_bar": False, "num_workers": 0}
    # --data_format isic2018_task3 once named these outputs in the ISIC order ("AKIEC" for dermatofibroma)
    result = run_bundle_in_process(
        DERMA, ["inference"], {**bare, "input_dir": str(folder), "data_format": "isic2018_task3"}
    )
    parser = result.workflow.parser
    assert parser.get_parsed_content("image_size") == 32 and parser.get_parsed_content("network_name") == "small_cnn"
    assert f"classes {names}" in result.stdout  # printed
    with open(tmp_path / "eval" / "predictions.csv") as f:
        columns = next(csv.reader(f))
    assert [c for c in columns if c.startswith("prob_")] == [f"prob_{n}" for n in names]

    # an explicit size the model was not trained at is refused in one line
    out = {**bare, "output_dir": str(tmp_path / "other"), "input_dir": str(folder)}
    error = last_error(run_bundle_in_process(DERMA, ["inference"], {**out, "image_size": 224}, expect_failure=True))
    assert "--image_size 224 contradicts the model" in error and "image_size 32" in error
    assert not (tmp_path / "other").exists()

    # evaluation with the ISIC 2018 class order: refused (the outputs would be named wrongly)
    isic = {**args, "data_format": "isic2018_task3", "data_kwargs": {}}
    error = last_error(run_bundle_in_process(DERMA, ["train", "evaluate"], isic, expect_failure=True))
    assert "class_names" in error and '"MEL"' in error and "actinic keratoses" in error


def test_resume_refuses_another_loss_or_batch_size_before_writing(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1, loss_name="lmf")
    run_bundle_in_process(DERMA, ["train"], args)
    before = folder_state(tmp_path)
    for change, message in (
        ({"loss_name": "focal"}, 'loss (--loss_name) was "lmf", this command gives "focal"'),
        ({"batch_size": 4}, "batch_size was 14, this command gives 4"),
        ({"image_size": 64}, "image_size was 32, this command gives 64"),
    ):
        result = run_bundle_in_process(
            DERMA, ["train"], {**args, **change, "num_epochs": 2, "resume": True}, expect_failure=True
        )
        error = last_error(result)
        assert error.startswith("error: cannot resume the run in") and message in error, error
        assert folder_state(tmp_path) == before  # nothing written
    # what may change on resume: more epochs, no progress bar
    run_bundle_in_process(DERMA, ["train"], {**args, "num_epochs": 2, "resume": True, "progress_bar": True})
    assert read_json(tmp_path / "models" / MODEL_SETTINGS_FILE)["training"]["num_epochs"] == 2


def test_resume_reads_the_run_from_the_folder_with_its_args_file(tmp_path, shared_data):
    """DESIGN: resume reads the model folder instead of its own command line. ``--resume true`` alone (the config's
    defaults) is refused, naming the command that resumes with the recorded run; that command, run from another
    folder, trains on with the run's overrides, and a key given beside it (more epochs) holds for the next resume."""
    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1, loss_name="focal")
    run_bundle_in_process(DERMA, ["train"], {**args, "overwrite": True})
    models = tmp_path / "models"
    recorded = read_json(models / RUN_ARGS_FILE)
    assert recorded["config_file"] == [str(BUNDLES / DERMA / "configs" / "train.yaml")]
    assert recorded["loss_name"] == "focal" and recorded["ckpt_dir"] == str(models)
    assert "overwrite" not in recorded and "resume" not in recorded  # never asks to replace a run

    # the config's defaults would read another data folder: refused at once, naming what is missing
    before = folder_state(tmp_path)
    bare = {"ckpt_dir": str(models), "resume": True}
    error = last_error(run_bundle_in_process(DERMA, ["train"], bare, expect_failure=True))
    assert error.startswith(
        f'error: cannot resume the run in {models}: it was started with --dataset_dir "{shared_data / "medmnist"}", '
        "and this command does not give it; resume with the run's own settings: python -m monai.bundle run "
        f"--args_file {models / RUN_ARGS_FILE} --resume true"
    ), error
    # every override repeated but one left out: the same; one given differently: the settings' refusal, with the hint
    partial = {key: value for key, value in args.items() if key != "loss_name"}
    error = last_error(run_bundle_in_process(DERMA, ["train"], {**partial, "resume": True}, expect_failure=True))
    assert 'it was started with --loss_name "focal", and this command does not give it' in error
    changed = {**args, "loss_name": "ce", "resume": True}
    error = last_error(run_bundle_in_process(DERMA, ["train"], changed, expect_failure=True))
    assert 'loss (--loss_name) was "focal", this command gives "ce"' in error
    assert f"(python -m monai.bundle run --args_file {models / RUN_ARGS_FILE} --resume true)" in error
    assert folder_state(tmp_path) == before  # nothing written

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = ["run", "--args_file", str(models / RUN_ARGS_FILE), "--resume", "true", "--num_epochs", "2"]
    result = run_command_in_process(command, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (models / "last_checkpoint_epoch=2.pt").is_file()
    settings = read_json(models / MODEL_SETTINGS_FILE)["training"]
    assert settings["loss"] == "focal" and settings["num_epochs"] == 2
    assert read_json(models / RUN_ARGS_FILE)["num_epochs"] == 2  # the next resume trains on from here


def test_overwrite_keeps_the_new_runs_description_and_moves_the_old_one_aside(tmp_path, shared_data):
    """The description was written before ``--overwrite true`` moved the earlier run aside, and went with it: the
    new model folder had no ``model_settings.json`` (its evaluation fell back to the config's settings)."""
    run_bundle_in_process(DERMA, ["train"], tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1))
    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1, image_size=48, overwrite=True)
    run_bundle_in_process(DERMA, ["train"], args)
    models = tmp_path / "models"
    assert read_json(models / MODEL_SETTINGS_FILE)["model"]["image_size"] == 48
    assert read_json(models / RUN_ARGS_FILE)["image_size"] == 48 and (models / SPLIT_IDS_FILE).is_file()
    (replaced,) = tmp_path.glob("models.replaced-*")
    assert read_json(replaced / MODEL_SETTINGS_FILE)["model"]["image_size"] == 32
    assert read_json(replaced / RUN_ARGS_FILE)["image_size"] == 32


def test_resume_refuses_grown_data(tmp_path, shared_data):
    npz = dsb_npz(shared_data, tmp_path / "dsb.npz", 16)
    args = nuclei(tmp_path, npz)
    run_bundle_in_process(NUCLEI, ["train"], args)
    dsb_npz(shared_data, npz, 24)  # the data grew under the same name
    error = last_error(
        run_bundle_in_process(NUCLEI, ["train"], {**args, "num_epochs": 2, "resume": True}, expect_failure=True)
    )
    assert "its data changed (split 'train' had 8 items, now 12)" in error


def test_a_model_folder_of_0_2_still_evaluates_and_resumes_with_a_warning(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data, num_epochs=1)
    run_bundle_in_process(DERMA, ["train"], args)
    models = tmp_path / "models"
    (models / MODEL_SETTINGS_FILE).unlink()
    (models / SPLIT_IDS_FILE).unlink()
    checkpoint = models / "last_checkpoint_epoch=1.pt"
    state = torch.load(checkpoint, weights_only=True)
    del state["model_settings"]
    torch.save(state, checkpoint)

    result = run_bundle_in_process(DERMA, ["train", "evaluate"], args)  # the training's flags, as 0.2 needed
    assert "model_settings.json not found (a model folder of monai-imbalance 0.2)" in result.stdout + result.stderr
    assert read_json(tmp_path / "eval" / "test-model" / "metrics.json")["test"]["num_samples"] == 28
    result = run_bundle_in_process(DERMA, ["train"], {**args, "num_epochs": 2, "resume": True})
    assert "records no model settings" in result.stdout + result.stderr
    assert (models / MODEL_SETTINGS_FILE).is_file()  # recorded from now on


def test_repeatability_bundle_evaluates_with_the_folders_network_and_size(tmp_path, shared_data):
    args = quick_run_overrides(
        tmp_path,
        shared_data / "knee_kl" / "png224_sample",
        {"network_name": "small_cnn", "image_size": 32, "batch_size": 16, "num_epochs": 1},
    )
    run_bundle_in_process(KNEE, ["train"], args)
    plain = {k: v for k, v in args.items() if k not in ("network_name", "image_size")}
    result = run_bundle_in_process(KNEE, ["train", "evaluate"], {**plain, "repeats": "none"})
    assert result.workflow.parser.get_parsed_content("network_name") == "small_cnn"
    assert json.loads((tmp_path / "eval" / "test-model" / "metrics.json").read_text())["test"]["num_samples"] == 8
