"""Dependable bundle runs (issue 12), end to end as a user runs them, on tiny real data on the CPU.

- Resume is exact: a run stopped by SIGINT / SIGTERM / SIGKILL at a random iteration (sent from inside the run
  at that iteration exactly, ``tests/signal_at_iteration.py``), or ended after epoch ``k``, and
  resumed with ``--resume true`` gives the same ``model.pt``, ``metrics.json`` and final weights as the
  uninterrupted run (one classification and one segmentation bundle).
- Overwrite is clean: ``--overwrite true`` moves the earlier run's checkpoints and logs aside; a refused run
  writes nothing (tests/test_run_folder_bugs.py: only the bundle's own files move, after every check).
- Overrides are checked and the effective settings are recorded.
- Errors a person can read: user errors end with one ``error: ...`` line and no traceback; a damaged
  checkpoint is named with the intact one to resume from.

The bundles under ``bundles/`` are used; ``DEPENDABLE_RUNS_BUNDLES=<folder>`` points the tests at copies
elsewhere (e.g. bundles generated from changed templates).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_runner import BUNDLES, _override_args

pytestmark = pytest.mark.e2e

ROOT = Path(os.environ.get("DEPENDABLE_RUNS_BUNDLES", BUNDLES))
KNEE, NUCLEI = "knee_oa_grading", "nuclei_segmentation"


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory) -> dict[str, Path]:
    """The real knee PNG sample, and the first 24 DSB 2018 images as an npz (17 train, 2 val)."""
    npz = tmp_path_factory.mktemp("dsb2018") / "dsb2018_24.npz"
    with np.load(shared_data / "dsb2018" / "dsb2018_256.npz") as full:
        np.savez(npz, **{key: full[key][:24] for key in ("images", "masks", "ids")})
    return {KNEE: shared_data / "knee_kl" / "png224_sample", NUCLEI: npz}


def _settings(bundle: str, data: dict[str, Path], out: Path, **extra) -> dict:
    """Seconds-long runs: tiny networks and images, no workers or progress bar; outputs under ``out``."""
    common = {"bundle_root": str(ROOT / bundle), "dataset_dir": str(data[bundle]), "num_workers": 0}
    common.update(
        {"progress_bar": False, "num_epochs": 3, "ckpt_dir": str(out / "models"), "log_dir": str(out / "logs")}
    )
    if bundle == KNEE:
        tiny = {"network_name": "small_cnn", "image_size": 32, "batch_size": 4}
    else:
        tiny = {"image_size": [32, 32], "batch_size": 4, "network_channels": [4, 8], "augment": True}
    return {**common, **tiny, **extra}


def _command(bundle: str, overrides: dict) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/train.yaml",
        *_override_args(overrides),
    ]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(bundle: str, overrides: dict, *, expect_failure: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        _command(bundle, overrides), cwd=ROOT / bundle, env=_env(), capture_output=True, text=True, timeout=900
    )
    causes = "\n".join(line for line in result.stderr.splitlines() if re.match(r"^\w*(Error|Exception)\b", line))
    output = f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}\n--- causes\n{causes}"
    assert (result.returncode != 0) == expect_failure, output
    return result


SIGNAL_AT_ITERATION = Path(__file__).with_name("signal_at_iteration.py")


def run_until(bundle: str, overrides: dict, *, epoch: int, iteration: int, sig: int) -> subprocess.CompletedProcess:
    """Run the bundle until iteration ``iteration`` of epoch ``epoch``, where the process sends itself ``sig``.

    The signal is sent from inside the run (``tests/signal_at_iteration.py``), at that iteration exactly: no
    reading of the log, so neither buffering nor machine load decides whether it lands before the run ends.
    """
    command = _command(bundle, overrides)
    command[1:3] = [str(SIGNAL_AT_ITERATION), signal.Signals(sig).name, str(epoch), str(iteration)]  # not -m
    result = subprocess.run(command, cwd=ROOT / bundle, env=_env(), capture_output=True, text=True, timeout=900)
    output = f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert f"{signal.Signals(sig).name} at epoch {epoch}, iteration {iteration}" in result.stdout, output
    assert result.returncode == -sig, output  # ended by the signal (SIGINT: KeyboardInterrupt re-raises it)
    return result


def state_dict(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = state_dict(a), state_dict(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{a.name}: {key} differs"


def metrics(folder: Path) -> dict:
    """``metrics.json`` of a run, without the recorded output folders (the runs compared write to different ones)."""
    content = json.loads((folder / "models" / "metrics.json").read_text())
    content.pop("runs")  # the processes of the run (pids, start times) differ
    content["best_checkpoint"].pop("sha256")  # torch.save writes a random serialization id into each file
    for key in ("ckpt_dir", "log_dir"):
        content["settings"]["overrides"].pop(key)
    return content


def _iterations_per_epoch(log: str) -> int:
    return int(re.search(r"Epoch: 1/\d+, Iter: 1/(\d+)", log).group(1))


@pytest.mark.parametrize(("bundle", "sig"), [(KNEE, signal.SIGINT), (NUCLEI, signal.SIGTERM), (KNEE, signal.SIGKILL)])
def test_resume_after_a_signal_at_a_random_iteration_is_exact(bundle, sig, tmp_path, data):
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    result = run(bundle, _settings(bundle, data, uninterrupted))
    iteration = random.randint(1, _iterations_per_epoch(result.stdout + result.stderr))
    where = f"{bundle}: {signal.Signals(sig).name} at epoch 2, iteration {iteration}"

    settings = _settings(bundle, data, interrupted)
    run_until(bundle, settings, epoch=2, iteration=iteration, sig=sig)
    assert (interrupted / "models" / "last_checkpoint_epoch=1.pt").is_file(), where
    assert not (interrupted / "models" / "last_checkpoint_epoch=2.pt").exists(), where
    run(bundle, {**settings, "resume": True})

    for name in ("model.pt", "last_checkpoint_epoch=3.pt"):
        assert_same_weights(uninterrupted / "models" / name, interrupted / "models" / name)
    assert metrics(uninterrupted) == metrics(interrupted), where


def test_resume_epoch_by_epoch_keeps_the_best_epoch(tmp_path, data):
    """Train 1 epoch, resume to 2, resume to 3: model.pt and the report are the uninterrupted run's best epoch."""
    uninterrupted, stepwise = tmp_path / "uninterrupted", tmp_path / "stepwise"
    run(KNEE, _settings(KNEE, data, uninterrupted, batch_size=16))
    for epochs in (1, 2, 3):
        run(KNEE, _settings(KNEE, data, stepwise, batch_size=16, num_epochs=epochs, resume=epochs > 1))
    assert_same_weights(uninterrupted / "models" / "model.pt", stepwise / "models" / "model.pt")
    assert_same_weights(
        uninterrupted / "models" / "last_checkpoint_epoch=3.pt", stepwise / "models" / "last_checkpoint_epoch=3.pt"
    )
    first, second = metrics(uninterrupted), metrics(stepwise)
    assert first["validation"] == second["validation"]
    # the settings differ only in the epochs of the last command
    assert first["settings"]["num_epochs"] == second["settings"]["num_epochs"] == 3


