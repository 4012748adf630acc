"""Does the bundles' training pipeline keep up with the network? Before and after, side by side, in one run.

Three measurements, each for every version given (``--before DIR``: a checkout of the earlier commit, e.g.
``git worktree add /tmp/before eaf4ce3``; "after": this repository):

1. **Bundle throughput** (images/s) of one training epoch through ``python -m monai.bundle run`` per bundle
   family: the knee bundle (classification; the 64 px knee npz, small CNN) and the nuclei bundle
   (segmentation; the DSB 2018 npz at 64 px, ``--augment true``). The time is read from the trainer's own
   per-iteration log lines (StatsHandler, with timestamps): from the end of iteration ``--skip`` to the end of
   the last full batch, so interpreter start-up, config parsing, caching and the first batches are excluded
   (start-up is reported separately). Validation is switched off (``--val_interval`` past the last epoch).
2. **Network-bound limit**: the bundle's own network, optimiser and loss (parsed from its config) trained on
   random tensors already in memory, batch for batch, with the same thread count. It is measured before and
   after the bundle runs; the ratio uses their mean.
3. **Per-image CPU cost at 224 px** of the knee bundle's pipeline on real 224 px PNGs (``png224_sample``) with
   the bundle's own transforms, as CPU time of one process with one thread (``time.process_time``, so other
   processes on the machine inflate it far less than wall time): the deterministic part (load, scale, resize, type), the
   per-sample random part, and the steady state after the first epoch through the bundle's own training
   DataLoader (``num_workers 0``: one process's CPU time per image), plus, for "after", the batch augmentation
   (``train#prepare_batch``) on this CPU, which runs on the GPU where there is one.

Every subprocess gets ``OMP_NUM_THREADS=--threads``; other processes on the machine slow all rows alike only if
they run throughout, so compare the ratios of one run, not absolute figures across runs.

Run (from the repository root)::

    git worktree add /tmp/before eaf4ce3
    .venv/bin/python benchmarks/bench_pipeline.py --before /tmp/before --data ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ITERATION = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Epoch: (\d+)/\d+, Iter: (\d+)/(\d+) -- ")

FAMILIES: dict[str, dict[str, Any]] = {
    "classification (knee_oa_grading, 64 px, small CNN)": {
        "bundle": "knee_oa_grading",
        "data": "knee_kl/knee_kl_64_trainval.npz",
        "overrides": {"data_format": "medmnist", "network_name": "small_cnn", "image_size": 64},
    },
    "segmentation (nuclei_segmentation, 64 px, U-Net, --augment true)": {
        "bundle": "nuclei_segmentation",
        "data": "dsb2018/dsb2018_256.npz",
        "overrides": {"image_size": [64, 64], "augment": True},
    },
}


def _env(root: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}


def _cli(overrides: dict[str, Any]) -> list[str]:
    args = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, list):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process ``pid`` and of it with its living descendants (DataLoader workers)."""

    def own(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _TICK

    def children(p: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            return []

    main, total, stack = own(pid), 0.0, [pid]
    while stack:
        p = stack.pop()
        total += own(p)
        stack += children(p)
    return main, total


def bundle_epoch(root: Path, family: dict[str, Any], data: Path, threads: int, skip: int) -> dict[str, float]:
    """One training epoch of ``root``'s bundle through ``python -m monai.bundle run``; throughput from its log.

    At every logged iteration the training process's CPU time is sampled as well (``/proc``), so that the CPU
    seconds per image of the training process, and of it with its DataLoader workers, come beside the wall time.
    """
    bundle = root / "bundles" / family["bundle"]
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "bundle_root": str(bundle),
            "dataset_dir": str(data / family["data"]),
            "ckpt_dir": f"{tmp}/models",
            "log_dir": f"{tmp}/logs",
            "output_dir": f"{tmp}/eval",
            "num_epochs": 1,
            "val_interval": 1000,
            "progress_bar": False,
            **family["overrides"],
        }
        command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.yaml"]
        command += ["--logging_file", "configs/logging.conf", *_cli(overrides)]
        start = time.time()
        process = subprocess.Popen(
            command, cwd=bundle, env=_env(root, threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        stamps, log = {}, []
        for line in process.stdout:
            log.append(line)
            match = ITERATION.match(line)
            if match:
                moment = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                stamps[int(match.group(3))] = (moment, *_cpu_seconds(process.pid))
                iterations = int(match.group(4))
        stderr = process.stderr.read()
        process.wait()
        total = time.time() - start
    output = "".join(log)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}\n{stderr[-3000:]}")
    last_full = iterations - 1 if iterations > skip + 2 else iterations  # the last batch may be partial
    images = (last_full - skip) * _batch_size(family)
    (wall0, main0, tree0), (wall1, main1, tree1) = stamps[skip], stamps[last_full]
    workers = re.findall(r"num_workers auto: (\d+) \(every image cached", output)
    return {
        "images_per_s": images / (wall1 - wall0),
        "cpu_ms_main": 1000 * (main1 - main0) / images,
        "cpu_ms_tree": 1000 * (tree1 - tree0) / images,
        "iterations": iterations,
        "startup_s": wall0 - start,
        "total_s": total,
        "workers": workers[-1] if workers else _logged_workers(output),
    }


def _batch_size(family: dict[str, Any]) -> int:
    return int(family["overrides"].get("batch_size", 32 if family["bundle"] == "knee_oa_grading" else 16))


def _logged_workers(log: str) -> str:
    found = re.findall(r"num_workers auto: (\d+)", log)
    return found[-1] if found else "config (2)"


def _run_self(root: Path, mode: str, threads: int, cwd: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), mode, "--threads", str(threads), *extra]
    result = subprocess.run(command, cwd=cwd, env=_env(root, threads), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _parser(bundle_dir: Path, overrides: dict[str, Any]):
    """The bundle's train config as ``monai.bundle run`` would parse it (in the current directory's version)."""
    from monai.bundle import ConfigParser

    import monai_imbalance  # noqa: F401

    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(bundle_dir), **overrides})
    return parser


