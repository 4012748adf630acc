"""The README's main job (tutorials/skin_lesion_demo.py): a seconds-long run, and its offline message."""

from __future__ import annotations

import sys

import pytest
from bundle_runner import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tutorials"))
import skin_lesion_demo

pytestmark = pytest.mark.e2e


def test_quick_demo_prints_the_metrics_and_where_results_are(tmp_path, shared_data, monkeypatch, capfd):
    """The demo's ``main`` in this process with its quickest settings; its two bundle runs are the user's
    ``python -m monai.bundle run`` subprocesses (the demo's own commands)."""
    out = tmp_path / "demo"
    argv = ["--quick", "--mc-samples", "2", "--output-dir", str(out)]
    monkeypatch.setenv("DATA_DIR", str(shared_data / "medmnist"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert skin_lesion_demo.main(argv) == 0
    printed = capfd.readouterr().out
    assert "macro F1" in printed and "test (MC)" in printed
    assert str(out / "logs") in printed and str(out / "eval" / "metrics.json") in printed
    assert (out / "eval" / "metrics.json").is_file() and list((out / "logs").glob("events.out.tfevents.*"))
    # a second run never writes over the first one
    assert skin_lesion_demo.main(argv) == 1
    assert "not empty" in capfd.readouterr().err


def test_offline_without_a_copy_says_how_to_provide_one(tmp_path, monkeypatch):
    import monai_imbalance.data.medmnist as medmnist

    def offline(*args, **kwargs):
        raise ConnectionError("download failed (offline)")

    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(medmnist, "download_medmnist", offline)
    with pytest.raises(skin_lesion_demo.DemoError, match="make demo DATA_DIR="):
        skin_lesion_demo.find_data(None, tmp_path / "data")
    assert not (tmp_path / "data" / "dermamnist.npz").exists()
