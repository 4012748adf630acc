"""The bundles' TensorBoard runs read back with EventAccumulator (and TensorBoard's HParams plugin), evaluation's
progress bar and final metrics table, and no event file from refused runs or ``check_properties()``.

One classification bundle (skin_lesion_classification on a DermaMNIST subset) and one segmentation bundle
(nuclei_segmentation on DSB 2018 images) are trained for two epochs and evaluated, as a user runs them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bundle_runner import BUNDLES, parse_bundle, quick_run_overrides, run_bundle, tiny_dermamnist_overrides
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from monai_imbalance.losses import adaptive_log_loss
from monai_imbalance.metrics.classification import CLASSIFICATION_METRIC_NAMES

pytestmark = pytest.mark.e2e

CLASSIFICATION = "skin_lesion_classification"
SEGMENTATION = "nuclei_segmentation"
SCORES = [name for name in CLASSIFICATION_METRIC_NAMES if not name.endswith("_positive") and name != "specificity"]
SEGMENTATION_SCORES = ["jaccard", "dice", "recall", "specificity", "auc"]


def _events(folder):
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1, sorted(folder.iterdir())
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def _class_tag(name):
    return name.replace(" ", "_")


def _hparams_table(log_root):
    """What TensorBoard's HParams tab shows for ``log_root``: ``{hparam names}, {metric names}, [session groups]``."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from tensorboard.plugins.scalar import scalars_plugin
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(log_root))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(log_root))
    context = base_plugin.TBContext(
        logdir=str(log_root), multiplexer=multiplexer, data_provider=provider, plugin_name_to_instance={}
    )
    context.plugin_name_to_instance["scalars"] = scalars_plugin.ScalarsPlugin(context)
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route, body):
        response = Client(apps[route], Response).post(route, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.get_data()
        return json.loads(response.get_data())

    experiment = post("/experiment", {"experimentName": ""})
    groups = post(
        "/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
            "startIndex": 0,
            "sliceSize": 10,
        },
    )["sessionGroups"]
    metrics = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment.get("metricInfos", [])}
    return {h["name"] for h in experiment["hparamInfos"]}, metrics, groups


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("classification")
    args = tiny_dermamnist_overrides(root, shared_data)
    run_bundle(CLASSIFICATION, ["train"], args)
    evaluation = run_bundle(
        CLASSIFICATION, ["train", "evaluate"], {**args, "progress_bar": True, "mc_dropout": True, "mc_samples": 2}
    )
    names = parse_bundle(CLASSIFICATION, ["train"], args).get_parsed_content("class_names")
    return root, args, evaluation, names


def test_classification_training_tags(classification_run):
    root, _, _, names = classification_run
    events = _events(root / "logs")
    tags = events.Tags()
    per_class = {f"val/{score}/{_class_tag(name)}" for score in ("precision", "recall", "f1", "auc") for name in names}
    # exactly these scalars: one namespace per phase, each score once (no val_* beside validation/*)
    assert set(tags["scalars"]) == {"train/loss", "train/learning_rate", *(f"val/{s}" for s in SCORES), *per_class}
    assert [point.step for point in events.Scalars("val/f1_macro")] == [1, 2]
    assert set(tags["images"]) == {"val/roc_curve", "val/confusion_matrix"}
    pr_curves = {tag for tag in tags["tensors"] if not tag.startswith("_hparams_/")}  # the settings: next test
    assert pr_curves == {f"val/pr_curve/{_class_tag(name)}" for name in names}
    # the PR curve of a class: TensorBoard's 6 x thresholds table (TP, FP, TN, FN, precision, recall)
    pr = events.Tensors(f"val/pr_curve/{_class_tag(names[0])}")[-1]
    assert pr.step == 2 and len(pr.tensor_proto.tensor_shape.dim) == 2 and pr.tensor_proto.tensor_shape.dim[0].size == 6


@pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")  # TensorBoard's own import
def test_classification_settings_are_hparams_beside_the_final_metrics(classification_run):
    root, _, _, _ = classification_run
    hparams = _events(root / "logs").PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert list(hparams) == [hparams_metadata.SESSION_START_INFO_TAG]
    recorded = hparams_metadata.parse_session_start_info_plugin_data(hparams[hparams_metadata.SESSION_START_INFO_TAG])
    assert (
        recorded.hparams["loss"].string_value == "lmf_official"
        and recorded.hparams["network"].string_value == "small_cnn"
    )
    # the HParams tab: one row for the run folder, its settings beside the test scores of logs/evaluate
    hparam_names, metric_names, groups = _hparams_table(root)
    assert {"loss", "network", "seed", "sampler"} <= hparam_names
    assert {("evaluate/test-model-mc2", "test/f1_macro"), ("", "val/f1_macro")} <= metric_names
    (group,) = groups
    assert group["hparams"]["loss"] == "lmf_official"
    test_f1 = json.loads((root / "eval" / "test-model-mc2" / "metrics.json").read_text())["test"]["f1_macro"]
    values = {(m["name"].get("group", ""), m["name"]["tag"]): m["value"] for m in group["metricValues"]}
    assert values[("evaluate/test-model-mc2", "test/f1_macro")] == pytest.approx(test_f1, abs=1e-6)


def test_classification_evaluation_tags(classification_run):
    root, _, _, names = classification_run
    events = _events(root / "logs" / "evaluate" / "test-model-mc2")
    tags = events.Tags()
    per_class = {f"test/{score}/{_class_tag(name)}" for score in ("precision", "recall", "f1", "auc") for name in names}
    assert set(tags["scalars"]) == {*(f"test/{s}" for s in SCORES), *per_class}
    assert set(tags["images"]) == {
        "test/roc_curve",
        "test/confusion_matrix",
        "test/reliability_diagram",
        "test/risk_coverage",
    }
    assert set(tags["tensors"]) == {f"test/pr_curve/{_class_tag(name)}" for name in names}
    test = json.loads((root / "eval" / "test-model-mc2" / "metrics.json").read_text())["test"]
    assert events.Scalars("test/balanced_accuracy")[0].value == pytest.approx(test["balanced_accuracy"], abs=1e-6)
    name = names[0]
    assert events.Scalars(f"test/recall/{_class_tag(name)}")[0].value == pytest.approx(
        test["per_class"][name]["recall"], abs=1e-6
    )


def test_evaluation_shows_progress_and_prints_the_final_metrics(classification_run):
    root, args, evaluation, names = classification_run
    assert "evaluate: [2/2] 100%" in evaluation.stderr  # the evaluator's bar (2 batches of 14 images)
    assert "MC dropout" in evaluation.stderr  # the bar of the dropout passes
    table = evaluation.stdout[evaluation.stdout.index(f"test ({root / 'eval' / 'test-model-mc2' / 'metrics.json'}):") :]
    test = json.loads((root / "eval" / "test-model-mc2" / "metrics.json").read_text())["test"]
    rows = {line[:26].strip(): line[26:].split() for line in table.splitlines()[3:9]}
    assert rows["macro F1"] == [f"{test['f1_macro']:.3f}"] and rows["balanced accuracy"] == [
        f"{test['balanced_accuracy']:.3f}"
    ]
    assert all(name in table for name in names)  # the per-class section
    # --progress_bar false: no bar on the evaluator nor on the MC-dropout passes
    quiet = parse_bundle(CLASSIFICATION, ["train", "evaluate"], {**args, "progress_bar": False, "mc_dropout": True})
    handlers = quiet.get_parsed_content("evaluate#handlers")
    assert not any(type(h).__name__ == "ProgressBar" for h in handlers)
    assert quiet.get_parsed_content("evaluate#inferer").progress is False
    loud = parse_bundle(CLASSIFICATION, ["train", "inference"], {**args, "progress_bar": True, "mc_dropout": True})
    assert any(type(h).__name__ == "ProgressBar" for h in loud.get_parsed_content("handlers"))
    assert loud.get_parsed_content("evaluator").inferer.progress is True


