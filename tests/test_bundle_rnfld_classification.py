"""End-to-end runs of bundles/rnfld_classification (BBFL, binary fundus) on tiny real fundus data (CPU).

No RNFL-defect data is public, so real RetinaMNIST fundus photographs are re-labelled by grade (0 -> normal,
3-4 -> rnfld: a minority positive class) and written as JPEGs into the layouts the bundle reads. The user's
command line runs as subprocesses under ``torchrun`` (two Gloo processes); the chain train -> evaluate ->
inference runs the same commands in this process (``bundle_runner.run_bundle_in_process``), other behaviour
through the parsed configs (``fundus_bundle_helpers.run_in_process``).
"""

from __future__ import annotations

import csv
import logging
import re

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle, quick_run_overrides, read_json, run_bundle, run_bundle_in_process
from fundus_bundle_helpers import (
    pick_fundus,
    run_in_process,
    run_parsed,
    write_csv_datalist,
    write_fundus_tree,
)
from ignite.engine import Events
from monai.networks.nets import DenseNet121, EfficientNetBN, ResNet
from PIL import Image

from monai_imbalance.data import BatchBalancedSampler, OverSampler, UnderSampler, class_weights
from monai_imbalance.losses import CrossEntropyLoss, FocalLoss, LDAMLoss, LMFLoss
from monai_imbalance.networks import find_dropout_modules

BUNDLE = "rnfld_classification"
pytestmark = pytest.mark.e2e

GRADES = {"normal": [0], "rnfld": [3, 4]}  # RetinaMNIST grades re-labelled as the bundle's two classes
COUNTS = {"train": {"normal": 16, "rnfld": 8}, "val": {"normal": 8, "rnfld": 6}, "test": {"normal": 8, "rnfld": 6}}


@pytest.fixture(scope="module")
def fundus_dir(tmp_path_factory, shared_data):
    """``{train,val,test}/{normal,rnfld}/*.jpg``: 24 / 14 / 14 real fundus photographs."""
    root = tmp_path_factory.mktemp("rnfld") / "fundus"
    write_fundus_tree(root, shared_data, GRADES, COUNTS)
    return root


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: small CNN, 32 px, 2 epochs, outputs under tmp_path."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"network_name": "small_cnn", "image_size": 32, "batch_size": 8, **overrides}
    )


def test_defaults_follow_the_bbfl_paper(tmp_path, fundus_dir):
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(fundus_dir), "ckpt_dir": str(tmp_path / "m")})
    assert parser.get_parsed_content("class_names") == ["normal", "rnfld"]  # index 1 = the positive class
    assert isinstance(parser.get_parsed_content("train#sampler"), BatchBalancedSampler)
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, FocalLoss) and loss.gamma == 2.0 and loss.alpha is None and loss.weight is None
    network = parser.get_parsed_content("network_def")
    assert isinstance(network, DenseNet121)
    assert {m.p for m in find_dropout_modules(network)} == {0.1}  # MC dropout works with the default network
    assert network.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 2)  # two softmax outputs: normal, rnfld
    key_metric = parser.get_parsed_content("validate#key_metric")
    assert list(key_metric) == ["val_f1"] and key_metric["val_f1"].metric_fn.metric_name == "f1_positive"
    assert parser.get_parsed_content("device") == torch.device("cpu")
    assert parser.get_parsed_content("use_amp") is False  # amp: true only takes effect on a GPU


@pytest.mark.parametrize(
    ("overrides", "item", "expected"),
    [
        ({"sampler_name": "over"}, "train#sampler", OverSampler),
        ({"sampler_name": "under"}, "train#sampler", UnderSampler),
        ({"sampler_name": "none"}, "train#sampler", type(None)),
        ({"loss_name": "ce"}, "loss", CrossEntropyLoss),
        ({"loss_name": "ldam"}, "loss", LDAMLoss),
        ({"loss_name": "lmf", "head": "cosine"}, "loss", LMFLoss),
        ({"network_name": "resnet18"}, "network_def", ResNet),
        ({"network_name": "efficientnet-b0"}, "network_def", EfficientNetBN),
    ],
)
def test_one_override_switches_a_component(tmp_path, fundus_dir, overrides, item, expected):
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(fundus_dir), **overrides})
    assert isinstance(parser.get_parsed_content(item), expected)


