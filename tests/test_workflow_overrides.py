"""Checked overrides: the monai.bundle command line read back, misspelt keys refused with the closest ones."""

from __future__ import annotations

import sys

import pytest
import yaml

from monai_imbalance.workflow import (
    UnknownOverrideError,
    bundle_command,
    bundle_run_in_process,
    check_override_keys,
    check_overrides,
)

MAIN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"
CONFIG = {
    "loss_name": "ce",
    "loss_kwargs": {},
    "train": {"dataloader": {"_target_": "DataLoader", "num_workers": 2}, "handlers": [{"_target_": "A"}]},
}


def test_bundle_command_reads_fire_style_arguments():
    argv = [MAIN, "run", "training", "--config_file", "['a.yaml','b.yaml']", "--loss_name=focal", "--resume"]
    argv += ["--train#dataloader#num_workers", "0", "--image-size", "32", "--logging_file", "log.conf"]
    config_file, overrides = bundle_command(argv)
    assert config_file == ["a.yaml", "b.yaml"]  # the list Fire makes of it
    # run's own arguments (config_file, logging_file) and the positional run_id are not overrides
    assert overrides == {"loss_name": "focal", "resume": True, "train#dataloader#num_workers": 0, "image_size": 32}


def test_values_are_read_as_fire_reads_them():
    _, overrides = bundle_command([MAIN, "run", "--split_fractions", "{train: 0.6, val: 0.4}", "--amp", "false"])
    assert overrides == {"split_fractions": {"train": 0.6, "val": 0.4}, "amp": "false"}


def test_bundle_command_merges_the_args_file_under_the_command_line(tmp_path):
    args_file = tmp_path / "args.yaml"
    args_file.write_text(yaml.safe_dump({"config_file": "train.yaml", "loss_name": "focal", "seed": 3}))
    _, overrides = bundle_command([MAIN, "run", "--args_file", str(args_file), "--seed", "5"])
    assert overrides == {"loss_name": "focal", "seed": 5}


def test_bundle_command_is_none_outside_a_bundle_run():
    assert bundle_command(["/usr/bin/pytest", "run", "--loss_name", "x"]) is None
    assert bundle_command([MAIN, "download", "--name", "x"]) is None
    assert check_overrides(["pytest"]) == {}


def test_existing_keys_paths_list_indices_and_free_form_kwargs_pass():
    check_override_keys(CONFIG, ["loss_name", "train#dataloader#num_workers", "train#handlers#0", "loss_kwargs#delta"])
    check_override_keys(CONFIG, ["_meta_#version"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "loss_nmae",
            r"unknown override --loss_nmae: no such key in the configs; did you mean --loss_name or --loss_kwargs\?",
        ),
        ("train#dataloader#num_workerz", r"'train#dataloader' has no such entry .*--train#dataloader#num_workers"),
        ("train#handlers#3", r"'train#handlers' has no such entry"),
        ("zzz", r"no such key in the configs; check the spelling"),
    ],
)
def test_unknown_keys_are_refused_with_the_closest_ones(key, expected):
    with pytest.raises(UnknownOverrideError, match=expected) as error:
        check_override_keys(CONFIG, [key])
    assert isinstance(error.value, KeyError) and not str(error.value).startswith("'")  # readable, not repr-quoted


def test_a_new_key_under_a_component_is_refused():
    with pytest.raises(UnknownOverrideError, match="train#dataloader#shuffle"):
        check_override_keys(CONFIG, ["train#dataloader#shuffle"])


def test_check_overrides_reads_the_config_files_from_disk(tmp_path, monkeypatch):
    train = tmp_path / "train.yaml"
    train.write_text(yaml.safe_dump(CONFIG))
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"mc_dropout": False}))
    files = f"['{train}','{extra}']"
    assert check_overrides([MAIN, "run", "--config_file", files, "--mc_dropout", "true"]) == {"mc_dropout": "true"}
    monkeypatch.setattr(sys, "argv", [MAIN, "run", "--config_file", str(train), "--mc_dropout", "true"])
    with pytest.raises(UnknownOverrideError, match=rf"--mc_dropout: no such key in {train}"):
        check_overrides()


def test_an_in_process_run_is_checked_and_read_like_a_command_line(tmp_path):
    """ConfigWorkflow runs made in Python (the comparison tables) have no sys.argv: the block stands in for it."""
    train = tmp_path / "train.yaml"
    train.write_text(yaml.safe_dump(CONFIG))
    assert bundle_command() is None  # pytest's own command line
    with bundle_run_in_process([str(train)], {"loss_name": "focal", "config_file": "x.yaml", "bundle_root": "."}):
        # run-level arguments are not overrides; bundle_root is a key of every bundle (here: of none)
        assert bundle_command() == ([str(train)], {"loss_name": "focal", "bundle_root": "."})
        assert bundle_command(["pytest"]) is None  # an explicit command line still wins
    assert bundle_command() is None  # only for the duration of the block
    with (
        bundle_run_in_process([str(train)], {"loss_nmae": "focal"}),
        pytest.raises(UnknownOverrideError, match=r"--loss_nmae: no such key .* did you mean --loss_name"),
    ):
        check_overrides()
    with bundle_run_in_process([str(train)], {"loss_name": "focal", "train#dataloader#num_workers": 0}):
        assert check_overrides() == {"loss_name": "focal", "train#dataloader#num_workers": 0}


