"""Quality of the segmentation losses on real data (issue 7): DSB 2018 nuclei, U-Net, CPU, mean +- SD over seeds.

The ALL paper's comparison on the Data Science Bowl 2018 nuclei: a U-Net trained with the Dice loss vs the
Adaptive Logarithmic Loss (ALL over Dice, omega 10, epsilon 0.5, delta 0.1) and the other compared losses
(Jaccard, Tversky, focal, Combo, Focal Tversky). Scores on the held-out 20% of the images, pixel-level and
pooled over the test images as the bundles compute them: Jaccard (IoU), F1 (= Dice coefficient), recall,
specificity (TNR), and the pixel AUC-ROC; plus the per-seed difference of each loss's Jaccard to the Dice loss's
(the same split and initial weights, so the pairing removes their share of the spread).

Components are those of ``bundles/nuclei_segmentation``, driven directly (no bundle subprocesses, no MONAI
engines, so that the study fits on a CPU): ``load_segmentation_datalists("dsb2018", <npz>, fractions=
{train: 0.7, val: 0.1, test: 0.2}, seed=seed)`` (the bundle's seeded split: 20% held out, 10% of the images
pick the best epoch), the bundle's deterministic pre-processing (``LoadImageOrArrayd``, ``LoadBinaryMaskd``,
``ScaleIntensityRanged`` 0-255 to [0, 1], ``Resized`` area / nearest), ``get_segmentation_network("unet",
dropout=0.1)`` (MONAI UNet, batch norm, strided downsampling, two residual units per level, 1x1 convolution
head), ``get_loss(name, sigmoid=True)``, Adam, and ``compute_segmentation_scores`` / ``compute_pixel_roc_auc``
at threshold 0.5. The seed fixes the split, the initial weights and the batch order. Model selection: validation
Jaccard after every epoch, as the bundle's key metric; the test split is scored once, with the selected weights.

What is shrunk against the paper (CPU budget of 45 minutes for the whole run: 7 losses x 3 seeds = 21 runs
on 2 cores): the images (``--image-size``, default 128 instead of the bundle's 256), the network widths
(``--channels``, default 8/16/32/64/128 instead of 16..256), the epochs (``--epochs``, default 15 instead of
up to 50), and, to make up for the few epochs, Adam's learning rate (``--lr``, default 1e-3 instead of the
paper's 1e-4: at 1e-4 the Dice-loss U-Net was still improving after 20 epochs, validation Jaccard 0.58; at 1e-3
it levels off near 0.77 after about 10); grey input (one channel: the npz is grey). What is kept: the data (all
334 images of the shared npz, the DSB 2018 stage-1 images with community-fixed union masks), batch 16, dropout
0.1, no augmentation, the loss defaults of ``get_loss``. One torch thread per training run; runs are spread
over ``--jobs`` processes (results do not depend on ``--jobs``).

ALL's two readings (issue 14) are loss variants of their own: ``all`` is ``get_loss("all")`` as it is (the
library default form), ``all_wing`` and ``all_smooth`` name the form (``get_loss("all", form=...)``); any ALL
variant takes a threshold suffix, ``all_smooth@0.3`` (``delta`` 0.3; the paper's hyper-parameter table spans
0.08..0.30), and ``--delta`` sets it for every ALL variant without one. The Wing form equals the Dice loss minus a
constant as long as the (batch-mean) Dice loss is at least ``delta``; the smooth form is ``A`` times the Dice loss
minus a constant there (``A = omega / (epsilon + delta)``, 16.7 at the defaults), which Adam's scale invariance
all but cancels. Only below ``delta`` does the logarithmic branch change the direction or the relative size of the
updates. With the same seed, every ALL run therefore follows the Dice run (bit for bit for ``"wing"``) up to its
first step in the logarithmic branch. Per run, the table reports the share of training steps in the log branch
(ALL's own ``last_log_branch_fraction``; for the Dice loss, the share of steps whose Dice loss was below each
``delta`` in the study, i.e. where ALL would have been in its log branch) and the training Dice of the last epoch
(one minus the mean batch Dice loss, whatever loss was trained), so that the regime of every run is visible.

Run (the full study; its wall time is printed at the end)::

    .venv/bin/python benchmarks/bench_segmentation.py --output /tmp/segmentation.md   # then into RESULTS.md
    .venv/bin/python benchmarks/bench_segmentation.py --losses dice all_wing all_smooth all_wing@0.3 all_smooth@0.3
    .venv/bin/python benchmarks/bench_segmentation.py --quick     # 64 px, 2 epochs, one seed (a smoke run)
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import monai
import torch

from monai_imbalance.data import load_segmentation_datalists
from monai_imbalance.losses import AdaptiveLogarithmicLoss, get_loss, log_branch_fraction
from monai_imbalance.metrics import compute_pixel_roc_auc, compute_segmentation_scores
from monai_imbalance.networks import get_segmentation_network
from monai_imbalance.transforms import LoadBinaryMaskd, LoadImageOrArrayd

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "dsb2018_256.npz"

#: the paper's losses in the order of its table, the Dice loss (the baseline) first
LOSSES = ("dice", "all", "jaccard", "tversky", "focal", "combo", "focal_tversky")
#: ALL's two readings by name (``all`` is the library default form); each may carry ``@delta``
ALL_FORMS = {"all": None, "all_wing": "wing", "all_smooth": "smooth"}
DEFAULT_DELTA = 0.1  # the library's (and the paper's best) threshold
SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
BATCH_SIZE = 16
DROPOUT = 0.1
THRESHOLD = 0.5
SCORES = ("jaccard", "dice", "recall", "specificity")


@dataclass(frozen=True)
class Run:
    """One training run: what the worker process needs."""

    loss: str
    seed: int
    epochs: int
    image_size: int
    channels: tuple[int, ...]
    lr: float
    data: str
    deltas: tuple[float, ...] = (DEFAULT_DELTA,)  # thresholds at which the training Dice loss is counted


def parse_variant(variant: str, delta: float | None = None) -> tuple[str, dict[str, float | str]]:
    """``(get_loss name, keywords)`` of a loss variant: a name of :data:`LOSSES` or ``all_wing`` / ``all_smooth``,
    an ALL variant optionally with ``@delta`` (``delta``: the threshold of ALL variants without a suffix)."""
    name, sep, suffix = variant.partition("@")
    if name not in LOSSES and name not in ALL_FORMS:
        raise ValueError(f"unknown loss variant {variant!r}; choose from {[*LOSSES, *ALL_FORMS]} (ALL: name@delta)")
    if name not in ALL_FORMS:
        if sep:
            raise ValueError(f"{variant!r}: only the ALL variants {list(ALL_FORMS)} take a @delta suffix")
        return name, {}
    kwargs: dict[str, float | str] = {}
    if ALL_FORMS[name] is not None:
        kwargs["form"] = ALL_FORMS[name]
    if sep:
        try:
            kwargs["delta"] = float(suffix)
        except ValueError:
            raise ValueError(f"{variant!r}: the suffix after @ must be a number (ALL's delta)") from None
    elif delta is not None:
        kwargs["delta"] = delta
    return "all", kwargs


def build_loss(variant: str) -> torch.nn.Module:
    name, kwargs = parse_variant(variant)
    return get_loss(name, sigmoid=True, **kwargs)


@dataclass
class RunResult:
    run: Run
    scores: dict[str, float]  # test split: jaccard, dice, recall, specificity, auc
    best_epoch: int
    seconds: float
    diverged_epoch: int | None = None
    steps: int = 0  # training steps
    log_branch_steps: int | None = None  # ALL only: training steps in the logarithmic branch
    below: dict[float, int] | None = None  # training steps whose batch Dice loss was below each delta
    train_dice: list[float] | None = None  # per epoch: 1 - mean batch Dice loss of the training steps


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, 1, S, S) float32 in [0, 1]
    labels: torch.Tensor  # (N, 1, S, S) float32 0/1


@lru_cache(maxsize=4)
def load_data(data: str, image_size: int, seed: int) -> dict[str, Split]:
    """The bundle's seeded split and deterministic pre-processing, applied once to every image."""
    datalists = load_segmentation_datalists("dsb2018", data, fractions=SPLIT, seed=seed)
    preprocessing = monai.transforms.Compose(
        [
            LoadImageOrArrayd(keys="image", channels=1),
            LoadBinaryMaskd(keys="label"),
            monai.transforms.ScaleIntensityRanged(
                keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True
            ),
            monai.transforms.Resized(
                keys=["image", "label"], spatial_size=(image_size, image_size), mode=("area", "nearest")
            ),
        ]
    )
    out = {}
    for split, items in datalists.items():
        prepared = [preprocessing(dict(item)) for item in items]
        out[split] = Split(
            torch.stack([torch.as_tensor(p["image"]).as_subclass(torch.Tensor).float() for p in prepared]),
            torch.stack([torch.as_tensor(p["label"]).as_subclass(torch.Tensor).float() for p in prepared]),
        )
    return out