def test_cost_sensitive_class_weights(fundus_dir):
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(fundus_dir), "class_weighting": "inverse"})
    np.testing.assert_allclose(parser.get_parsed_content("loss").weight.numpy(), class_weights([16, 8]), rtol=1e-6)


def test_train_threshold_evaluate_with_mc_dropout_and_infer(tmp_path, fundus_dir, shared_data):
    """The user's commands: train (F1 threshold chosen on validation), evaluate with MC dropout at that threshold,
    predict a folder of new fundus photographs."""
    args = tiny(tmp_path, fundus_dir, threshold_method="f1")
    run_bundle_in_process(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    stored = read_json(models / "metrics.json")
    assert stored["validation"]["class_names"] == ["normal", "rnfld"] and 0 <= stored["validation"]["f1_positive"] <= 1
    threshold = stored["decision_threshold"]["threshold"]
    assert stored["decision_threshold"]["method"] == "f1" and 0 <= threshold <= 1

    run_bundle_in_process(
        BUNDLE, ["train", "evaluate"], {**args, "mc_dropout": True, "mc_samples": 3, "use_threshold": True}
    )
    test = read_json(tmp_path / "eval" / "test-model-mc3-threshold" / "metrics.json")["test"]
    for key in ("accuracy", "f1_positive", "auc", "balanced_accuracy", "f1_macro", "recall_positive", "specificity"):
        assert 0 <= test[key] <= 1, key
    assert test["decision_threshold"] == threshold
    assert np.asarray(test["confusion_matrix"]).sum() == test["num_samples"] == 14
    assert (tmp_path / "eval" / "test-model-mc3-threshold" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    folder = tmp_path / "new_eyes"
    folder.mkdir()
    new = pick_fundus(shared_data, "test", GRADES, count=2, offset=COUNTS["test"]["normal"])  # unseen photographs
    for name, images in new.items():
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{name}_{i}.jpg")
    overrides = {**args, "input_dir": str(folder), "mc_dropout": True, "mc_samples": 3, "use_threshold": True}
    run_bundle_in_process(BUNDLE, ["train", "inference"], overrides)
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == ["normal_0", "normal_1", "rnfld_0", "rnfld_1"]
    assert {"prob_normal", "prob_rnfld", "entropy", "mutual_information"} <= set(rows[0])
    for row in rows:
        assert float(row["prob_normal"]) + float(row["prob_rnfld"]) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted_class"] == ("rnfld" if float(row["prob_rnfld"]) >= threshold else "normal")
    with pytest.raises(RuntimeError) as error:  # a second inference run refuses to overwrite the CSV
        parse_bundle(BUNDLE, ["train", "inference"], overrides).get_parsed_content("handlers")
    assert isinstance(error.value.__cause__, FileExistsError) and "predictions.csv" in str(error.value.__cause__)


def test_resume_after_interruption_and_no_silent_overwrite(tmp_path, fundus_dir, caplog):
    # the cost-sensitive baseline: class-weighted CE, plain shuffling
    args = tiny(tmp_path, fundus_dir, num_epochs=1, loss_name="ce", sampler_name="none", class_weighting="inverse")
    run_in_process(BUNDLE, ["train"], args)
    with pytest.raises(RuntimeError) as error:  # the earlier run's checkpoints are not overwritten
        parse_bundle(BUNDLE, ["train"], {**args, "num_epochs": 2}).get_parsed_content("resume_path")
    assert isinstance(error.value.__cause__, FileExistsError) and "--resume true" in str(error.value.__cause__)

    parser = parse_bundle(BUNDLE, ["train"], {**args, "num_epochs": 2, "resume": "true"})  # as typed by a user
    epochs_run = []
    parser.get_parsed_content("train#trainer").add_event_handler(
        Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch)
    )
    with caplog.at_level(logging.INFO):
        run_parsed(parser)
    assert "Restored all variables" in caplog.text
    assert epochs_run == [2]  # epoch 1 came from the checkpoint
    assert (tmp_path / "models" / "last_checkpoint_epoch=2.pt").is_file()


def test_same_seed_gives_the_same_metrics(tmp_path, fundus_dir):
    reports = []
    for run in ("a", "b"):  # the ROS baseline: over-sampling with CE
        args = tiny(tmp_path / run, fundus_dir, num_epochs=1, augment=True, loss_name="ce", sampler_name="over")
        run_in_process(BUNDLE, ["train"], args)
        reports.append(read_json(tmp_path / run / "models" / "metrics.json")["validation"])
    assert reports[0] == reports[1]


def test_flat_folders_and_csv_datalist(tmp_path, fundus_dir, shared_data):
    flat = tmp_path / "flat"
    write_fundus_tree(flat, shared_data, GRADES, flat_counts={"normal": 20, "rnfld": 10})
    datalists = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(flat)}).get_parsed_content("datalists")
    assert sorted(datalists) == ["test", "train", "val"]  # a seeded split of {class}/*.jpg
    assert sum(len(v) for v in datalists.values()) == 30 and all(datalists.values())

    write_csv_datalist(fundus_dir.parent, fundus_dir, "rnfld.csv")
    overrides = {"dataset_dir": str(fundus_dir.parent), "data_format": "csv"}
    overrides["data_kwargs"] = {"csv_file": "rnfld.csv"}  # the labels must be the config's class_names
    datalists = parse_bundle(BUNDLE, ["train"], overrides).get_parsed_content("datalists")
    assert {k: len(v) for k, v in datalists.items()} == {"train": 24, "val": 14, "test": 14}
    assert datalists.class_names == ["normal", "rnfld"]


