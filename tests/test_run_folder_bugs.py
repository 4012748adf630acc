"""Run folders and evaluation places (issue 18, items 4-6), end to end on a tiny knee run on the CPU.

One regression test per reported bug: two runs in one folder, ``--overwrite true`` moving what is not its own
(a shared ``--log_dir``, a misspelt ``--loss_name`` checked only after the move, the old model's evaluation left
beside the new one), evaluations overwriting and mixing (re-runs, plain and MC in one place, the epoch of the
evaluated checkpoint, what the record says).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_runner import read_json, run_bundle_in_process

pytestmark = pytest.mark.e2e

BUNDLE = "knee_oa_grading"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _ending(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr[-3000:]
    return lines[-1]


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    """A 2-epoch run validated only at epoch 2 (``val_interval 2``): its best model is epoch 2's, not epoch 1's."""
    root = tmp_path_factory.mktemp("knee")
    args = {
        "dataset_dir": str(shared_data / "knee_kl" / "png224_sample"),
        "num_workers": 0,
        "progress_bar": False,
        "num_epochs": 2,
        "val_interval": 2,
        "network_name": "small_cnn",
        "image_size": 32,
        "batch_size": 4,
    }
    run_bundle_in_process(BUNDLE, ["train"], {**args, **_folders(root)})
    return root, args


def _folders(root: Path) -> dict[str, str]:
    return {"ckpt_dir": str(root / "models"), "log_dir": str(root / "logs"), "output_dir": str(root / "eval")}


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run folder, and the overrides that point at it."""
    root, args = trained
    copy = tmp_path / "run"
    shutil.copytree(root, copy)
    return copy, {**args, **_folders(copy)}


def _evaluate(settings, *, expect_failure=False, **extra):
    return run_bundle_in_process(
        BUNDLE, ["train", "evaluate"], {**settings, "n_boot": 10, **extra}, expect_failure=expect_failure
    )


# ---------------------------------------------------------------- one run per folder at a time


def test_a_second_run_is_refused_at_once_while_the_lock_is_held(run):
    """Bug: the same command started twice 2 s apart: both started, the second crashed, the folder ended mixed."""
    root, settings = run
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T10:00:00", "command": "train"}
    (root / "models" / "run.lock").write_text(json.dumps(owner))  # a live holder: this test's own process
    before = _files(root)
    result = run_bundle_in_process(
        BUNDLE, ["train"], {**settings, "resume": True, "num_epochs": 3}, expect_failure=True
    )
    last = _ending(result)
    assert f"in use by train pid {os.getpid()} on {socket.gethostname()} since 2026-01-01T10:00:00" in last
    assert _files(root) == before  # nothing written, the holder's lock untouched
    # an evaluation into the same output folder and name is refused the same way
    (root / "eval").mkdir()
    (root / "eval" / "test-model.lock").write_text(json.dumps({**owner, "command": "evaluate"}))
    assert "in use by evaluate pid" in _ending(_evaluate(settings, expect_failure=True))
    assert not (root / "eval" / "test-model").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_said_so(run):
    root, settings = run
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    owner = {"pid": process.pid, "host": socket.gethostname(), "started": "2026-01-01T10:00:00", "command": "train"}
    (root / "models" / "run.lock").write_text(json.dumps(owner))
    result = run_bundle_in_process(BUNDLE, ["train"], {**settings, "resume": True, "num_epochs": 3})
    assert f"taking over the stale lock of train pid {process.pid}" in result.stdout + result.stderr
    assert (root / "models" / "last_checkpoint_epoch=3.pt").is_file()
    assert not (root / "models" / "run.lock").exists()  # released at the end


def test_a_command_line_run_releases_its_lock(run):
    """The real command: the lock is gone after a finished run and after a refused one."""
    root, settings = run
    args = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml", *args]
    bundle = Path(__file__).resolve().parents[1] / "bundles" / BUNDLE
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    refused = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "--resume true" in refused.stderr.strip().splitlines()[-1]
    assert not (root / "models" / "run.lock").exists()


# ---------------------------------------------------------------- --overwrite true moves only its own files


def test_overwrite_is_refused_when_the_log_dir_holds_another_experiments_logs(run):
    """Bug: with --log_dir shared_tb (another experiment's logs) the whole folder was renamed."""
    root, settings = run
    foreign = root / "logs" / f"events.out.tfevents.1700000000.{socket.gethostname()}.1.0"
    foreign.write_text("another experiment's run")
    before = _files(root)
    last = _ending(run_bundle_in_process(BUNDLE, ["train"], {**settings, "overwrite": True}, expect_failure=True))
    assert str(foreign) in last and "no run of this bundle wrote" in last
    assert _files(root) == before


def test_overwrite_is_refused_for_a_log_dir_that_is_not_a_log_folder(run):
    """Bug: --log_dir configs renamed the bundle's configs folder."""
    root, settings = run
    configs = root / "configs"
    configs.mkdir()
    (configs / "train.yaml").write_text("a: 1\n")
    shutil.move(root / "logs", configs / "logs_of_the_run")  # a log folder that holds something else too
    settings = {**settings, "log_dir": str(configs), "overwrite": True}
    last = _ending(run_bundle_in_process(BUNDLE, ["train"], settings, expect_failure=True))
    assert str(configs / "logs_of_the_run") in last or str(configs / "train.yaml") in last
    assert (configs / "train.yaml").is_file() and not list(root.glob("configs.replaced-*"))


