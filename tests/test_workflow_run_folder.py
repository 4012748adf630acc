"""Run folders: what an earlier run wrote is moved aside (nothing else); damaged checkpoints named with intact ones."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest
import torch

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import update_metrics_json
from monai_imbalance.workflow import (
    EVALUATION_KEY,
    RUN_LOCK_NAME,
    RUNS_KEY,
    CorruptCheckpointError,
    EarlierRunError,
    ForeignFilesError,
    RunFileNotFoundError,
    checked_checkpoint,
    earlier_run_files,
    epoch_checkpoints,
    move_aside,
    resume_checkpoint,
    start_training_run,
)


def _checkpoints(folder, *epochs):
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in epochs:
        torch.save({"model": {"w": torch.full((2,), float(epoch))}}, folder / f"last_checkpoint_epoch={epoch}.pt")


def test_epoch_checkpoints_newest_first(tmp_path):
    _checkpoints(tmp_path, 9, 10, 2)
    (tmp_path / "last_checkpoint_epoch=3.pt.corrupt").write_bytes(b"")
    assert [p.name for p in epoch_checkpoints(tmp_path)] == [f"last_checkpoint_epoch={e}.pt" for e in (10, 9, 2)]


def test_move_aside_renames_outermost_non_empty_folders_and_keeps_everything(tmp_path):
    models, logs, empty = tmp_path / "models", tmp_path / "models" / "logs", tmp_path / "empty"
    _checkpoints(models, 1)
    logs.mkdir()
    (logs / "events.out.tfevents.1").write_text("x")
    empty.mkdir()
    (tmp_path / "models.replaced-T").mkdir()  # the name is taken: a suffix keeps both
    moved = move_aside([models, logs, empty, None], stamp="T")
    target = tmp_path / "models.replaced-T-2"
    assert moved == {str(models): str(target)}
    assert (target / "last_checkpoint_epoch=1.pt").is_file() and (target / "logs" / "events.out.tfevents.1").is_file()
    assert not models.exists() and empty.is_dir()


def _earlier_run(root, *, record=True):
    """An earlier run: checkpoints and reports in models/, its event file in logs/, one evaluation in eval/."""
    models, logs, evals = root / "models", root / "logs", root / "eval"
    _checkpoints(models, 1, 2)
    (models / "model.pt").write_bytes(b"m")
    (models / "validation_confusion_matrix.png").write_bytes(b"p")
    host = socket.gethostname()
    if record:
        update_metrics_json(models / "metrics.json", {RUNS_KEY: [{"pid": 4242, "host": host, "started": "t"}]})
    else:
        (models / "metrics.json").write_text("{}")
    logs.mkdir()
    (logs / f"events.out.tfevents.1700000000.{host}.4242.0").write_text("x")
    ns = logs / "evaluate" / "test-model"
    ns.mkdir(parents=True)
    (ns / f"events.out.tfevents.1700000001.{host}.4243.1").write_text("e")
    record = {"checkpoint": {"file": str(models / "model.pt")}, "log_dir": str(ns)}
    update_metrics_json(evals / "test-model" / "metrics.json", {EVALUATION_KEY: record, "test": {"f1_macro": 0.1}})
    return models, logs, evals


def test_resume_checkpoint_with_overwrite_only_decides(tmp_path):
    models, _, _ = _earlier_run(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert resume_checkpoint(models, overwrite="true") is None
    assert sorted(tmp_path.rglob("*")) == before  # moving waits for start_training_run, after every check


def test_overwrite_moves_the_runs_files_and_its_evaluations_keeping_their_paths(tmp_path, caplog):
    models, logs, evals = _earlier_run(tmp_path)
    (models / RUN_LOCK_NAME).write_text("{}")  # this run's lock stays
    other = evals / "test-other"  # an evaluation of another model's checkpoint stays
    update_metrics_json(other / "metrics.json", {EVALUATION_KEY: {"checkpoint": {"file": "/elsewhere/model.pt"}}})
    with caplog.at_level("WARNING"):
        moved = start_training_run(models, overwrite=True, log_dir=logs, output_dir=evals, stamp="T")
    old_models, old_logs, old_evals = (tmp_path / f"{n}.replaced-T" for n in ("models", "logs", "eval"))
    assert moved == {str(models): str(old_models), str(logs): str(old_logs), str(evals): str(old_evals)}
    assert sorted(p.name for p in old_models.iterdir()) == [
        "last_checkpoint_epoch=1.pt",
        "last_checkpoint_epoch=2.pt",
        "metrics.json",
        "model.pt",
        "validation_confusion_matrix.png",
    ]
    assert len(list(old_logs.glob("events.out.tfevents.*"))) == 1
    assert len(list((old_logs / "evaluate" / "test-model").glob("events.out.tfevents.*"))) == 1
    assert (old_evals / "test-model" / "metrics.json").is_file() and other.is_dir()
    assert sorted(p.name for p in models.iterdir()) == ["metrics.json", RUN_LOCK_NAME]
    assert list(logs.iterdir()) == []  # the emptied evaluate/ folder is gone too
    # the new run is recorded: its event files are known as the bundle's next time
    runs = json.loads((models / "metrics.json").read_text())[RUNS_KEY]
    assert [r["pid"] for r in runs] == [os.getpid()]
    assert f"moved the earlier run's {models} to {old_models}" in caplog.text


@pytest.mark.parametrize("where", ["log_dir", "log_dir_subfolder", "ckpt_dir"])
def test_overwrite_refuses_a_folder_holding_foreign_files_and_moves_nothing(tmp_path, where):
    models, logs, evals = _earlier_run(tmp_path)
    if where == "log_dir":  # --log_dir shared_tb: another experiment's event file beside the run's
        foreign = logs / f"events.out.tfevents.1700000002.{socket.gethostname()}.999.0"
    elif where == "log_dir_subfolder":  # --log_dir configs, or another experiment's run folder
        (logs / "other_experiment").mkdir()
        foreign = logs / "other_experiment" / "train.yaml"
    else:
        foreign = models / "notes.txt"
    foreign.write_text("not the bundle's")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ForeignFilesError, match=re.escape(str(foreign))) as error:
        start_training_run(models, overwrite=True, log_dir=logs, output_dir=evals)
    assert isinstance(error.value, UserError) and "no run of this bundle wrote" in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_overwrite_of_a_folder_from_before_the_record_moves_its_event_files(tmp_path):
    models, logs, evals = _earlier_run(tmp_path, record=False)
    (logs / "evaluate" / "events.out.tfevents.1.host.1.0").write_text("0.2 layout")
    start_training_run(models, overwrite=True, log_dir=logs, output_dir=evals, stamp="T")
    old_logs = tmp_path / "logs.replaced-T"
    assert len(list(old_logs.rglob("events.out.tfevents.*"))) == 3


def test_without_an_earlier_run_a_shared_log_dir_is_left_alone(tmp_path):
    logs = tmp_path / "shared_tb"
    logs.mkdir()
    (logs / "events.out.tfevents.1.host.1.0").write_text("another experiment")
    assert start_training_run(tmp_path / "models", overwrite=True, log_dir=logs) == {}
    assert (logs / "events.out.tfevents.1.host.1.0").is_file()


def test_overwrite_without_anything_to_move_and_resume_append_the_run(tmp_path):
    models = tmp_path / "models"
    start_training_run(models, log_dir=tmp_path / "logs")
    start_training_run(models, log_dir=tmp_path / "logs")  # a resumed run
    runs = json.loads((models / "metrics.json").read_text())[RUNS_KEY]
    assert len(runs) == 2 and {r["host"] for r in runs} == {socket.gethostname()}


def test_earlier_run_files_lists_what_moves(tmp_path):
    models, logs, evals = _earlier_run(tmp_path)
    plan = earlier_run_files(models, log_dir=logs, output_dir=evals)
    assert plan[str(evals)] == [str(evals / "test-model")]
    assert sorted(plan[str(logs)]) == sorted(
        [str(logs / "evaluate" / "test-model"), *map(str, logs.glob("events.out.tfevents.*"))]
    )
    assert len(plan[str(models)]) == 5


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_latest_checkpoint_is_named_with_the_newest_intact_one(tmp_path, damage):
    _checkpoints(tmp_path, 1, 2, 3)
    latest = tmp_path / "last_checkpoint_epoch=3.pt"
    latest.write_bytes(b"" if damage == "empty" else latest.read_bytes()[:200])
    (tmp_path / "last_checkpoint_epoch=2.pt").write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpointError) as error:
        resume_checkpoint(tmp_path, resume=True)
    message = str(error.value)
    assert str(latest) in message and "newest intact checkpoint is last_checkpoint_epoch=1.pt" in message
    assert f"mv '{latest}' '{latest}.corrupt'" in message and isinstance(error.value, UserError)
    latest.rename(latest.with_name(latest.name + ".corrupt"))
    (tmp_path / "last_checkpoint_epoch=2.pt").unlink()
    assert resume_checkpoint(tmp_path, resume=True).endswith("last_checkpoint_epoch=1.pt")


def test_no_intact_checkpoint_left_suggests_overwrite(tmp_path):
    tmp_path.joinpath("last_checkpoint_epoch=1.pt").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=r"EOFError.*No intact checkpoint is left.*--overwrite true"):
        resume_checkpoint(tmp_path, resume=True)


def test_a_checkpoint_holding_code_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "last_checkpoint_epoch=1.pt"
    torch.save({"object": EarlierRunError("x")}, path)  # not a weights-only checkpoint
    with pytest.raises(CorruptCheckpointError, match="UnpicklingError"):
        resume_checkpoint(tmp_path, resume=True)


def test_checked_checkpoint(tmp_path):
    with pytest.raises(RunFileNotFoundError, match="train the bundle first"):
        checked_checkpoint(tmp_path / "model.pt")
    (tmp_path / "model.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CorruptCheckpointError, match=r"model\.pt cannot be read"):
        checked_checkpoint(tmp_path / "model.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    assert checked_checkpoint(tmp_path / "model.pt") == str(tmp_path / "model.pt")


def test_move_aside_refuses_to_move_the_working_folder(tmp_path, monkeypatch):
    _checkpoints(tmp_path / "eval", 1)
    monkeypatch.chdir(tmp_path / "eval")
    with pytest.raises(EarlierRunError, match="works inside it"):
        move_aside([tmp_path / "eval"])