@torch.no_grad()
def predict(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    network.eval()
    return torch.cat([torch.sigmoid(network(x)) for x in images.split(batch_size)])


def score(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Pixel-level scores pooled over the images (the bundles' metrics) and the pixel AUC."""
    values = compute_segmentation_scores(probs, labels, metric_names=SCORES, threshold=THRESHOLD)
    out = {name: float(values[name].item()) for name in SCORES}
    out["auc"] = float(compute_pixel_roc_auc(probs, labels))
    return out


def train_once(run: Run) -> RunResult:
    """Train one loss with one seed; keep the epoch with the best validation Jaccard; score the test split."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data(run.data, run.image_size, run.seed)
    train, val, test = data["train"], data["val"], data["test"]
    torch.manual_seed(run.seed)
    network = get_segmentation_network("unet", in_channels=1, out_channels=1, channels=run.channels, dropout=DROPOUT)
    loss_fn = build_loss(run.loss)
    is_all = isinstance(loss_fn, AdaptiveLogarithmicLoss)
    dice_fn = get_loss("dice", sigmoid=True)  # the training Dice loss of every run (ALL's inner loss), no gradient
    optimizer = torch.optim.Adam(network.parameters(), lr=run.lr)
    shuffle = torch.Generator().manual_seed(run.seed)
    steps, log_steps = 0, 0
    below = dict.fromkeys(run.deltas, 0)
    train_dice: list[float] = []

    best_jaccard, best_epoch, best_state, diverged = -math.inf, 0, None, None
    for epoch in range(1, run.epochs + 1):
        network.train()
        epoch_dice = []
        for index in torch.randperm(len(train.images), generator=shuffle).split(BATCH_SIZE):
            if len(index) < 2:  # batch norm needs two samples
                continue
            logits = network(train.images[index])
            loss = loss_fn(logits, train.labels[index])
            if not torch.isfinite(loss):
                diverged = epoch
                break
            with torch.no_grad():
                dice_loss = dice_fn(logits, train.labels[index])
            epoch_dice.append(float(dice_loss))
            steps += 1
            for delta in below:
                below[delta] += bool(log_branch_fraction(dice_loss, delta) > 0)
            if is_all:
                log_steps += round(float(loss_fn.last_log_branch_fraction))  # one value: the batch Dice loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if epoch_dice:
            train_dice.append(1.0 - statistics.mean(epoch_dice))
        if diverged is not None:
            break
        jaccard = score(predict(network, val.images), val.labels)["jaccard"]
        if jaccard > best_jaccard:
            best_jaccard, best_epoch = jaccard, epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    if best_state is not None:  # else: diverged in the first epoch; the network as it is
        network.load_state_dict(best_state)
    return RunResult(
        run=run,
        scores=score(predict(network, test.images), test.labels),
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start,
        diverged_epoch=diverged,
        steps=steps,
        log_branch_steps=log_steps if is_all else None,
        below=below,
        train_dice=train_dice,
    )


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def log_branch_cell(runs: Sequence[RunResult]) -> str:
    """ALL: its steps in the log branch per seed; Dice: its steps with a Dice loss below each delta per seed."""
    if all(r.log_branch_steps is not None for r in runs):
        return ", ".join(f"{r.log_branch_steps}/{r.steps}" for r in runs)
    deltas = sorted(runs[0].below or {})
    return "; ".join(
        f"< {delta:g}: " + ", ".join(f"{(r.below or {}).get(delta, 0)}/{r.steps}" for r in runs) for delta in deltas
    )


def table(results: dict[tuple[str, int], RunResult], losses: Sequence[str], seeds: Sequence[int]) -> str:
    baseline = "dice" if "dice" in losses else None
    lines = [
        "| loss | Jaccard | F1 (Dice) | recall | TNR | AUC | Jaccard - Dice loss's (paired) | F1 - Dice loss's "
        "(paired) | best epoch | steps in ALL's log branch (Dice: below delta) | train Dice, last epoch | min/run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for loss in losses:
        runs = [results[(loss, seed)] for seed in seeds]
        cells = [mean_sd([r.scores[key] for r in runs]) for key in ("jaccard", "dice", "recall", "specificity", "auc")]
        for key in ("jaccard", "dice"):
            if baseline is None or loss == baseline:
                cells.append("-")
            else:
                cells.append(
                    mean_sd([r.scores[key] - results[(baseline, r.run.seed)].scores[key] for r in runs], digits=4)
                )
        diverged = sum(r.diverged_epoch is not None for r in runs)
        name = loss + (f" (diverged in {diverged}/{len(runs)} runs)" if diverged else "")
        epochs = ", ".join(str(r.best_epoch) for r in runs)
        minutes = statistics.mean(r.seconds for r in runs) / 60
        last = mean_sd([r.train_dice[-1] for r in runs if r.train_dice])
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {epochs} | {log_branch_cell(runs)} | {last} | {minutes:.1f} |"
        )
    return "\n".join(lines) + "\n"


def per_seed_table(results: dict[tuple[str, int], RunResult], losses: Sequence[str], seeds: Sequence[int]) -> str:
    """Test Jaccard of every run and the training Dice per epoch (when each run reached which regime)."""
    lines = ["| loss | seed | test Jaccard | train Dice per epoch |", "|---|---:|---:|---|"]
    for loss in losses:
        for seed in seeds:
            r = results[(loss, seed)]
            curve = " ".join(f"{d:.3f}" for d in r.train_dice or [])
            lines.append(f"| {loss} | {seed} | {r.scores['jaccard']:.4f} | {curve} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the DSB 2018 npz (or a Kaggle stage1_train tree)")
    parser.add_argument(
        "--losses",
        nargs="+",
        default=list(LOSSES),
        metavar="LOSS",
        help=f"loss variants: {', '.join(LOSSES)}, all_wing, all_smooth; ALL variants take @delta (all_smooth@0.3)",
    )
    parser.add_argument("--delta", type=float, default=None, help="ALL's delta for ALL variants without @delta")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=128, help="images resized to this square size")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64, 128], help="U-Net widths")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (the paper: 1e-4, with 50 epochs)")
    parser.add_argument("--jobs", type=int, default=2, help="training runs in parallel (one thread each)")
    parser.add_argument("--quick", action="store_true", help="64 px, widths 8..64, 2 epochs, seed 0 (a smoke run)")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.channels, args.epochs, args.seeds = 64, [8, 16, 32, 64], 2, [0]
    divisor = 2 ** (len(args.channels) - 1)
    if args.image_size % divisor:
        parser.error(f"--image-size must be a multiple of {divisor} for {len(args.channels)} U-Net levels")
    if args.output is not None and args.output.exists():
        parser.error(f"{args.output} exists; move it away or choose another --output (nothing is overwritten)")
    variants, deltas = [], set()
    for loss in args.losses:
        try:
            name, kwargs = parse_variant(loss, args.delta)
        except ValueError as error:
            parser.error(str(error))
        if name == "all":  # spell out the threshold, so that every ALL variant names its delta
            kwargs.setdefault("delta", DEFAULT_DELTA)
            loss = loss.partition("@")[0] + f"@{kwargs['delta']:g}"
            deltas.add(float(kwargs["delta"]))
        variants.append(loss)
    args.losses = list(dict.fromkeys(variants))
    deltas = tuple(sorted(deltas or {DEFAULT_DELTA}))

    wall = time.perf_counter()
    runs = [
        Run(loss, seed, args.epochs, args.image_size, tuple(args.channels), args.lr, args.data, deltas)
        for seed in args.seeds
        for loss in args.losses
    ]
    print(f"{len(runs)} training runs on {args.jobs} process(es)...", file=sys.stderr, flush=True)
    results: dict[tuple[str, int], RunResult] = {}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(train_once, runs):
            results[(result.run.loss, result.run.seed)] = result
            r = result.run
            print(
                f"  {r.loss} seed {r.seed}: best epoch {result.best_epoch}, test Jaccard "
                f"{result.scores['jaccard']:.3f}, train Dice last epoch "
                f"{(result.train_dice or [math.nan])[-1]:.3f}, log-branch steps {result.log_branch_steps}/"
                f"{result.steps}, {result.seconds:.0f} s"
                + (f", diverged in epoch {result.diverged_epoch}" if result.diverged_epoch else ""),
                file=sys.stderr,
                flush=True,
            )
    wall = time.perf_counter() - wall

    sizes = {name: len(split.images) for name, split in load_data(args.data, args.image_size, args.seeds[0]).items()}
    foreground = float(load_data(args.data, args.image_size, args.seeds[0])["test"].labels.mean())
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *(argv or sys.argv[1:])])
    run_seconds = sum(r.seconds for r in results.values())
    text = "\n".join(
        [
            "## Segmentation losses on real data (DSB 2018 nuclei, U-Net, CPU)\n",
            f"Command: `{command}`  ",
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time {wall / 60:.1f} min "
            f"({len(runs)} training runs, {run_seconds / 60:.1f} CPU-min in total, {args.jobs} parallel job(s)).  ",
            f"torch {torch.__version__}, monai {monai.__version__}, python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs.\n",
            f"Setting: MONAI UNet widths {tuple(args.channels)} (batch norm, dropout {DROPOUT}, strided "
            f"downsampling, 2 residual units per level) with a 1x1 convolution head, grey {args.image_size} x "
            f"{args.image_size} px, Adam "
            f"{args.lr}, batch {BATCH_SIZE}, {args.epochs} epochs, no augmentation; split by seed "
            f"train/val/test {sizes.get('train')}/{sizes.get('val')}/{sizes.get('test')} images (seed "
            f"{args.seeds[0]}; foreground {foreground:.1%} of the test pixels); best epoch by validation Jaccard; "
            f"test scores pixel-level, pooled over the test images, threshold {THRESHOLD}; mean +- SD (sample SD) "
            f"over seeds {args.seeds}; 'best epoch' lists the selected epoch of every seed, 'steps in ALL's log "
            "branch' ALL's training steps whose Dice loss was below delta, of all its steps (every seed; for the "
            "Dice loss: its steps below each delta of the study), 'train Dice, last epoch' one minus the mean batch "
            "Dice loss of the last epoch's training steps; paired differences are per seed (same split, initial "
            "weights and batch order), mean +- SD over seeds.\n",
            table(results, args.losses, args.seeds),
            "Per run: test Jaccard and the training Dice of every epoch.\n",
            per_seed_table(results, args.losses, args.seeds),
        ]
    )
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
