"""The README's main job (tutorials/skin_lesion_demo.py): a seconds-long run, and its offline message."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bundle_runner import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tutorials"))
import skin_lesion_demo

pytestmark = pytest.mark.e2e


def test_quick_demo_prints_the_metrics_and_where_results_are(tmp_path, shared_data):
    out = tmp_path / "demo"
    command = [
        sys.executable,
        "tutorials/skin_lesion_demo.py",
        "--quick",
        "--mc-samples",
        "2",
        "--output-dir",
        str(out),
    ]
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(shared_data / "medmnist"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "macro F1" in result.stdout and "test (MC)" in result.stdout
    assert str(out / "logs") in result.stdout and str(out / "eval" / "metrics.json") in result.stdout
    assert (out / "eval" / "metrics.json").is_file() and list((out / "logs").glob("events.out.tfevents.*"))
    # a second run never writes over the first one
    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_offline_without_a_copy_says_how_to_provide_one(tmp_path, monkeypatch):
    import monai_imbalance.data.medmnist as medmnist

    def offline(*args, **kwargs):
        raise ConnectionError("download failed (offline)")

    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(medmnist, "download_medmnist", offline)
    with pytest.raises(skin_lesion_demo.DemoError, match="make demo DATA_DIR="):
        skin_lesion_demo.find_data(None, tmp_path / "data")
    assert not (tmp_path / "data" / "dermamnist.npz").exists()
