"""Unit tests of monai_imbalance.workflow.run_args: the run's command in its model folder, and resume commands."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import (
    RUN_ARGS_FILE,
    ResumeCommandError,
    bundle_run_in_process,
    check_resume_command,
    write_run_args,
)
from monai_imbalance.workflow.run_args import _run_args, resume_command_hint

CONFIG = {
    "loss_name": "lmf",
    "image_size": 224,
    "dataset_dir": "$@bundle_root + '/data'",
    "bundle_root": ".",
    "loss_kwargs": {"gamma": 2.0},
}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "configs" / "train.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_the_content_has_absolute_config_files_and_no_run_switches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = {"loss_name": "focal", "resume": "true", "overwrite": True, "split_fractions": {"train": 0.6}}
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text(yaml.safe_dump(CONFIG))
    content = _run_args("configs/train.yaml", overrides)
    assert content == {
        "config_file": [str(tmp_path / "configs" / "train.yaml")],
        "loss_name": "focal",
        "split_fractions": {"train": 0.6},
        "bundle_root": str(tmp_path),  # the config's "." is where training ran: absolute, for a resume elsewhere
    }
    given = _run_args("configs/train.yaml", {"bundle_root": "runs/a"})
    assert given["bundle_root"] == str(tmp_path / "runs" / "a")
    (tmp_path / "b.yaml").write_text("a: 1\n")  # a config without bundle_root: nothing added
    assert _run_args(["b.yaml"], {}) == {"config_file": [os.path.join(str(tmp_path), "b.yaml")]}


def test_written_only_in_a_bundle_run_and_read_back_by_monai_args_file(tmp_path, config_file):
    models = tmp_path / "models"
    models.mkdir()
    assert write_run_args(models) is None and not (models / RUN_ARGS_FILE).exists()  # Python code: no command
    with bundle_run_in_process(str(config_file), {"loss_name": "focal", "overwrite": "true"}):
        path = write_run_args(models)
    assert path == models / RUN_ARGS_FILE
    recorded = json.loads(path.read_text())
    assert recorded == {"config_file": [str(config_file)], "loss_name": "focal", "bundle_root": os.path.abspath(".")}
    from monai.bundle.scripts import update_kwargs

    # MONAI's --args_file reading: the file's values, replaced by the command line's
    assert update_kwargs(args=str(path), num_epochs=3)["loss_name"] == "focal"
    assert update_kwargs(args=str(path), loss_name="ce")["loss_name"] == "ce"


def test_the_hint_names_the_command_only_when_the_file_is_there(tmp_path, config_file):
    assert resume_command_hint(tmp_path) == ""
    with bundle_run_in_process(str(config_file), {}):
        write_run_args(tmp_path)
    assert resume_command_hint(tmp_path) == (
        f" (python -m monai.bundle run --args_file {tmp_path / RUN_ARGS_FILE} --resume true)"
    )


def _record(models, config_file, overrides):
    with bundle_run_in_process(str(config_file), overrides):
        write_run_args(models)


@pytest.mark.parametrize(
    ("recorded", "resume_overrides", "refused"),
    [
        ({"loss_name": "focal"}, {"loss_name": "focal"}, None),  # repeated
        ({"loss_name": "focal"}, {}, '--loss_name "focal"'),  # left out: the default lmf would train
        ({"loss_name": "lmf"}, {}, None),  # left out, but the config's own value is the same
        ({"dataset_dir": "/data/x"}, {}, '--dataset_dir "/data/x"'),  # the default is an expression
        ({"dataset_dir": "/data/x"}, {"dataset_dir": "/data/moved"}, None),  # given (anew): checked later
        ({"loss_kwargs#gamma": 3}, {}, "--loss_kwargs#gamma 3"),  # a nested key
        ({"loss_kwargs#gamma": 2.0}, {}, None),
        ({"num_epochs": 5}, {}, "--num_epochs 5"),  # not in this config at all
        ({}, {}, None),  # bundle_root: the config's ".", recorded absolute, is this same folder
    ],
)
def test_a_resume_command_must_carry_the_runs_overrides(tmp_path, config_file, recorded, resume_overrides, refused):
    models = tmp_path / "models"
    models.mkdir()
    _record(models, config_file, recorded)
    with bundle_run_in_process(str(config_file), {**resume_overrides, "resume": "true"}):
        if refused is None:
            check_resume_command(models)
            return
        with pytest.raises(ResumeCommandError) as caught:
            check_resume_command(models)
    message = str(caught.value)
    assert message.startswith(f"cannot resume the run in {models}: it was started with {refused}, and this command")
    assert f"python -m monai.bundle run --args_file {models / RUN_ARGS_FILE} --resume true" in message
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)


def test_a_resume_elsewhere_needs_the_runs_bundle_root(tmp_path, config_file, monkeypatch):
    """Trained from one folder (the config's ``bundle_root: .``), resumed from another: refused without the run's
    folder; the --args_file command gives it."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.chdir(tmp_path)
    _record(models, config_file, {})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with bundle_run_in_process(str(config_file), {"resume": "true"}), pytest.raises(ResumeCommandError) as caught:
        check_resume_command(models)
    assert f'started with --bundle_root "{tmp_path}"' in str(caught.value)
    with bundle_run_in_process(str(config_file), {"resume": "true", "bundle_root": str(tmp_path)}):
        check_resume_command(models)


def test_nothing_to_check_without_the_file_or_outside_a_run(tmp_path, config_file):
    check_resume_command(tmp_path)  # a folder of 0.2: no run_args.json
    _record(tmp_path, config_file, {"loss_name": "focal"})
    check_resume_command(tmp_path)  # Python code, not a bundle run
    with bundle_run_in_process(None, {"resume": "true"}), pytest.raises(ResumeCommandError):
        check_resume_command(tmp_path)  # no config file given: the recorded ones are read
