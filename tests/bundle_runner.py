"""Run a bundle of ``bundles/`` as a user does: ``python -m monai.bundle run`` (or ``torchrun``), in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLES = REPO_ROOT / "bundles"


def _config_files(configs: Sequence[str]) -> str:
    files = [f"configs/{name}.yaml" for name in configs]
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def _override_args(overrides: Mapping[str, Any]) -> list[str]:
    args = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            value = str(value).lower()  # the spelling a user types: --resume true
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


def run_bundle(
    bundle: str,
    configs: Sequence[str] = ("train",),
    overrides: Mapping[str, Any] | None = None,
    expect_failure: bool = False,
    nproc: int | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``configs`` of ``bundles/<bundle>`` with ``--key value`` overrides; check the exit status.

    Args:
        bundle: folder name under ``bundles/``.
        configs: config names layered in order, e.g. ``("train", "evaluate")``.
        overrides: command-line overrides (``bundle_root`` defaults to the bundle folder).
        expect_failure: assert a non-zero exit instead of success.
        nproc: run under ``torchrun --nproc_per_node=nproc`` (Gloo on the CPU).
        timeout: seconds before the run is killed.
    """
    root = BUNDLES / bundle
    overrides = {"bundle_root": str(root), **(overrides or {})}
    module = ["-m", "monai.bundle", "run", "--config_file", _config_files(configs), *_override_args(overrides)]
    if nproc:  # torchrun, spelled so that it uses this interpreter
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *module]
    else:
        command = [sys.executable, *module]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    output = f"$ {' '.join(command)}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    if expect_failure:
        assert result.returncode != 0, f"expected the run to fail:\n{output}"
    else:
        assert result.returncode == 0, f"bundle run failed:\n{output}"
    return result


def parse_bundle(bundle: str, configs: Sequence[str] = ("train",), overrides: Mapping[str, Any] | None = None):
    """The bundle's configs, layered and overridden as ``monai.bundle run`` does, parsed in this process.

    Cheaper than :func:`run_bundle` (no new interpreter) for checks of single config items, e.g.
    ``parse_bundle(...).get_parsed_content("datalists")``.
    """
    from monai.bundle import ConfigParser

    import monai_imbalance  # noqa: F401  (short names in the configs)

    root = BUNDLES / bundle
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f"{name}.yaml") for name in configs])
    parser.update({"bundle_root": str(root), **(overrides or {})})
    return parser


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def quick_run_overrides(tmp_path: Path, dataset_dir: str | os.PathLike, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides for a seconds-long test run of any bundle: 2 epochs, no workers or progress bar, every output
    (checkpoints, logs, evaluation) under ``tmp_path``; ``settings`` adds or replaces entries (network, sizes)."""
    return {
        "dataset_dir": str(dataset_dir),
        "num_epochs": 2,
        "num_workers": 0,
        "progress_bar": False,
        "ckpt_dir": str(tmp_path / "models"),
        "log_dir": str(tmp_path / "logs"),
        "output_dir": str(tmp_path / "eval"),
        **settings,
    }
