"""Whole-file writes with the user's umask: metrics.json, predictions.csv and checkpoints get open()'s mode."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from ignite.engine import Engine

from monai_imbalance.atomic_files import atomic_write, current_umask, new_file_mode
from monai_imbalance.reporting import update_metrics_json
from monai_imbalance.workflow import AtomicCheckpointSaver


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o002)``), and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_new_files_get_the_mode_open_gives_them(tmp_path, umask, mask):
    """Issue 19 (Why 9): metrics.json and predictions.csv were written 0600 whatever the umask."""
    umask(mask)
    assert current_umask() == mask and new_file_mode() == 0o666 & ~mask
    with open(tmp_path / "plain.txt", "w") as f:  # the reference: what open() does
        f.write("x")
    update_metrics_json(tmp_path / "metrics.json", {"a": 1})
    with atomic_write(tmp_path / "predictions.csv", newline="") as f:
        f.write("id,pred\n")
    assert _mode(tmp_path / "metrics.json") == _mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert _mode(tmp_path / "predictions.csv") == 0o666 & ~mask


def test_a_replaced_file_keeps_its_own_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "metrics.json"
    update_metrics_json(path, {"a": 1})
    os.chmod(path, 0o640)
    update_metrics_json(path, {"b": 2})
    assert _mode(path) == 0o640 and json.loads(path.read_text()) == {"a": 1, "b": 2}


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half")
        raise RuntimeError("stopped")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with pytest.raises(ValueError, match="whole files"), atomic_write(path, "a"):
        pass


def test_checkpoints_follow_the_umask(tmp_path, umask):
    umask(0o002)  # a shared folder's group-writable umask; ignite's own atomic writer gave 0644
    network = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": network}, file_prefix="last", save_interval=1
    )
    engine = Engine(lambda engine, batch: None)
    saver.attach(engine)
    engine.run([0], max_epochs=1)
    (checkpoint,) = [p for p in tmp_path.iterdir() if p.suffix == ".pt"]
    assert _mode(checkpoint) == 0o664
    assert torch.equal(torch.load(checkpoint, weights_only=True)["weight"], network.weight)
