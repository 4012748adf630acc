"""Issue 19's user inputs on real bundles: each ends before any work in one line naming the key and both values."""

from __future__ import annotations

import errno
import os
import sys

import pytest
from bundle_runner import BUNDLES, quick_run_overrides, run_bundle, run_bundle_in_process, tiny_dermamnist_overrides

from monai_imbalance.workflow import output_space

pytestmark = pytest.mark.e2e

KNEE = "knee_oa_grading"


def _knee(tmp_path, shared_data, **settings):
    return quick_run_overrides(
        tmp_path,
        shared_data / "knee_kl" / "png224_sample",
        {"network_name": "small_cnn", "image_size": 32, "batch_size": 16, "num_epochs": 1, **settings},
    )


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def knee_model(tmp_path_factory, shared_data):
    """A knee model (5 classes, 1 channel) trained for one epoch."""
    root = tmp_path_factory.mktemp("knee")
    run_bundle_in_process(KNEE, ["train"], _knee(root, shared_data))
    return root / "models" / "model.pt"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"num_epochs": 1.5}, "error: --num_epochs 1.5: the number of training epochs must be an integer >= 1"),
        ({"batch_size": -4}, "error: --batch_size -4: the training batch size must be an integer >= 1"),
        ({"learning_rate": "abc"}, "error: --learning_rate 'abc': the optimiser's learning rate must be a number > 0"),
        ({"image_size": -32}, "error: --image_size -32: the network input size in pixels must be an integer >= 1"),
        (
            {"batch_size": 100000, "sampler_name": "batch_balanced"},
            "error: --batch_size 100000: larger than the 32 training items; use --batch_size 32 or less",
        ),
    ],
)
def test_bad_values_end_in_one_line_before_any_work(tmp_path, shared_data, settings, expected):
    result = run_bundle_in_process(KNEE, ["train"], _knee(tmp_path, shared_data, **settings), expect_failure=True)
    assert _one_line_error(result).startswith(expected)
    assert not list((tmp_path / "models").glob("*.pt")) and not (tmp_path / "logs").exists()


def test_a_missing_parent_key_names_the_closest_one(tmp_path, shared_data):
    """MONAI fails in the workflow's constructor; ``find_user_error`` (the error hook, this harness) explains it.

    A ``python -m monai.bundle run`` command fails before any config imports ``monai_imbalance``, so there the
    hook is not installed yet and MONAI's own traceback remains; ``python -m monai_imbalance.bundles run`` (below)
    installs it first."""
    overrides = {**_knee(tmp_path, shared_data), "format_kwargs#knee_foldr#x": 1}
    line = _one_line_error(run_bundle_in_process(KNEE, ["train"], overrides, expect_failure=True))
    assert line.startswith("error: unknown override --format_kwargs#knee_foldr#x: 'format_kwargs' has no such entry")
    assert "did you mean --format_kwargs#knee_folders" in line


def test_the_command_line_missing_parent_key_ends_in_one_line_with_the_package_command(tmp_path, shared_data):
    """Issue 19: typed on the command line, the same mistake ended in MONAI's 46 lines. With
    ``python -m monai_imbalance.bundles run`` (MONAI's command, the same arguments) it is one line; with
    ``python -m monai.bundle run`` MONAI's traceback stays, and its middle names the closest key (the README says
    so)."""
    overrides = {**_knee(tmp_path, shared_data), "format_kwargs#knee_foldr#x": 1}
    ours = run_bundle(KNEE, ["train"], overrides, expect_failure=True, command_module="monai_imbalance.bundles")
    assert ours.returncode == 1
    line = _one_line_error(ours)
    assert line.startswith("error: unknown override --format_kwargs#knee_foldr#x: 'format_kwargs' has no such entry")
    assert "did you mean --format_kwargs#knee_folders" in line
    assert not (tmp_path / "models").exists()
    # MONAI's own failure, as `python -m monai.bundle run` prints it (the workflow is built the same way)
    from monai.bundle import ConfigWorkflow

    with pytest.raises(KeyError, match="query key: knee_foldr") as caught:
        ConfigWorkflow(config_file=str(BUNDLES / KNEE / "configs" / "train.yaml"), logging_file=False, **overrides)
    assert "did you mean 'knee_folders'?" in str(caught.value.__cause__)