def test_overwrite_with_a_misspelt_loss_moves_nothing(run):
    """Bug: --overwrite true --loss_name focl moved the old run aside first, then failed."""
    root, settings = run
    before = _files(root)
    last = _ending(
        run_bundle_in_process(
            BUNDLE, ["train"], {**settings, "overwrite": True, "loss_name": "focl"}, expect_failure=True
        )
    )
    assert "focl" in last and "focal" in last
    assert _files(root) == before


def test_the_replaced_models_evaluations_move_with_it(run):
    """Bug: after a retrain with --overwrite true the old model's eval/metrics.json stayed beside the new one."""
    root, settings = run
    _evaluate(settings)
    _evaluate(settings, mc_dropout=True, mc_samples=2)
    result = run_bundle_in_process(BUNDLE, ["train"], {**settings, "overwrite": True, "num_epochs": 1})
    (old_models,) = root.glob("models.replaced-*")
    (old_evals,) = root.glob("eval.replaced-*")
    (old_logs,) = root.glob("logs.replaced-*")
    assert sorted(p.name for p in old_evals.iterdir()) == ["test-model", "test-model-mc2"]
    assert sorted(p.name for p in (old_logs / "evaluate").iterdir()) == ["test-model", "test-model-mc2"]
    assert (old_models / "model.pt").is_file() and len(list(old_logs.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in (root / "eval").iterdir()] == []  # nothing of the old model beside the new one
    assert not (root / "logs" / "evaluate").exists() and len(list((root / "logs").glob("events.*"))) == 1
    assert f"to {old_evals}" in result.stdout + result.stderr


# ---------------------------------------------------------------- each evaluation has its own place


def test_evaluations_have_their_own_places_and_records(run):
    """Bugs: re-running evaluate overwrote eval/metrics.json; plain and MC evaluations shared logs/evaluate;
    eval/metrics.json said epoch 1 when the best checkpoint was epoch 2; no checkpoint nor MC settings recorded."""
    root, settings = run
    _evaluate(settings)
    _evaluate(settings, mc_dropout=True, mc_samples=2, mc_batch_size=2)
    plain, mc = root / "eval" / "test-model", root / "eval" / "test-model-mc2"
    for folder in (plain, mc):
        assert (folder / "metrics.json").is_file() and (folder / "bland_altman.png").is_file()
        assert len(list((root / "logs" / "evaluate" / folder.name).glob("events.out.tfevents.*"))) == 1

    best = read_json(root / "models" / "metrics.json")
    assert best["best_checkpoint"]["epoch"] == best["validation"]["epoch"] == 2
    digest = hashlib.sha256((root / "models" / "model.pt").read_bytes()).hexdigest()
    record = read_json(mc / "metrics.json")
    assert record["evaluation"]["checkpoint"] == {
        "file": str(root / "models" / "model.pt"),
        "epoch": 2,
        "sha256": digest,
    }
    assert record["evaluation"]["mc_dropout"] == {"enabled": True, "samples": 2, "batch_size": 2}
    assert read_json(plain / "metrics.json")["evaluation"]["mc_dropout"]["enabled"] is False
    assert record["evaluation"]["threshold"] == {"use_threshold": False}
    assert record["test"]["epoch"] == 2  # the checkpoint's epoch, not the evaluator's own count

    # the same evaluation again is refused; --overwrite true moves the earlier one aside
    scores = read_json(mc / "metrics.json")["test"]
    last = _ending(_evaluate(settings, expect_failure=True, mc_dropout=True, mc_samples=2))
    assert str(mc) in last and "--overwrite true" in last
    assert read_json(mc / "metrics.json")["test"] == scores
    _evaluate(settings, overwrite=True, mc_dropout=True, mc_samples=2)
    (old,) = (root / "eval").glob("test-model-mc2.replaced-*")
    assert read_json(old / "metrics.json")["test"] == scores and (mc / "metrics.json").is_file()
    (old_log,) = (root / "logs" / "evaluate").glob("test-model-mc2.replaced-*")
    assert len(list(old_log.glob("events.out.tfevents.*"))) == 1
    assert not (root / "eval" / "test-model-mc2.lock").exists()


def test_an_epoch_checkpoint_is_evaluated_as_its_epoch(run):
    root, settings = run
    _evaluate(settings, ckpt_path=str(root / "models" / "last_checkpoint_epoch=1.pt"))
    metrics = read_json(root / "eval" / "test-last_checkpoint_epoch_1" / "metrics.json")
    assert metrics["evaluation"]["checkpoint"]["epoch"] == 1 and metrics["test"]["epoch"] == 1


def test_a_model_folder_without_the_record_is_evaluated_with_epoch_null(run):
    """A model folder from before the record (0.2): the epoch is not guessed."""
    root, settings = run
    metrics = read_json(root / "models" / "metrics.json")
    del metrics["best_checkpoint"]
    (root / "models" / "metrics.json").write_text(json.dumps(metrics))
    result = _evaluate(settings)
    report = read_json(root / "eval" / "test-model" / "metrics.json")
    assert report["evaluation"]["checkpoint"]["epoch"] is None and report["test"]["epoch"] is None
    assert "is not recorded" in result.stdout + result.stderr