def test_no_third_party_noise_in_a_bundle_run(classification_run):
    _, _, evaluation, _ = classification_run
    output = evaluation.stdout + evaluation.stderr
    assert "nvImageCodec" not in output and "Traceback" not in output


def test_refused_run_and_check_properties_leave_no_event_file(classification_run, tmp_path):
    from monai.bundle import ConfigWorkflow

    root, args, _, _ = classification_run
    before = sorted(root.rglob("events.out.tfevents.*"))
    result = run_bundle(CLASSIFICATION, ["train"], args, expect_failure=True)  # the folder holds a run
    assert "--resume true" in result.stderr
    assert sorted(root.rglob("events.out.tfevents.*")) == before

    elsewhere = {**args, "log_dir": str(tmp_path / "logs"), "ckpt_dir": str(tmp_path / "models")}
    workflow = ConfigWorkflow(
        config_file=str(BUNDLES / CLASSIFICATION / "configs" / "train.yaml"),
        workflow_type="train",
        bundle_root=str(BUNDLES / CLASSIFICATION),
        **elsewhere,
    )
    workflow.initialize()  # runs the config's initialize: the settings wait for the first write
    assert workflow.check_properties() == []  # builds the trainer, the evaluator and their handlers
    # every writer of the evaluation built, none written to
    evaluation = {**args, "log_dir": str(tmp_path / "logs")}  # the trained checkpoint, logs elsewhere
    parse_bundle(CLASSIFICATION, ["train", "evaluate"], evaluation).get_parsed_content("evaluate#evaluator")
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("segmentation")
    with np.load(shared_data / "dsb2018" / "dsb2018_256.npz") as data:
        images, masks, ids = data["images"][:20], data["masks"][:20], data["ids"][:20]
    for image, mask, sample in zip(images, masks, ids, strict=True):  # the Kaggle layout, one mask for all nuclei
        folder = root / "data" / "stage1_train" / str(sample)
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        Image.fromarray(image).save(folder / "images" / f"{sample}.png")
        Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).save(folder / "masks" / "nuclei.png")
    args = quick_run_overrides(
        root, root / "data", {"image_size": [32, 32], "network_channels": [4, 8, 16], "batch_size": 7}
    )
    run_bundle(SEGMENTATION, ["train"], args)
    evaluation = run_bundle(SEGMENTATION, ["train", "evaluate"], {**args, "progress_bar": True})
    return root, evaluation


def test_segmentation_tags_and_table(segmentation_run):
    root, evaluation = segmentation_run
    training = _events(root / "logs").Tags()
    assert set(training["scalars"]) == {"train/loss", "train/dice_loss", *(f"val/{s}" for s in SEGMENTATION_SCORES)}
    assert set(training["images"]) == {"val/overlays"}
    # ALL (the default loss) beside the Dice loss it wraps: train/dice_loss on Dice's scale, train/loss = ALL of it
    events = _events(root / "logs")
    dice = {e.step: e.value for e in events.Scalars("train/dice_loss")}
    loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert dice.keys() == loss.keys() and all(0.0 <= v <= 1.0 for v in dice.values())
    for step, value in dice.items():
        assert loss[step] == pytest.approx(adaptive_log_loss(torch.tensor(value)).item(), rel=1e-5, abs=1e-6)
    evaluate = _events(root / "logs" / "evaluate" / "test-model")
    assert set(evaluate.Tags()["scalars"]) == {f"test/{s}" for s in SEGMENTATION_SCORES}
    assert set(evaluate.Tags()["images"]) == {"test/overlays"}
    test = json.loads((root / "eval" / "test-model" / "metrics.json").read_text())["test"]
    assert evaluate.Scalars("test/dice")[0].value == pytest.approx(test["dice"], abs=1e-6)
    assert "evaluate: [" in evaluation.stderr and "Jaccard (IoU)" in evaluation.stdout
    assert f"{test['jaccard']:.3f}" in evaluation.stdout
