"""End-to-end runs of bundles/glaucoma_classification (BBFL, multiclass fundus) on tiny real fundus data (CPU).

No glaucoma-labelled data is public, so real RetinaMNIST fundus photographs are re-labelled by grade (0 -> normal,
1-2 -> suspect, 3-4 -> glaucoma; imbalanced 12 / 8 / 4 in training) and written as JPEGs into the layouts the
bundle reads. The user's command line runs as subprocesses under ``torchrun`` (two Gloo processes); the chain
train -> evaluate -> inference runs the same commands in this process (``bundle_runner.run_bundle_in_process``),
other behaviour through the parsed configs (``fundus_bundle_helpers``).
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
from monai.networks.nets import DenseNet121, ResNet
from PIL import Image

from monai_imbalance.data import BatchBalancedSampler, OverSampler, UnderSampler
from monai_imbalance.losses import CrossEntropyLoss, FocalLoss, LMFLoss
from monai_imbalance.networks import find_dropout_modules
from monai_imbalance.transforms import class_priors

BUNDLE = "glaucoma_classification"
pytestmark = pytest.mark.e2e

GRADES = {"normal": [0], "suspect": [1, 2], "glaucoma": [3, 4]}  # RetinaMNIST grades re-labelled
COUNTS = {
    "train": {"normal": 12, "suspect": 8, "glaucoma": 4},
    "val": {"normal": 4, "suspect": 4, "glaucoma": 4},
    "test": {"normal": 4, "suspect": 4, "glaucoma": 4},
}
CLASS_ORDER = ["normal", "suspect", "glaucoma"]  # class index = the config's class_names, not the folder order


@pytest.fixture(scope="module")
def fundus_dir(tmp_path_factory, shared_data):
    """``{train,val,test}/{normal,suspect,glaucoma}/*.jpg``: 24 / 12 / 12 real fundus photographs."""
    root = tmp_path_factory.mktemp("glaucoma") / "fundus"
    write_fundus_tree(root, shared_data, GRADES, COUNTS)
    return root


def tiny(tmp_path, dataset_dir, **overrides):
    """Overrides for a seconds-long run: small CNN, 32 px, 2 epochs, outputs under tmp_path."""
    return quick_run_overrides(
        tmp_path, dataset_dir, {"network_name": "small_cnn", "image_size": 32, "batch_size": 9, **overrides}
    )


def test_defaults_follow_the_bbfl_paper(tmp_path, fundus_dir):
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(fundus_dir), "ckpt_dir": str(tmp_path / "m")})
    assert parser.get_parsed_content("class_names") == CLASS_ORDER
    assert parser.get_parsed_content("class_counts") == [12, 8, 4]
    sampler = parser.get_parsed_content("train#sampler")
    assert isinstance(sampler, BatchBalancedSampler)
    loader = parser.get_parsed_content("train#dataloader")  # the batch size stated once: the sampler's batches
    assert loader.batch_sampler is sampler.batch_sampler and loader.batch_size is None
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, FocalLoss) and loss.gamma == 2.0 and loss.alpha is None and loss.weight is None
    network = parser.get_parsed_content("network_def")
    assert isinstance(network, DenseNet121) and {m.p for m in find_dropout_modules(network)} == {0.1}
    assert network.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    key_metric = parser.get_parsed_content("validate#key_metric")
    assert list(key_metric) == ["val_f1_macro"] and key_metric["val_f1_macro"].metric_fn.metric_name == "f1_macro"
    assert parser.get_parsed_content("use_amp") is False  # amp: true only takes effect on a GPU


@pytest.mark.parametrize(
    ("overrides", "item", "expected"),
    [
        ({"sampler_name": "over"}, "train#sampler", OverSampler),
        ({"sampler_name": "under"}, "train#sampler", UnderSampler),
        ({"sampler_name": "none"}, "train#sampler", type(None)),
        ({"loss_name": "ce", "class_weighting": "inverse"}, "loss", CrossEntropyLoss),
        ({"loss_name": "lmf", "head": "cosine"}, "loss", LMFLoss),
        ({"network_name": "resnet18"}, "network_def", ResNet),
    ],
)
def test_one_override_switches_a_component(fundus_dir, overrides, item, expected):
    parser = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(fundus_dir), **overrides})
    assert isinstance(parser.get_parsed_content(item), expected)


def test_train_evaluate_with_mc_dropout_and_infer(tmp_path, fundus_dir, shared_data):
    args = tiny(tmp_path, fundus_dir)
    run_bundle_in_process(BUNDLE, ["train"], args)
    models = tmp_path / "models"
    assert (models / "model.pt").is_file() and (models / "last_checkpoint_epoch=2.pt").is_file()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    validation = read_json(models / "metrics.json")["validation"]
    assert validation["class_names"] == CLASS_ORDER and 0 <= validation["f1_macro"] <= 1

    run_bundle_in_process(BUNDLE, ["train", "evaluate"], {**args, "mc_dropout": True, "mc_samples": 3})
    test = read_json(tmp_path / "eval" / "test-model-mc3" / "metrics.json")["test"]
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "auc"):
        assert 0 <= test[key] <= 1, key
    assert set(test["per_class"]) == set(CLASS_ORDER) and "f1_positive" not in test
    assert np.asarray(test["confusion_matrix"]).shape == (3, 3) and test["num_samples"] == 12
    assert (tmp_path / "eval" / "test-model-mc3" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    folder = tmp_path / "new_eyes"
    folder.mkdir()
    for name, images in pick_fundus(shared_data, "test", GRADES, count=1, offset=4).items():  # unseen photographs
        Image.fromarray(images[0]).save(folder / f"eye_{name}.png")
    run_bundle_in_process(
        BUNDLE, ["train", "inference"], {**args, "input_dir": str(folder), "mc_dropout": True, "mc_samples": 3}
    )
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == ["eye_glaucoma", "eye_normal", "eye_suspect"]
    columns = [f"prob_{name}" for name in CLASS_ORDER]
    assert set(columns) | {"entropy", "mutual_information"} <= set(rows[0])
    for row in rows:
        probabilities = [float(row[c]) for c in columns]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted_class"] == CLASS_ORDER[int(np.argmax(probabilities))]


def test_resume_after_interruption_and_no_silent_overwrite(tmp_path, fundus_dir, caplog):
    # LDAM with effective-number class weights on the cosine head
    args = tiny(tmp_path, fundus_dir, num_epochs=1, loss_name="ldam", head="cosine", class_weighting="effective_number")
    run_in_process(BUNDLE, ["train"], args)
    with pytest.raises(RuntimeError) as error:  # the earlier run's checkpoints are not overwritten
        parse_bundle(BUNDLE, ["train"], {**args, "num_epochs": 2}).get_parsed_content("resume_path")
    assert isinstance(error.value.__cause__, FileExistsError) and "--resume true" in str(error.value.__cause__)

    parser = parse_bundle(BUNDLE, ["train"], {**args, "num_epochs": 2, "resume": "true"})
    epochs_run, sampler_epochs = [], set()
    trainer, sampler = parser.get_parsed_content("train#trainer"), parser.get_parsed_content("train#sampler")
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch))
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda engine: sampler_epochs.add(sampler.epoch))
    with caplog.at_level(logging.INFO):
        run_parsed(parser)
    assert "Restored all variables" in caplog.text
    assert epochs_run == [2]
    assert sampler_epochs == {2}  # the batch_sampler form: the resumed epoch's batches
    assert (tmp_path / "models" / "last_checkpoint_epoch=2.pt").is_file()


def test_same_seed_gives_the_same_metrics(tmp_path, fundus_dir):
    reports = []
    for run in ("a", "b"):  # the RUS baseline: under-sampling with CE
        args = tiny(tmp_path / run, fundus_dir, num_epochs=1, augment=True, loss_name="ce", sampler_name="under")
        run_in_process(BUNDLE, ["train"], args)
        reports.append(read_json(tmp_path / run / "models" / "metrics.json")["validation"])
    assert reports[0] == reports[1]


def test_flat_folders_and_csv_datalist_with_class_order(tmp_path, fundus_dir, shared_data):
    flat = tmp_path / "flat"
    write_fundus_tree(flat, shared_data, GRADES, flat_counts={"normal": 20, "suspect": 10, "glaucoma": 10})
    datalists = parse_bundle(BUNDLE, ["train"], {"dataset_dir": str(flat)}).get_parsed_content("datalists")
    assert sorted(datalists) == ["test", "train", "val"]  # a seeded split of {class}/*.jpg
    assert sum(len(v) for v in datalists.values()) == 40 and all(datalists.values())

    write_csv_datalist(fundus_dir.parent, fundus_dir, "glaucoma.csv")
    order = ["suspect", "normal", "glaucoma"]  # --class_names sets the class indices
    overrides = {"dataset_dir": str(fundus_dir.parent), "data_format": "csv"}
    overrides.update(data_kwargs={"csv_file": "glaucoma.csv"}, class_names=order)
    parser = parse_bundle(BUNDLE, ["train"], overrides)
    datalists = parser.get_parsed_content("datalists")
    assert {k: len(v) for k, v in datalists.items()} == {"train": 24, "val": 12, "test": 12}
    assert parser.get_parsed_content("class_names") == order
    assert parser.get_parsed_content("class_counts") == [8, 12, 4]


def test_prior_correction_on_retinamnist(tmp_path, shared_data):
    """RetinaMNIST (5 fundus grades) from its npz: the multiclass thresholding baseline (plain CE, no rebalancing,
    prior correction with the training priors) trains and evaluates with the stored rule."""
    args = tiny(tmp_path, shared_data / "medmnist", data_format="medmnist", max_items_per_split=30, num_epochs=1)
    args.update(data_kwargs={"flag": "retinamnist", "download": False}, loss_name="ce", sampler_name="none")
    args["class_names"] = ["0", "1", "2", "3", "4"]  # the 5 RetinaMNIST grades instead of the 3 glaucoma classes
    args.update(threshold_method="prior_correction", batch_size=10)
    parser = run_in_process(BUNDLE, ["train"], args)
    counts = parser.get_parsed_content("class_counts")
    stored = read_json(tmp_path / "models" / "metrics.json")["decision_threshold"]
    np.testing.assert_allclose(stored["class_priors"], class_priors(counts))
    run_in_process(BUNDLE, ["train", "evaluate"], {**args, "use_threshold": True})
    test = read_json(tmp_path / "eval" / "test-model-threshold" / "metrics.json")["test"]
    assert test["num_classes"] == 5 and test["num_samples"] == 30
    np.testing.assert_allclose(test["class_priors"], class_priors(counts))


def test_two_process_gloo_training(tmp_path, fundus_dir):
    result = run_bundle(BUNDLE, ["train", "multi_gpu_train"], tiny(tmp_path, fundus_dir), nproc=2)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0 writes alone
    assert (result.stdout + result.stderr).count("Epoch[2] Metrics") >= 1


@pytest.mark.parametrize(
    ("layout", "error", "message"),
    [
        ("missing_file", FileNotFoundError, r"missing\.jpg"),
        ("unknown_label", ValueError, "'cataract'"),
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
        (root / "datalist.csv").write_text("image,label\na.jpg,normal\nmissing.jpg,glaucoma\n")
        overrides.update(data_format="csv", data_kwargs={"csv_file": "datalist.csv"})
    elif layout == "unknown_label":
        for name in ("normal", "glaucoma", "cataract"):
            (root / "train" / name).mkdir(parents=True)
            picture.save(root / "train" / name / "a.jpg")
        overrides["class_names"] = ["normal", "glaucoma"]
    else:
        root.mkdir()
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the loader's error, which it prints too
        parse_bundle(BUNDLE, ["train"], overrides).get_parsed_content("datalists")
    assert isinstance(raised.value.__cause__, error)
    assert re.search(message, str(raised.value.__cause__))