def network_bound(args: argparse.Namespace) -> dict[str, float]:
    """Subprocess mode: the config's network, optimiser and loss on in-memory random batches (images/s)."""
    import torch

    torch.set_num_threads(args.threads)
    family = json.loads(args.family)
    with tempfile.TemporaryDirectory() as tmp:
        parser = _parser(Path.cwd(), {"dataset_dir": args.dataset, "ckpt_dir": tmp, "log_dir": tmp, **family})
        network, optimizer, loss = (parser.get_parsed_content(k) for k in ("network", "optimizer", "loss"))
        batch, channels = parser.get_parsed_content("batch_size"), parser.get_parsed_content("in_channels")
        size = parser.get_parsed_content("image_size")
        size = [size, size] if isinstance(size, int) else list(size)
        segmentation = "num_classes" not in parser.config
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(batch, channels, *size, generator=generator)
        if segmentation:
            label = (torch.rand(batch, 1, *size, generator=generator) > 0.9).float()
        else:
            label = torch.randint(parser.get_parsed_content("num_classes"), (batch,), generator=generator)
        network.train()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss(network(image), label).backward()
            optimizer.step()

        for _ in range(3):
            step()
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while count < args.min_steps or time.perf_counter() - start < args.min_seconds:
            step()
            count += 1
        return {
            "images_per_s": count * batch / (time.perf_counter() - start),
            "cpu_ms": 1000 * (time.process_time() - cpu) / (count * batch),
        }


