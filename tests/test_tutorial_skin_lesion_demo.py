"""The README's main job (tutorials/skin_lesion_demo.py): a seconds-long run, and its offline message."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from bundle_runner import REPO_ROOT, run_command_in_process

sys.path.insert(0, str(REPO_ROOT / "tutorials"))
import skin_lesion_demo

pytestmark = pytest.mark.e2e


def test_quick_demo_prints_the_metrics_and_where_results_are(tmp_path, shared_data, monkeypatch, capsys):
    """The demo's ``main`` with its quickest settings; the two ``python -m monai.bundle run`` commands it builds
    run in this process, read as the command line reads them (the bundle's command line itself runs in
    ``test_bundle_skin_lesion_classification.py``)."""
    commands = []

    def run_in_process(command, cwd, env):  # the demo's subprocess.run
        assert command[:3] == [sys.executable, "-m", "monai.bundle"] and env["PYTHONWARNINGS"] == "ignore"
        commands.append(command)
        result = run_command_in_process(command[3:], cwd=cwd)
        sys.stderr.write(result.stderr)  # what the command would show in the terminal when it fails
        return result

    monkeypatch.setattr(skin_lesion_demo, "subprocess", SimpleNamespace(run=run_in_process))
    monkeypatch.setenv("DATA_DIR", str(shared_data / "medmnist"))
    out = tmp_path / "demo"
    argv = ["--quick", "--mc-samples", "2", "--output-dir", str(out)]
    assert skin_lesion_demo.main(argv) == 0
    printed = capsys.readouterr().out
    assert [c[5] for c in commands] == ["['configs/train.yaml']", "['configs/train.yaml','configs/evaluate.yaml']"]
    assert "macro F1" in printed and "test (MC)" in printed
    assert str(out / "logs") in printed and str(out / "eval" / "test-model-mc2" / "metrics.json") in printed
    assert (out / "eval" / "test-model-mc2" / "metrics.json").is_file() and list(
        (out / "logs").glob("events.out.tfevents.*")
    )
    # a second run never writes over the first one
    assert skin_lesion_demo.main(argv) == 1
    assert "not empty" in capsys.readouterr().err and len(commands) == 2


def test_offline_without_a_copy_says_how_to_provide_one(tmp_path, monkeypatch):
    import monai_imbalance.data.medmnist as medmnist

    def offline(*args, **kwargs):
        raise ConnectionError("download failed (offline)")

    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(medmnist, "download_medmnist", offline)
    with pytest.raises(skin_lesion_demo.DemoError, match="make demo DATA_DIR="):
        skin_lesion_demo.find_data(None, tmp_path / "data")
    assert not (tmp_path / "data" / "dermamnist.npz").exists()