RUN_CONFIG = {
    "imports": ["$import monai_imbalance"],
    "loss_name": "ce",
    "num_epochs": 2,
    "format_kwargs": {"knee_folders": {"patient_split": True}},
    "seen": "$monai_imbalance.workflow.run_overrides()",  # read during `run`, after initialize
    "initialize": ["$monai_imbalance.workflow.check_overrides()"],
    "run": ["$@seen"],
}


def _run_config(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(RUN_CONFIG))
    return str(path)


def _run_in_python(**kwargs):
    """``monai.bundle.run`` as a user calls it from Python; returns what the workflow's ``run`` saw."""
    from monai.bundle.scripts import create_workflow

    workflow = create_workflow(logging_file=False, **kwargs)
    return workflow.run()[0]


def test_a_run_made_in_python_is_checked_from_its_keyword_arguments(tmp_path):
    """Issue 19 (Why 7): monai.bundle.run(config_file=..., mc_dropuot=True) ran to the end; sys.argv is pytest's."""
    import monai.bundle

    from monai_imbalance.workflow import find_user_error

    config = _run_config(tmp_path)
    assert _run_in_python(config_file=config, loss_name="focal") == {"loss_name": "focal"}
    with pytest.raises(Exception) as error:  # MONAI wraps it in "Failed to evaluate ConfigExpression"
        monai.bundle.run(config_file=config, loss_nmae="focal", logging_file=False)
    user_error = find_user_error(error.value)
    assert isinstance(user_error, UnknownOverrideError)
    assert "--loss_nmae: no such key" in str(user_error) and "--loss_name" in str(user_error)


def test_an_args_file_given_in_python_is_checked_and_read_under_the_keyword_arguments(tmp_path):
    args_file = tmp_path / "args.yaml"
    args_file.write_text(yaml.safe_dump({"config_file": _run_config(tmp_path), "loss_name": "focal", "num_epochs": 3}))
    assert _run_in_python(args_file=str(args_file), num_epochs=4) == {"loss_name": "focal", "num_epochs": 4}
    args_file.write_text(yaml.safe_dump({"config_file": _run_config(tmp_path), "num_epochz": 3}))
    with pytest.raises(Exception, match="ConfigExpression") as error:
        _run_in_python(args_file=str(args_file))
    assert "did you mean --num_epochs" in str(error.value.__cause__)


def test_run_overrides_outside_a_run_are_empty():
    from monai_imbalance.workflow import run_overrides

    assert run_overrides() == {}  # pytest's own command line, no monai.bundle call on the stack


def test_a_value_out_of_range_stops_a_python_run_before_any_work(tmp_path):
    from monai_imbalance.workflow import OverrideValueError, find_user_error

    with pytest.raises(Exception) as error:
        _run_in_python(config_file=_run_config(tmp_path), num_epochs=1.5)
    user_error = find_user_error(error.value)
    assert isinstance(user_error, OverrideValueError)
    assert str(user_error) == "--num_epochs 1.5: the number of training epochs must be an integer >= 1"


def test_a_missing_parent_key_names_the_closest_existing_key(tmp_path):
    """Issue 19: --format_kwargs#knee_foldr#x 1 failed in MONAI's parser (KeyError 'query key', 46 lines)."""
    from monai_imbalance.workflow import explain_override_failure, find_user_error

    with pytest.raises(KeyError, match="query key") as error:  # raised by ConfigWorkflow's constructor
        _run_in_python(config_file=_run_config(tmp_path), **{"format_kwargs#knee_foldr#x": 1})
    explained = find_user_error(error.value)
    assert isinstance(explained, UnknownOverrideError) and explained.__cause__ is error.value
    assert "'format_kwargs' has no such entry" in str(explained)
    assert "did you mean --format_kwargs#knee_folders " in str(explained)
    assert explain_override_failure(KeyError("query key: x")) is None  # not from a workflow's constructor
    assert explain_override_failure(ValueError("other")) is None


def test_an_override_of_none_that_monai_would_drop_is_refused(tmp_path):
    """monai.bundle run leaves out every override whose value is None (update_kwargs): the default stayed silently."""
    from monai_imbalance.workflow import OverrideValueError, find_user_error

    config = _run_config(tmp_path)
    with pytest.raises(Exception) as error:
        _run_in_python(config_file=config, num_epochs=None)
    user_error = find_user_error(error.value)
    assert isinstance(user_error, OverrideValueError)
    assert str(user_error).startswith("--num_epochs None: monai.bundle run ignores an override whose value is None")
    assert "keep the config's 2; write --num_epochs '$None'" in str(user_error)
    args_file = tmp_path / "args.yaml"
    args_file.write_text(yaml.safe_dump({"config_file": config, "loss_name": "focal"}))
    # run's own arguments of None (meta_file, logging_file, ... left out) are not overrides, and the args file's
    # config_file is kept
    assert _run_in_python(args_file=str(args_file), meta_file=None) == {"loss_name": "focal"}