def transform_cost(args: argparse.Namespace) -> dict[str, float]:
    """Subprocess mode: per-image CPU cost (ms) of the knee bundle's pipeline at 224 px on real PNGs."""
    import torch
    from monai.transforms import Compose

    torch.set_num_threads(args.threads)
    overrides = {"data_format": "knee_folders", "dataset_dir": args.dataset, "image_size": 224, "num_workers": 0}
    overrides.update({"network_name": "small_cnn", "augment": True})
    with tempfile.TemporaryDirectory() as tmp:
        parser = _parser(Path.cwd(), {**overrides, "ckpt_dir": tmp, "log_dir": tmp})
        items = parser.get_parsed_content("train_datalist")
        parts = {k: parser.get_parsed_content(k) for k in ("preprocessing", "augmentation", "finalise")}
        batch_aug = "augment_on" in parser.config  # "after": augmentation on batches by default
        out: dict[str, float] = {"images": len(items)}

        def per_image(function, inputs) -> float:
            for x in inputs[:4]:
                function(x)
            count, start = 0, time.process_time()
            while time.process_time() - start < args.min_seconds:
                for x in inputs:
                    function(x)
                count += len(inputs)
            return 1000 * (time.process_time() - start) / count

        deterministic, random_part = Compose(parts["preprocessing"]), Compose(parts["augmentation"])
        out["deterministic_ms"] = per_image(lambda item: deterministic(dict(item)), items)
        prepared = [deterministic(dict(item)) for item in items]
        out["random_per_sample_ms"] = per_image(lambda item: random_part(dict(item)), prepared)

        # steady state through the bundle's own training DataLoader (this version's defaults), one process
        parser = _parser(Path.cwd(), {**overrides, "ckpt_dir": tmp, "log_dir": tmp})
        start = time.process_time()
        loader = parser.get_parsed_content("train#dataloader")
        out["build_s"] = time.process_time() - start
        first = time.process_time()
        batches = list(loader)
        out["first_epoch_ms"] = 1000 * (time.process_time() - first + out["build_s"]) / len(items)
        count, start = 0, time.process_time()
        while time.process_time() - start < args.min_seconds:
            for _ in loader:
                pass
            count += len(items)
        out["steady_loader_ms"] = 1000 * (time.process_time() - start) / count
        if batch_aug:
            prepare = parser.get_parsed_content("train#prepare_batch")
            device = torch.device("cpu")
            count, start = 0, time.process_time()
            while time.process_time() - start < args.min_seconds:
                for batch in batches:
                    prepare(batch, device)
                count += len(items)
            out["batch_augment_cpu_ms"] = 1000 * (time.process_time() - start) / count
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "network-bound", "transform-cost"])
    parser.add_argument("--before", type=Path, help="a checkout of the earlier version (git worktree)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", type=int, default=5, help="iterations excluded at the start of the epoch")
    parser.add_argument("--families", default="classification,segmentation")
    parser.add_argument("--family", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="", help=argparse.SUPPRESS)
    parser.add_argument("--min-steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.mode == "network-bound":
        print(json.dumps(network_bound(args)))
        return
    if args.mode == "transform-cost":
        print(json.dumps(transform_cost(args)))
        return

    args.data = args.data.resolve()  # the runs work in the bundle folders
    versions = {"after": REPO} if args.before is None else {"before": args.before.resolve(), "after": REPO}
    wanted = args.families.split(",")
    print(f"# bench_pipeline.py, {dt.date.today()}, {platform.processor() or platform.machine()}, ", end="")
    print(f"{os.cpu_count()} cores, threads {args.threads}, versions: {versions}\n")
    print("Wall clock (images/s; the limit measured before and after the bundle runs) and CPU time of the training")
    print("process per image (ms; with its DataLoader workers in brackets) against the network-bound loop's:\n")
    print(
        "| family | version | bundle images/s | limit images/s | wall ratio | bundle CPU ms/image "
        "| limit CPU ms/image | CPU ratio | workers | start-up s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, family in FAMILIES.items():
        if not any(name.startswith(w) for w in wanted):
            continue
        bundle_dir = REPO / "bundles" / family["bundle"]
        limit_args = ["--dataset", str(args.data / family["data"]), "--family", json.dumps(family["overrides"])]
        limit_args += ["--min-seconds", str(args.min_seconds)]
        limits = [_run_self(REPO, "network-bound", args.threads, bundle_dir, *limit_args)]
        runs = {v: bundle_epoch(root, family, args.data, args.threads, args.skip) for v, root in versions.items()}
        limits.append(_run_self(REPO, "network-bound", args.threads, bundle_dir, *limit_args))
        wall = sum(lim["images_per_s"] for lim in limits) / 2
        cpu = sum(lim["cpu_ms"] for lim in limits) / 2
        for version, run in runs.items():
            print(
                f"| {name} | {version} | {run['images_per_s']:.0f} | {wall:.0f} ({limits[0]['images_per_s']:.0f}, "
                f"{limits[1]['images_per_s']:.0f}) | {run['images_per_s'] / wall:.2f} "
                f"| {run['cpu_ms_main']:.2f} ({run['cpu_ms_tree']:.2f}) | {cpu:.2f} | {cpu / run['cpu_ms_main']:.2f} "
                f"| {run['workers']} | {run['startup_s']:.1f} |"
            )
    print("\nPer-image CPU cost of the knee bundle's pipeline at 224 px (ms per image, one process, real PNGs):\n")
    print(
        "| version | deterministic (load, scale, resize) | random per sample | first epoch | after the first "
        "epoch (DataLoader) | batch augmentation on this CPU | build (caching) s |"
    )
    print("|---|---|---|---|---|---|---|")
    for version, root in versions.items():
        cost = _run_self(
            root,
            "transform-cost",
            args.threads,
            root / "bundles" / "knee_oa_grading",
            "--dataset",
            str(args.data / "knee_kl" / "png224_sample"),
            "--min-seconds",
            str(args.min_seconds),
        )
        batch = f"{cost['batch_augment_cpu_ms']:.3f}" if "batch_augment_cpu_ms" in cost else "-"
        print(
            f"| {version} | {cost['deterministic_ms']:.2f} | {cost['random_per_sample_ms']:.2f} "
            f"| {cost['first_epoch_ms']:.2f} | {cost['steady_loader_ms']:.3f} | {batch} | {cost['build_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