def _events(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


def _ending(result: subprocess.CompletedProcess) -> list[str]:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines


def test_run_folder_lifecycle_and_readable_errors(tmp_path, data):
    """Refused reruns, a misspelt override, a damaged checkpoint and --overwrite, on one knee run folder."""
    out = tmp_path / "run"
    settings = _settings(KNEE, data, out, batch_size=16, num_epochs=2)
    run(KNEE, settings)
    models = out / "models"
    assert {p.name for p in models.glob("last_checkpoint_epoch=*.pt")} == {
        "last_checkpoint_epoch=1.pt",
        "last_checkpoint_epoch=2.pt",
    }
    recorded = metrics(out)["settings"]
    assert recorded["loss"] == "ce" and recorded["network"] == "small_cnn" and recorded["image_size"] == 32
    assert recorded["overrides"]["network_name"] == "small_cnn" and "resume" not in recorded["overrides"]
    events = _events(out / "logs")
    assert len(events) == 1

    # a second run into the same folder is refused, ends in one line and writes nothing
    result = run(KNEE, settings, expect_failure=True)
    assert _ending(result)[-1].startswith("error: ") and "--resume true" in _ending(result)[-1]
    assert _events(out / "logs") == events

    # a misspelt override stops the run before any work, naming the key and the closest one
    result = run(KNEE, {**settings, "resume": True, "loss_nmae": "focal"}, expect_failure=True)
    last = _ending(result)[-1]
    assert last.startswith("error: unknown override --loss_nmae") and "--loss_name" in last
    assert _events(out / "logs") == events

    # a truncated latest checkpoint is named together with the intact one
    latest = models / "last_checkpoint_epoch=2.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    result = run(KNEE, {**settings, "resume": True, "num_epochs": 3}, expect_failure=True)
    last = _ending(result)[-1]
    assert str(latest) in last and "last_checkpoint_epoch=1.pt" in last
    shutil.move(latest, latest.with_suffix(".pt.corrupt"))
    run(KNEE, {**settings, "resume": True, "num_epochs": 3})
    assert (models / "last_checkpoint_epoch=3.pt").is_file()

    # --overwrite true moves the earlier run aside (nothing deleted) and starts afresh
    result = run(KNEE, {**settings, "overwrite": True, "num_epochs": 1})
    (old_models,) = tmp_path.glob("run/models.replaced-*")
    (old_logs,) = tmp_path.glob("run/logs.replaced-*")
    assert (old_models / "last_checkpoint_epoch=3.pt").is_file() and (old_models / "model.pt").is_file()
    assert len(_events(old_logs)) == 2  # the first run's and the resumed run's; the refused runs wrote none
    assert {p.name for p in models.glob("*.pt")} == {"last_checkpoint_epoch=1.pt", "model.pt"}
    assert len(_events(out / "logs")) == 1
    assert f"moved the earlier run's {models} to {old_models}" in result.stdout + result.stderr
