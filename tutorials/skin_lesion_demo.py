"""The main job: train the skin-lesion bundle with the LMF loss on DermaMNIST, evaluate it with MC dropout.

Runs ``bundles/skin_lesion_classification`` exactly as a user would (``python -m monai.bundle run``) on
DermaMNIST (HAM10000 = ISIC 2018 task 3 at 28 px, 7 classes), for a few epochs on the CPU (the GPU
when there is one), then evaluates the best checkpoint on the test split with 50 Monte Carlo dropout
passes and prints the metrics with the paths of the TensorBoard logs and ``metrics.json``.

Data: ``DATA_DIR`` (a folder holding ``dermamnist.npz``, or the file itself) when set; otherwise the
official file is downloaded (md5-checked) into the bundle's ``data/`` folder. Offline without a copy,
it stops and says how to provide one.

Usage::

    make demo                                   # or: python tutorials/skin_lesion_demo.py
    make demo DATA_DIR=../shared/data/medmnist  # a local copy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE = REPO_ROOT / "bundles" / "skin_lesion_classification"

# a few epochs of the bundle's LMF training, sized for a CPU: small network at the 28 px of the data
DEMO_OVERRIDES = {
    "network_name": "small_cnn",
    "image_size": 28,
    "batch_size": 64,
    "learning_rate": 0.001,
    "num_epochs": 4,
    "cache_rate": 1.0,
    "num_workers": 0,
}
QUICK_OVERRIDES = {"max_items_per_split": 70, "num_epochs": 1}  # seconds, for the tests


class DemoError(RuntimeError):
    """A problem the user can fix (data, environment); printed without a traceback."""


def find_data(data_dir: str | None, target: Path) -> Path:
    """``dermamnist.npz``: from ``data_dir`` (or ``DATA_DIR``), else downloaded into ``target``."""
    from monai_imbalance.data.medmnist import resolve_medmnist_file

    data_dir = data_dir or os.environ.get("DATA_DIR") or None
    try:
        if data_dir:
            return resolve_medmnist_file(data_dir, flag="dermamnist")
        print(f"DATA_DIR is not set: downloading DermaMNIST into {target} (about 20 MB) ...", flush=True)
        return resolve_medmnist_file(target, flag="dermamnist", download=True, progress=True)
    except (FileNotFoundError, ConnectionError, RuntimeError, ValueError) as e:
        raise DemoError(
            f"{e}\n\nNo DermaMNIST data. Put dermamnist.npz (https://zenodo.org/records/10519652) in a folder and "
            "run `make demo DATA_DIR=/that/folder` (here: `make demo DATA_DIR=../shared/data/medmnist`)."
        ) from e


def run_bundle(configs: list[str], overrides: dict[str, object]) -> None:
    files = "[" + ",".join(f"'configs/{c}.yaml'" for c in configs) + "]"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files]
    for key, value in overrides.items():
        command += [f"--{key}", json.dumps(value) if isinstance(value, dict) else str(value)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if subprocess.run(command, cwd=BUNDLE, env=env).returncode != 0:
        raise DemoError(f"the bundle run failed: {' '.join(command)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder holding dermamnist.npz (default: $DATA_DIR, else download)")
    parser.add_argument("--output-dir", help="where the run goes (default: runs/demo-<time> in the repository)")
    parser.add_argument("--mc-samples", type=int, default=50, help="Monte Carlo dropout passes at evaluation")
    parser.add_argument("--quick", action="store_true", help="a seconds-long run on a small subset (tests)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        data = find_data(args.data_dir, BUNDLE / "data")
        out = Path(args.output_dir or REPO_ROOT / "runs" / f"demo-{datetime.now():%Y%m%d-%H%M%S}").resolve()
        if out.exists() and any(out.iterdir()):
            raise DemoError(f"{out} is not empty; choose another --output-dir")
        overrides = {
            **DEMO_OVERRIDES,
            **(QUICK_OVERRIDES if args.quick else {}),
            "dataset_dir": str(data.resolve()),
            "data_kwargs": {"flag": "dermamnist", "download": False},
            "ckpt_dir": str(out / "models"),
            "log_dir": str(out / "logs"),
            "output_dir": str(out / "eval"),
        }
        print(f"Training LMF on DermaMNIST ({data}) for {overrides['num_epochs']} epochs ...", flush=True)
        run_bundle(["train"], overrides)
        print(f"Evaluating the best checkpoint with {args.mc_samples} MC-dropout passes ...", flush=True)
        run_bundle(["train", "evaluate"], {**overrides, "mc_dropout": True, "mc_samples": args.mc_samples})
    except DemoError as e:
        print(f"\nmake demo stopped: {e}", file=sys.stderr)
        return 1

    from monai_imbalance.reporting import metrics_table
    from monai_imbalance.workflow import evaluation_name

    # each evaluation has its own folder, e.g. eval/test-model-mc50/
    name = evaluation_name(split="test", checkpoint="model.pt", mc_dropout=True, mc_samples=args.mc_samples)
    test_file = out / "eval" / name / "metrics.json"
    validation = json.loads((out / "models" / "metrics.json").read_text())["validation"]
    test = json.loads(test_file.read_text())["test"]

    print("\n" + metrics_table({"validation": validation, "test (MC)": test}, per_class="f1"))
    print(f"\nbest epoch {validation['epoch']} (validation macro-F1), {time.perf_counter() - started:.0f} s in all")
    print(f"TensorBoard logs : {out / 'logs'}   (tensorboard --logdir {out / 'logs'})")
    print(f"metrics.json     : {test_file} (test), {out / 'models' / 'metrics.json'} (validation)")
    print(f"checkpoints      : {out / 'models'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
