"""A pip user's path: the built wheel holds the bundle sources; installed in a fresh virtual environment it
exports a bundle that ``python -m monai.bundle run`` trains and, from the standalone inference config, runs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from bundle_runner import REPO_ROOT

from monai_imbalance.bundles import bundle_names

pytestmark = pytest.mark.e2e


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"$ {' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: build with this environment's setuptools, offline
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), "."], REPO_ROOT)
    (path,) = out.glob("monai_imbalance-*.whl")
    return path


def test_the_wheel_holds_every_bundle_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = "monai_imbalance/bundles/"
    for name in bundle_names():
        for part in ("task.yaml.j2", "metadata.json", "README.md"):
            assert f"{source}tasks/{name}/{part}" in names, (name, part)
    for family in ("common", "classification", "classification/repeatability", "segmentation"):
        assert f"{source}{family}/multi_gpu_train.yaml.j2" in names, family
    for shared in ("common/LICENSE", "common/logging.conf", "common/metadata.json", "common/train.yaml.j2"):
        assert source + shared in names


def test_installed_wheel_exports_a_bundle_that_trains_and_infers(wheel, tmp_path, shared_data):
    # a fresh environment that sees this one's packages (torch, MONAI, ...) but installs the package from the wheel
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=True)
    python = env_dir / "bin" / "python"
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path).stdout.strip()
    )
    (purelib / "outer_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        tmp_path,
    )
    where = _run([str(python), "-c", "import monai_imbalance; print(monai_imbalance.__file__)"], tmp_path).stdout
    assert where.strip().startswith(str(purelib)), where  # the wheel's copy, not the repository's

    listed = _run([str(python), "-m", "monai_imbalance.bundles", "list"], tmp_path).stdout.split()
    assert listed == bundle_names()
    bundle = tmp_path / "knee"
    _run([str(python), "-m", "monai_imbalance.bundles", "export", "knee_oa_grading", str(bundle)], tmp_path)
    refused = subprocess.run(
        [str(python), "-m", "monai_imbalance.bundles", "export", "knee_oa_grading", str(bundle)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    unknown = subprocess.run(
        [str(python), "-m", "monai_imbalance.bundles", "export", "knee_grading", str(tmp_path / "x")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "knee_oa_grading" in unknown.stderr

    tiny = [
        *("--dataset_dir", str(shared_data / "knee_kl" / "knee_kl_64_trainval.npz"), "--data_format", "medmnist"),
        *("--network_name", "small_cnn", "--image_size", "32", "--num_epochs", "1", "--max_items_per_split", "20"),
        *("--num_workers", "0", "--progress_bar", "false", "--batch_size", "10"),
    ]
    _run([str(python), "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml", *tiny], bundle)
    assert (bundle / "models" / "model.pt").is_file()

    new_images = shared_data / "knee_kl" / "png224_sample" / "val" / "0"
    infer = ["--network_name", "small_cnn", "--image_size", "32", "--num_workers", "0", "--input_dir", str(new_images)]
    _run([str(python), "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml", *infer], bundle)
    with open(bundle / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(list(new_images.glob("*.png"))) > 0
    assert {f"prob_{grade}" for grade in "01234"} <= set(rows[0])
