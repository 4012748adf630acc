"""Each evaluation has its own place: names, the checkpoint's epoch and hash, refusal and replacement, the record."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import update_metrics_json
from monai_imbalance.workflow import (
    BEST_CHECKPOINT_KEY,
    EVALUATION_KEY,
    EvaluationExistsError,
    describe_checkpoint,
    evaluation_name,
    finish_evaluation,
    prepare_evaluation,
)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "test-model"),
        ({"mc_dropout": "true", "mc_samples": 50}, "test-model-mc50"),
        ({"mc_dropout": False, "mc_samples": 50}, "test-model"),
        ({"decision_rule": True}, "test-model-threshold"),
        ({"mc_dropout": True, "mc_samples": 3, "decision_rule": "true"}, "test-model-mc3-threshold"),
    ],
)
def test_evaluation_name(kwargs, name):
    assert evaluation_name(split="test", checkpoint="/runs/a/models/model.pt", **kwargs) == name


def test_evaluation_name_of_an_epoch_checkpoint_is_a_safe_folder_name():
    assert evaluation_name(split="val", checkpoint="last_checkpoint_epoch=3.pt") == "val-last_checkpoint_epoch_3"


def _model(folder, value=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.full((2,), value)}, folder / "model.pt")
    return folder / "model.pt"


def test_the_epoch_of_model_pt_is_the_recorded_best_epoch_when_the_hash_matches(tmp_path, caplog):
    path = _model(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    update_metrics_json(
        tmp_path / "metrics.json", {BEST_CHECKPOINT_KEY: {"file": "model.pt", "epoch": 2, "sha256": digest}}
    )
    assert describe_checkpoint(path) == {"file": str(path), "epoch": 2, "sha256": digest}
    _model(tmp_path, value=5.0)  # replaced by hand since: the record no longer describes it
    with caplog.at_level("WARNING"):
        assert describe_checkpoint(path)["epoch"] is None
    assert "is not recorded" in caplog.text


def test_the_epoch_of_a_folder_without_the_record_is_unknown(tmp_path):
    assert describe_checkpoint(_model(tmp_path))["epoch"] is None


def test_the_epoch_of_an_epoch_checkpoint_is_in_its_name(tmp_path):
    torch.save({"model": {}}, tmp_path / "last_checkpoint_epoch=7.pt")
    assert describe_checkpoint(tmp_path / "last_checkpoint_epoch=7.pt")["epoch"] == 7


def _prepare(tmp_path, **kwargs):
    checkpoint = {"file": str(tmp_path / "models" / "model.pt"), "epoch": 2, "sha256": "abc"}
    settings = {"checkpoint": checkpoint, "split": "test", "mc_dropout": True, "mc_samples": 5, "mc_batch_size": 2}
    return prepare_evaluation(
        tmp_path / "eval" / "test-model-mc5", log_dir=tmp_path / "logs" / "ns", **settings, **kwargs
    )


def test_prepare_evaluation_records_the_checkpoint_mc_and_threshold_settings(tmp_path):
    record = _prepare(tmp_path, threshold={"use_threshold": True, "threshold": 0.3})
    written = json.loads((tmp_path / "eval" / "test-model-mc5" / "metrics.json").read_text())[EVALUATION_KEY]
    assert written == record
    assert record["checkpoint"] == {"file": str(tmp_path / "models" / "model.pt"), "epoch": 2, "sha256": "abc"}
    assert record["mc_dropout"] == {"enabled": True, "samples": 5, "batch_size": 2}
    assert record["threshold"] == {"use_threshold": True, "threshold": 0.3}
    assert record["name"] == "test-model-mc5" and record["split"] == "test"
    assert record["log_dir"] == str(tmp_path / "logs" / "ns")


def test_an_existing_evaluation_is_refused_unless_overwrite_which_moves_it_aside(tmp_path):
    _prepare(tmp_path)
    eval_dir = tmp_path / "eval" / "test-model-mc5"
    update_metrics_json(eval_dir / "metrics.json", {"test": {"f1_macro": 0.0869}})
    with pytest.raises(EvaluationExistsError, match="--overwrite true") as error:
        _prepare(tmp_path)
    assert isinstance(error.value, UserError)
    assert json.loads((eval_dir / "metrics.json").read_text())["test"]["f1_macro"] == 0.0869
    _prepare(tmp_path, overwrite="true")
    (old,) = (tmp_path / "eval").glob("test-model-mc5.replaced-*")
    assert json.loads((old / "metrics.json").read_text())["test"]["f1_macro"] == 0.0869
    assert "test" not in json.loads((eval_dir / "metrics.json").read_text())


def test_an_existing_tensorboard_namespace_alone_is_refused_too(tmp_path):
    (tmp_path / "logs" / "ns").mkdir(parents=True)
    (tmp_path / "logs" / "ns" / "events.out.tfevents.1.h.1.0").write_text("x")
    with pytest.raises(EvaluationExistsError, match="ns"):
        _prepare(tmp_path)


def test_finish_evaluation_never_leaves_a_guessed_epoch(tmp_path):
    path = tmp_path / "metrics.json"
    record = {"checkpoint": {"epoch": None}}
    update_metrics_json(path, {EVALUATION_KEY: record, "test": {"epoch": 1, "f1": 0.5}, "note": "x"})
    content = finish_evaluation(path)
    assert content["test"] == {"epoch": None, "f1": 0.5} and content["note"] == "x"
    update_metrics_json(path, {EVALUATION_KEY: {"checkpoint": {"epoch": 4}}, "test": {"epoch": 4}})
    assert finish_evaluation(path)["test"]["epoch"] == 4