def test_the_package_command_runs_a_bundle_as_monai_does(tmp_path, shared_data):
    """``python -m monai_imbalance.bundles run`` hands its arguments to MONAI unchanged: a run trains as
    ``python -m monai.bundle run`` would (its errors: the test above)."""
    run_bundle(KNEE, ["train"], _knee(tmp_path, shared_data), command_module="monai_imbalance.bundles")
    assert (tmp_path / "models" / "model.pt").is_file() and (tmp_path / "models" / "model_settings.json").is_file()


def test_an_empty_class_under_ldam_names_the_class(tmp_path, shared_data):
    """Issue 19: a class with no training images under LMF / LDAM ended in 89 lines."""
    overrides = _knee(tmp_path, shared_data, loss_name="ldam", class_names=["0", "1", "2", "3", "4", "5"])
    line = _one_line_error(run_bundle_in_process(KNEE, ["train"], overrides, expect_failure=True))
    assert line.startswith("error: no training images of '5' (class 5), and --loss_name ldam sets per-class margins")


def test_a_knee_checkpoint_in_the_skin_bundle_names_both_shapes(tmp_path, shared_data, knee_model):
    """Issue 19: a knee checkpoint (5 classes, grey) in the skin bundle (7 classes, RGB): 131 lines."""
    overrides = tiny_dermamnist_overrides(tmp_path, shared_data, ckpt_path=str(knee_model))
    result = run_bundle_in_process("skin_lesion_classification", ["train", "evaluate"], overrides, expect_failure=True)
    line = _one_line_error(result)
    assert line.startswith(f"error: {knee_model} does not fit the network: ")
    assert "[16, 1, 3, 3] in the checkpoint, [16, 3, 3, 3] in the network" in line, line
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_a_read_only_output_folder_stops_evaluation_before_it_starts(tmp_path, shared_data, knee_model, monkeypatch):
    """Issue 19: an evaluation into a read-only folder ran to the end and then failed (109 lines)."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output_space.tempfile, "mkstemp", read_only)
    overrides = _knee(tmp_path, shared_data, ckpt_dir=str(knee_model.parent))
    result = run_bundle_in_process(KNEE, ["train", "evaluate"], overrides, expect_failure=True)
    line = _one_line_error(result)
    assert line.startswith(f"error: --output_dir {tmp_path / 'eval'}: cannot write in") and "Read-only" in line
    assert "SupervisedEvaluator" not in result.stdout  # stopped before the first image was evaluated
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_the_package_command_explains_itself_and_needs_a_config(capsys):
    """``python -m monai_imbalance.bundles run`` without a config, or with ``--help``: MONAI's command ends both in a
    ``TypeError`` traceback (``ConfigWorkflow`` misses ``config_file``)."""
    from monai_imbalance.bundles.__main__ import main

    assert main(["run"]) == 2
    assert capsys.readouterr().err == "error: run needs --config_file (e.g. configs/train.yaml) or --args_file\n"
    assert main(["run", "--loss_name", "focal"]) == 2
    capsys.readouterr()
    assert main(["run", "--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m monai_imbalance.bundles run --config_file FILE")
    assert "--args_file <ckpt_dir>/run_args.json --resume true" in shown


def test_the_package_command_names_a_missing_config_or_args_file(tmp_path, monkeypatch):
    """MONAI ends a misspelt ``--config_file`` / ``--args_file`` in a ``FileNotFoundError`` traceback."""
    from monai_imbalance.workflow import run_monai_bundle_command
    from monai_imbalance.workflow.run_folder import RunFileNotFoundError

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the command installs its hook: restored afterwards
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text("a: 1\n")
    for args, named in (
        (["--config_file", "configs/trian.yaml"], "--config_file configs/trian.yaml"),
        (["--config_file", "['configs/train.yaml','configs/evalute.yaml']"], "--config_file configs/evalute.yaml"),
        (["--args_file", "models/run_args.json", "--resume", "true"], "--args_file models/run_args.json"),
    ):
        with pytest.raises(RunFileNotFoundError, match=f"^{named}: no such file"):
            run_monai_bundle_command(["run", *args])
