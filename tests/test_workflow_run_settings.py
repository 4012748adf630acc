"""Recorded run settings: metrics.json "settings" and TensorBoard text and HParams."""

from __future__ import annotations

import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from monai_imbalance.workflow import record_run_settings, run_overrides

MAIN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"


def test_run_overrides_leave_out_the_run_folder_switches():
    argv = [MAIN, "run", "--config_file", "train.yaml", "--loss_name", "focal", "--resume", "true", "--overwrite"]
    assert run_overrides(argv) == {"loss_name": "focal"}
    assert run_overrides(["pytest"]) == {}


def test_settings_go_to_metrics_json_and_tensorboard(tmp_path):
    metrics = tmp_path / "models" / "metrics.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"validation": {"accuracy": 0.5}}))
    writer = SummaryWriter(log_dir=str(tmp_path / "logs"))
    settings = {"loss": "focal", "seed": 3, "image_size": [32, 32], "class_weights": torch.tensor([1.0, 2.0])}
    recorded = record_run_settings(metrics, settings, summary_writer=writer, overrides={"loss_name": "focal"})
    writer.close()

    expected = {"loss": "focal", "seed": 3, "image_size": [32, 32], "class_weights": [1.0, 2.0]}
    expected["overrides"] = {"loss_name": "focal"}
    assert recorded == expected
    content = json.loads(metrics.read_text())
    assert content == {"settings": expected, "validation": {"accuracy": 0.5}}  # other entries kept

    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"tensors": 0}).Reload()
    (text,) = events.Tensors("settings/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert '| loss | `"focal"` |' in table and "| image_size | `[32, 32]` |" in table
    session = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(session).session_start_info.hparams
    assert hparams["loss"].string_value == "focal" and hparams["seed"].number_value == 3
    assert hparams["image_size"].string_value == "[32, 32]" and hparams["overrides/loss_name"].string_value == "focal"
    assert "_hparams_/experiment" not in events.PluginTagToContent("hparams")


def test_ranks_above_zero_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    record_run_settings(tmp_path / "metrics.json", {"seed": 0}, overrides={})
    assert not (tmp_path / "metrics.json").exists()
