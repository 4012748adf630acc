"""Quality benchmark: cross-entropy vs focal loss, with and without MC dropout, on real knee radiographs.

The study of *Focal loss improves repeatability of deep learning models* (Table 1), at CPU scale, through the
same components as the bundle: ``bundles/knee_oa_grading`` is trained with ``--loss_name ce`` and
``--loss_name focal`` (gamma 2, alpha 0.25) for each seed by :func:`monai_imbalance.compare.train_variants`,
and :func:`monai_imbalance.compare.run_table1` evaluates every checkpoint with the bundle's ``evaluate.yaml``
without and with MC dropout (50 passes, rate 0.1) and writes the table.

Data: ``../shared/data/knee_kl/knee_kl_64_trainval.npz`` (OAI knee radiographs, 64 x 64, KL grades 0-4,
train 5778 / val 826 with patient ids and sides). Its test split is absent: the bundle carves it out of the
training split **by patient** (both knees of a patient stay together, class-stratified, ``split_seed`` 0,
the same for every seed), about 22% of the training patients. The file has one image per knee, so the
repeats are **simulated** (``RepeatAcquisitions``: two mildly perturbed copies of every test image); the LoA
measures the sensitivity of the model to those perturbations, not test-retest repeatability, and is not
comparable with the paper's values.

Scale (full run, the defaults, sized for 45 minutes on 2 CPU cores): the bundle's small CNN (``small_cnn``,
dropout 0.1 before the classifier) at 64 px, Adam 1e-3, batch 64, 5 epochs (``--epochs``), seeds 0 1 2;
evaluation on every 4th test image (``--eval_every``; the split is ordered by grade, so this keeps the class
mix): 321 of the 1284 test knees, 642 images with the copies, 50 MC passes. Reported per seed: LoA and
accuracy of the four variants with their 95% CIs (bootstrap over patients), the paired tests (focal vs
cross-entropy without and with MC dropout, and the MC effect) and the summary over seeds. ``--quick``
shrinks everything (one seed, one epoch, 200 items per split, 5 MC passes) to check the pipeline and to
time it; it prints an estimate of the full run from the measured throughput.

Table 1 shows LoA and ICC in the paper's form (``run_table1``'s default ``reporting="paper"``: the bootstrap
mean of the LoA replicates, ICC(2,k) of the patients with two images, as the authors' code reports them); the
benchmark adds a table of both forms side by side (the plug-in LoA of the observed differences and ICC(2,1)
beside them, and the paired LoA differences in both forms), from the same evaluations.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_repeatability.py                 # the full run (budget: 45 min on 2 cores)
    .venv/bin/python benchmarks/bench_repeatability.py --quick         # smoke run + time estimate
    .venv/bin/python benchmarks/bench_repeatability.py --seeds 0 --epochs 2 --max_items 1000 --eval_every 1 \
        --mc_samples 10 --threads 1                                    # a shrunk run (issue 14: both forms)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from monai_imbalance.compare import VARIANTS, run_table1, train_variants

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "knee_oa_grading"
DATA = Path(os.environ.get("MONAI_IMBALANCE_SHARED_DATA", REPO.parent / "shared" / "data"))
NPZ = DATA / "knee_kl" / "knee_kl_64_trainval.npz"

#: full-run settings; --quick replaces some of them
FULL = {"seeds": [0, 1, 2], "epochs": 5, "eval_every": 4, "mc_samples": 50, "max_items": None}
FULL_THREADS = 2  # torch threads of the full run (--threads)
QUICK = {"seeds": [0], "epochs": 1, "eval_every": 1, "mc_samples": 5, "max_items": 200}


def bundle_overrides(args: argparse.Namespace) -> dict:
    """The bundle overrides of this benchmark (the same for training and evaluation)."""
    overrides = {
        "dataset_dir": str(NPZ),
        "data_format": "medmnist",
        "network_name": "small_cnn",
        "image_size": 64,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "lr_step_size": 1000,  # no decay within these few epochs
        "num_epochs": args.epochs,
        "cache_rate": 1.0,
        "num_workers": 0,
        "progress_bar": False,
        "max_items_per_split": args.max_items,
        "device": "$torch.device('cpu')",
    }
    return overrides


def evaluation_overrides(args: argparse.Namespace) -> dict:
    """Overrides of evaluate.yaml on top of :func:`bundle_overrides`: the test subset and the MC passes."""
    return {"evaluate#datalist": f"$@datalists[@eval_split][::{args.eval_every}]", "mc_samples": args.mc_samples}


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def reporting_forms(table: dict) -> str:
    """Markdown: LoA and ICC of every variant and seed in the paper's form beside the plug-in form, and the
    paired LoA differences (a - b) in both forms, all read from :func:`run_table1`'s result."""
    labels = {v.key: f"{v.row} {v.label}" for v in VARIANTS}
    lines = [
        "#### LoA and ICC in both forms (the paper's and the plug-in), same evaluations",
        "",
        "| seed | model | LoA, bootstrap mean (paper) | LoA, plug-in | paper - plug-in | 95% CI of LoA "
        "| ICC(2,k), two-image patients (paper) | ICC(2,1) (plug-in) | patients |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for entry in table["seeds"]:
        for key, row in entry["rows"].items():
            boot, plugin = row["loa_boot_mean"], row["loa_plugin"]
            gap = None if boot is None or plugin is None else boot - plugin
            ci = row.get("loa_ci") or [None, None]
            lines.append(
                f"| {entry['seed']} | {labels.get(key, key)} | {_number(boot)} | {_number(plugin)} | "
                f"{'n/a' if gap is None else f'{gap:+.4f}'} | [{_number(ci[0])}, {_number(ci[1])}] | "
                f"{_number(row['icc_2k'])} | {_number(row['icc_2_1'])} | {row['n_patients']} |"
            )
    lines += [
        "",
        "| seed | paired test (a vs b) | ΔLoA, bootstrap mean (paper) | ΔLoA, plug-in | 95% CI | p |",
        "|---:|---|---:|---:|---|---:|",
    ]
    for entry in table["seeds"]:
        for c in entry["comparisons"]:
            loa = c["loa"]
            lines.append(
                f"| {entry['seed']} | {labels[c['a']]} vs {labels[c['b']]} | "
                f"{loa.get('difference_boot_mean', float('nan')):+.4f} | {loa['difference']:+.4f} | "
                f"[{loa['ci'][0]:+.3f}, {loa['ci'][1]:+.3f}] | {loa['p_value']:.3g} |"
            )
    return "\n".join(lines) + "\n"


def command_line(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python benchmarks/bench_repeatability.py"]
    if args.quick:
        parts.append("--quick")
    return " ".join(parts + args.extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1 epoch, 200 items, 5 MC passes")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--eval_every", type=int, default=None, help="evaluate every k-th test image")
    parser.add_argument("--mc_samples", type=int, default=None)
    parser.add_argument("--max_items", type=int, default=None, help="class-balanced items per split")
    parser.add_argument("--threads", type=int, default=FULL_THREADS, help="torch threads")
    parser.add_argument("--output_dir", default=None, help="runs and table (default: a temporary folder)")
    parser.add_argument("--results_file", default=None, help="also write the markdown section to this file")
    args = parser.parse_args()
    if args.results_file and Path(args.results_file).exists():
        parser.error(f"--results_file {args.results_file} exists; choose another file")
    args.extra = [a for a in sys.argv[1:] if a != "--quick"]
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not NPZ.is_file():
        raise FileNotFoundError(f"{NPZ} not found: check out ../shared/data or set MONAI_IMBALANCE_SHARED_DATA")
    torch.set_num_threads(args.threads)
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="bench_repeatability_"))
    overrides = bundle_overrides(args)

    cpu_start = time.process_time()
    start = time.perf_counter()
    runs = train_variants(BUNDLE, out / "runs", seeds=args.seeds, overrides=overrides)
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    table = run_table1(
        BUNDLE,
        [runs[("ce", s)] for s in args.seeds],
        [runs[("focal", s)] for s in args.seeds],
        out / "table",
        overrides={**overrides, **evaluation_overrides(args)},
        seeds=args.seeds,
    )
    eval_time = time.perf_counter() - start

    date = datetime.date.today().isoformat()
    lines = [
        "## Repeatability study on knee KL radiographs: cross-entropy vs focal loss, with and without MC dropout",
        "",
        f"Command: `{command_line(args)}`, run {date} on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores, {args.threads} torch threads), wall time {train_time / 60:.1f} min training + "
        f"{eval_time / 60:.1f} min evaluation.",
        f"Settings: seeds {args.seeds}, {args.epochs} epoch(s), small CNN 64 px, items per split "
        f"{args.max_items or 'all'}, test images: every {args.eval_every} (1 = all), {args.mc_samples} MC passes, "
        "simulated repeats (2 copies per image).",
        "",
        table["markdown"],
        reporting_forms(table),
    ]
    if args.quick:
        cpu = time.process_time() - cpu_start
        lines.append(estimate_full_run(args, cpu, table["seeds"][0]["rows"]["ce"]["n_images"]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results_file:
        target = Path(args.results_file)
        if target.exists():
            raise FileExistsError(f"{target} exists; the result is printed above (choose another --results_file)")
        target.write_text(text)


def workload(settings: dict, sizes: dict[str, int]) -> dict[str, int]:
    """Runs, training image-steps and evaluation image-passes of a setting (``sizes``: train, val, eval images)."""
    checkpoints = 2 * len(settings["seeds"])
    return {
        "runs": 3 * checkpoints,  # a training and two evaluations per checkpoint
        "train_steps": checkpoints * settings["epochs"] * sizes["train"],
        "passes": checkpoints * (settings["epochs"] * sizes["val"] + sizes["eval"] * (1 + settings["mc_samples"])),
    }


def kernel_seconds() -> tuple[float, float]:
    """CPU seconds per image of a training step (batch 64) and of an MC-dropout pass (10 passes of 64 per forward).

    One thread and CPU time, not wall time: on a shared machine the wall time (and the CPU time of several
    threads, which spin while they wait) mostly measures the other jobs.
    """
    from monai_imbalance.inferers import MCDropoutInferer
    from monai_imbalance.networks import get_network

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = get_network("small_cnn", spatial_dims=2, in_channels=1, out_channels=5, dropout_prob=0.1)
    x, y = torch.rand(64, 1, 64, 64), torch.randint(0, 5, (64,))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    inferer = MCDropoutInferer(10, mc_batch_size=10, seed=0)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def passes() -> None:
        with torch.no_grad():
            inferer(x, net)

    times = []
    for fn, images in ((step, 64), (passes, 640)):
        fn()  # warm-up
        runs = []
        for _ in range(3):
            start = time.process_time()
            fn()
            runs.append((time.process_time() - start) / images)
        times.append(sorted(runs)[1])
    torch.set_num_threads(threads)
    return times[0], times[1]


def estimate_full_run(args: argparse.Namespace, cpu: float, quick_eval_images: int) -> str:
    """The full run's CPU time: per-image kernel CPU times times its work, plus this run's set-up CPU per run.

    Its wall time on a quiet machine lies between CPU / threads (perfect parallel scaling) and the CPU time.
    The set-up per run is what this run's CPU time leaves after its kernel work: an upper bound when this run
    had more than one thread on a loaded machine (spinning threads).
    """
    t_step, t_pass = kernel_seconds()
    full = full_split_sizes()
    quick_sizes = {
        "train": min(args.max_items or full["train"], full["train"]),
        "val": min(args.max_items or full["val"], full["val"]),
        "eval": quick_eval_images,
    }
    quick = workload(vars(args), quick_sizes)
    full_sizes = {
        "train": full["train"],
        "val": full["val"],
        "eval": 2 * len(range(0, full["test"], FULL["eval_every"])),
    }
    work = workload(FULL, full_sizes)
    overhead = max(0.0, cpu - quick["train_steps"] * t_step - quick["passes"] * t_pass) / quick["runs"]
    seconds = work["runs"] * overhead + work["train_steps"] * t_step + work["passes"] * t_pass
    return (
        f"Estimated full run (`.venv/bin/python benchmarks/bench_repeatability.py`): about {seconds / 60:.0f} CPU "
        f"minutes, i.e. {seconds / 60 / FULL_THREADS:.0f}-{seconds / 60:.0f} min of wall time on {FULL_THREADS} quiet "
        f"cores (kernel CPU times measured now: {1e3 * t_step:.1f} ms per image and training step, "
        f"{1e3 * t_pass:.1f} ms per image and MC pass; {work['train_steps']:,} training image-steps, "
        f"{work['passes']:,} evaluation image-passes; {overhead:.0f} CPU s of set-up per run, from this run, times "
        f"{work['runs']} runs; train {full['train']}, val {full['val']}, test {full['test']} images)."
    )


def full_split_sizes() -> dict[str, int]:
    """Images per split of the full run (the bundle's patient-level carving of the test split, split_seed 0)."""
    from monai_imbalance.data import load_datalists

    datalists = load_datalists("medmnist", NPZ, seed=0, warn=False)
    return {split: len(items) for split, items in datalists.items()}


if __name__ == "__main__":
    main()