def test_thresholding_baseline_on_binary_medmnist(tmp_path, shared_data):
    """PneumoniaMNIST (grey, binary; a stand-in for RNFLD data): the paper's thresholding baseline (plain CE,
    no rebalancing, Youden threshold chosen on validation) trains and evaluates at the chosen threshold."""
    args = tiny(tmp_path, shared_data / "medmnist", data_format="medmnist", max_items_per_split=24, num_epochs=1)
    args.update(data_kwargs={"flag": "pneumoniamnist", "download": False}, loss_name="ce", sampler_name="none")
    args.update(threshold_method="youden", class_names=["normal", "pneumonia"])
    run_in_process(BUNDLE, ["train"], args)
    threshold = read_json(tmp_path / "models" / "metrics.json")["decision_threshold"]["threshold"]
    run_in_process(BUNDLE, ["train", "evaluate"], {**args, "use_threshold": True})
    test = read_json(tmp_path / "eval" / "test-model-threshold" / "metrics.json")["test"]
    assert test["class_names"] == ["normal", "pneumonia"] and test["num_samples"] == 24
    assert test["decision_threshold"] == threshold


def test_two_process_gloo_training(tmp_path, fundus_dir):
    result = run_bundle(BUNDLE, ["train", "multi_gpu_train"], tiny(tmp_path, fundus_dir), nproc=2)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0 writes alone
    assert (result.stdout + result.stderr).count("Epoch[2] Metrics") >= 1


@pytest.mark.parametrize(
    ("layout", "error", "message"),
    [
        ("missing_file", FileNotFoundError, r"missing\.jpg"),
        ("unknown_label", ValueError, "'glaucoma'"),
        ("empty_dir", ValueError, "no images found in"),
    ],
)
def test_bad_data_gives_a_clear_error(tmp_path, layout, error, message):
    root = tmp_path / "data"
    overrides = {"dataset_dir": str(root)}
    picture = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    if layout == "missing_file":
        root.mkdir()
        picture.save(root / "a.jpg")
        (root / "datalist.csv").write_text("image,label\na.jpg,normal\na.jpg,rnfld\nmissing.jpg,normal\n")
        overrides["data_kwargs"] = {"csv_file": "datalist.csv"}
        overrides["data_format"] = "csv"
    elif layout == "unknown_label":
        for name in ("normal", "rnfld", "glaucoma"):
            (root / "train" / name).mkdir(parents=True)
            picture.save(root / "train" / name / "a.jpg")
    else:
        root.mkdir()
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], overrides).get_parsed_content("datalists")
    assert isinstance(raised.value.__cause__, error)
    assert re.search(message, str(raised.value.__cause__))
