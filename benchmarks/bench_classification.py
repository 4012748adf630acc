"""Quality of the class-imbalance methods on real data (issue 5): MedMNIST, CPU, mean +- SD over seeds.

Studies (test-split scores of the checkpoint with the best validation score, as the bundles select it):

(a) DermaMNIST (7 skin-lesion classes, HAM10000): cross-entropy vs focal (gamma 2) vs LDAM vs LMF (the
    library's defaults: the official alpha, beta, gamma, margins and scale, unweighted), with the plain linear
    head of the official LMF setting and, for LDAM/LMF, also with the cosine (normalised-linear) head that LDAM's
    scale ``s = 30`` was designed for. Macro-F1 and balanced accuracy.
(b) PneumoniaMNIST (binary; positive class pneumonia) and RetinaMNIST (5 fundus grades): the BBFL paper's
    comparison, CE vs random over-sampling (ROS), random under-sampling (RUS), cost-sensitive CE (inverse
    class-frequency weights), thresholding and BBFL (batch-balanced sampler + focal gamma 2). F1 (binary:
    of the positive class; multiclass: macro), AUC. Thresholding reuses the CE run and moves the decision on
    the validation split: binary, the F1-optimal threshold on ``p(pneumonia)`` (``select_threshold``);
    multiclass, prior correction ``argmax_c p_c / pi_c`` with the training priors (``prior_correction``).

(c) ``--study lmf_official`` (issue 14): DermaMNIST only, cross-entropy vs LMF with the library's defaults
    (``get_loss("lmf")``, unweighted) vs LMF in the official code's setting (``get_loss("lmf_official")``: the
    LDAM margins as class weights of both terms), linear head; macro-F1 and per-class recall.

Every table adds the paired differences of macro-F1 and balanced accuracy to its first method (cross-entropy:
the same seed gives the same initial weights and batch order), mean +- SD over seeds, and, with
``--per-class-recall`` (on by default for ``--study lmf_official``), the test recall of every class.

Components are those of the bundles, driven directly (no bundle subprocesses, no MONAI engines, so that the
whole study fits on a CPU): ``load_datalists("medmnist")`` and the bundles' deterministic pre-processing
(``LoadImageOrArrayd``, ``ScaleIntensityRanged``), ``get_network("small_cnn", dropout_prob=0.1, head=...)``,
``get_loss``, ``get_sampler``, ``class_counts``/``class_weights``, ``select_threshold``/``class_priors``, and
``classification_report`` for every score. Model selection: validation macro-F1 (multiclass) or F1 of the
positive class (binary) after every epoch, as the bundles' key metrics.

What is shrunk against the papers (CPU budget of 45 minutes for the whole run): MedMNIST 28 px images (native
size, no resize) instead of 224-299 px; ``SmallCNN`` (~70k parameters, widths 16/32/64) trained from scratch
instead of the LMF paper's ImageNet-pretrained DenseNet121 / ResNet50 / EfficientNetV2-S and the BBFL paper's
InceptionV3 / MobileNetV2 / ResNet50; few epochs (``--epochs``, default per
data set below); Adam 1e-3 (weight decay 1e-4), batch 64, no learning-rate schedule, no augmentation; every
training image is used (``--train-fraction`` shrinks further: a seeded, class-stratified subset of the
training split). Validation and test splits are always complete. One torch thread per training run; runs are
spread over ``--jobs`` processes (results do not depend on ``--jobs``).

Cost: 48 training runs (18 DermaMNIST, 15 PneumoniaMNIST, 15 RetinaMNIST; thresholding shares the CE runs)
with about 1.47 million training-image passes in all (an epoch of ROS / RUS is longer / shorter than a plain
one). At ~2.3 ms per pass on one core (validation included) that is ~28 min with ``--jobs 2`` on two idle
cores; the run prints its measured ms per pass, so the cost of other settings can be extrapolated.

Run (the full study; its wall time is printed at the end)::

    .venv/bin/python benchmarks/bench_classification.py --output /tmp/classification.md
    .venv/bin/python benchmarks/bench_classification.py --study lmf_official --output /tmp/lmf_official.md
    .venv/bin/python benchmarks/bench_classification.py --quick     # 2 epochs, 15% of the training images
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
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch

from monai_imbalance.data import class_counts, class_weights, get_sampler, load_datalists
from monai_imbalance.losses import get_loss
from monai_imbalance.metrics import classification_report, f1_score
from monai_imbalance.networks import get_network
from monai_imbalance.transforms import LoadImageOrArrayd, class_priors, select_threshold

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist"

#: default epochs per data set (train images: DermaMNIST 7,007, PneumoniaMNIST 4,708, RetinaMNIST 1,080)
DEFAULT_EPOCHS = {"dermamnist": 6, "pneumoniamnist": 5, "retinamnist": 20}
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
DROPOUT = 0.1


@dataclass(frozen=True)
class Training:
    """One training configuration (a seed is added per run)."""

    loss: str = "ce"
    sampler: str = "none"
    class_weighting: str = "none"
    head: str = "linear"


@dataclass(frozen=True)
class Method:
    """A table row: a training configuration and the decision rule applied to its predictions."""

    name: str
    training: Training
    decision: str = "argmax"  # argmax | validation (binary F1 threshold / multiclass prior correction)


LOSS_METHODS = (
    Method("CE", Training("ce")),
    Method("focal (gamma 2)", Training("focal")),
    Method("LDAM (linear head)", Training("ldam")),
    Method("LMF (linear head, library defaults)", Training("lmf")),
    Method("LDAM, cosine head", Training("ldam", head="cosine")),
    Method("LMF, cosine head", Training("lmf", head="cosine")),
)
BBFL_METHODS = (
    Method("CE", Training("ce")),
    Method("ROS (over-sampling)", Training("ce", sampler="over")),
    Method("RUS (under-sampling)", Training("ce", sampler="under")),
    Method("cost-sensitive (inverse weights)", Training("ce", class_weighting="inverse")),
    Method("thresholding (CE + validation rule)", Training("ce"), decision="validation"),
    Method("BBFL (batch-balanced + focal)", Training("focal", sampler="batch_balanced")),
)
LMF_OFFICIAL_METHODS = (
    Method("CE", Training("ce")),
    Method("LMF, library defaults (get_loss('lmf'))", Training("lmf")),
    Method("LMF, official weighting (get_loss('lmf_official'))", Training("lmf_official")),
)
STUDIES: dict[str, tuple[Method, ...]] = {
    "dermamnist": LOSS_METHODS,
    "pneumoniamnist": BBFL_METHODS,
    "retinamnist": BBFL_METHODS,
}
#: ``--study``: the methods per data set of each study
STUDY_SETS: dict[str, dict[str, tuple[Method, ...]]] = {
    "imbalance": STUDIES,
    "lmf_official": {"dermamnist": LMF_OFFICIAL_METHODS},
}


@dataclass(frozen=True)
class Run:
    """One training run: what the worker process needs."""

    dataset: str
    training: Training
    seed: int
    epochs: int
    data_dir: str
    train_fraction: float


@dataclass
class RunResult:
    """Validation and test probabilities of a run's best epoch, and what happened on the way."""

    run: Run
    val_probs: np.ndarray
    test_probs: np.ndarray
    best_epoch: int
    seconds: float
    images_seen: int
    diverged_epoch: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, 28, 28) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64


@dataclass(frozen=True)
class Data:
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _stack(items: Sequence[dict[str, Any]]) -> Split:
    """The bundles' deterministic pre-processing (load, scale 0-255 to [0, 1]; 28 px needs no resize)."""
    preprocessing = monai.transforms.Compose(
        [
            LoadImageOrArrayd(keys="image"),
            monai.transforms.ScaleIntensityRanged(
                keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True
            ),
        ]
    )
    images = torch.stack([torch.as_tensor(preprocessing(dict(item))["image"]).float() for item in items])
    labels = torch.tensor([int(item["label"]) for item in items], dtype=torch.long)
    return Split(images.as_subclass(torch.Tensor), labels)


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset with ``ceil(fraction * n_c)`` items of every class ``c``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.permutation(members)[: math.ceil(fraction * len(members))])
    return np.sort(np.concatenate(chosen))


@lru_cache(maxsize=4)
def load_data(dataset: str, data_dir: str, train_fraction: float) -> Data:
    datalists = load_datalists("medmnist", data_dir, flag=dataset, download=False, warn=False)
    train = datalists["train"]
    if train_fraction < 1.0:
        keep = stratified_subset(np.array([item["label"] for item in train]), train_fraction, seed=0)
        train = [train[i] for i in keep]
    return Data(_stack(train), _stack(datalists["val"]), _stack(datalists["test"]), tuple(datalists.class_names))


def selection_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The bundles' key metric: F1 of class 1 for binary problems, macro-F1 otherwise."""
    return float(f1_score(probs, labels, average="binary" if probs.shape[1] == 2 else "macro"))


@torch.no_grad()
def predict(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    network.eval()
    return torch.cat([torch.softmax(network(x), dim=1) for x in images.split(batch_size)])


def train_once(run: Run) -> RunResult:
    """Train one configuration with one seed; keep the epoch with the best validation score."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data(run.dataset, run.data_dir, run.train_fraction)
    cfg = run.training
    counts = class_counts(data.train.labels, data.num_classes)
    weights = None
    if cfg.class_weighting != "none":
        weights = torch.tensor(class_weights(counts, method=cfg.class_weighting), dtype=torch.float32)
    loss_fn = get_loss(cfg.loss, class_counts=counts, weight=weights)
    torch.manual_seed(run.seed)
    network = get_network(
        "small_cnn",
        spatial_dims=2,
        in_channels=data.train.images.shape[1],
        out_channels=data.num_classes,
        dropout_prob=DROPOUT,
        head=cfg.head,
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    sampler = get_sampler(cfg.sampler, data.train.labels, BATCH_SIZE, seed=run.seed)
    shuffle = torch.Generator().manual_seed(run.seed)

    best_score, best_epoch, best_state, diverged, seen = -math.inf, 0, None, None, 0
    for epoch in range(1, run.epochs + 1):
        if sampler is None:
            order = torch.randperm(len(data.train.labels), generator=shuffle)
        else:
            sampler.set_epoch(epoch)
            order = torch.as_tensor(list(sampler), dtype=torch.long)
        network.train()
        for index in order.split(BATCH_SIZE):
            if len(index) < 2:  # batch norm needs two samples
                continue
            loss = loss_fn(network(data.train.images[index]), data.train.labels[index])
            if not torch.isfinite(loss):
                diverged = epoch
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(index)
        if diverged is not None:
            break
        score = selection_score(predict(network, data.val.images), data.val.labels)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    notes = []
    if best_state is None:  # diverged in the first epoch: the untrained network is what there is
        notes.append("diverged before the first validation")
    else:
        network.load_state_dict(best_state)
    return RunResult(
        run=run,
        val_probs=predict(network, data.val.images).numpy(),
        test_probs=predict(network, data.test.images).numpy(),
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start,
        images_seen=seen,
        diverged_epoch=diverged,
        notes=notes,
    )


def test_report(result: RunResult, method: Method) -> dict[str, Any]:
    """:func:`classification_report` of the test split under the method's decision rule (chosen on validation)."""
    data = load_data(result.run.dataset, result.run.data_dir, result.run.train_fraction)
    rule: dict[str, Any] = {}
    if method.decision == "validation":
        if data.num_classes == 2:
            rule["decision_threshold"], _ = select_threshold(result.val_probs, data.val.labels, "f1")
        else:
            rule["class_priors"] = class_priors(class_counts(data.train.labels, data.num_classes))
    return classification_report(result.test_probs, data.test.labels, class_names=data.class_names, **rule)


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def study_table(
    dataset: str,
    methods: Sequence[Method],
    results: dict[tuple[Training, int], RunResult],
    *,
    per_class_recall: bool = False,
) -> str:
    """Markdown section of one data set: one row per method, test-split scores as mean +- SD over the seeds, the
    paired differences to the first method and (``per_class_recall``) the test recall of every class."""
    seeds = sorted({seed for (_, seed) in results})
    first = next(iter(results.values()))
    data = load_data(dataset, first.run.data_dir, first.run.train_fraction)
    counts = class_counts(data.train.labels, data.num_classes)
    rarest = data.class_names[int(np.argmin(counts))]
    columns: list[tuple[str, Any]] = [
        ("macro-F1", lambda rep: rep["f1_macro"]),
        ("balanced accuracy", lambda rep: rep["balanced_accuracy"]),
        ("AUC", lambda rep: rep["auc"]),
        ("accuracy", lambda rep: rep["accuracy"]),
    ]
    if data.num_classes == 2:
        columns.insert(0, (f"F1 ({data.class_names[1]})", lambda rep: rep["f1_positive"]))
        columns.append(("threshold", lambda rep: rep["decision_threshold"]))
    else:
        columns.append((f"F1 of the rarest class ({rarest})", lambda rep: rep["per_class"][rarest]["f1"]))
    reference = methods[0]
    paired = [("macro-F1", "f1_macro"), ("balanced accuracy", "balanced_accuracy")]
    lines = [
        "| method | "
        + " | ".join(name for name, _ in columns)
        + "".join(f" | {name} - {reference.name}'s (paired)" for name, _ in paired)
        + " | best epoch per seed |",
        "|---|" + "---:|" * (len(columns) + len(paired) + 1),
    ]
    reports = {m: [test_report(results[(m.training, seed)], m) for seed in seeds] for m in methods}
    for method in methods:
        runs = [results[(method.training, seed)] for seed in seeds]
        cells = [mean_sd([value(rep) for rep in reports[method]]) for _, value in columns]
        for _, key in paired:
            if method == reference:
                cells.append("-")
            else:
                pairs = zip(reports[method], reports[reference], strict=True)
                cells.append(mean_sd([rep[key] - ref[key] for rep, ref in pairs]))
        diverged = sum(r.diverged_epoch is not None for r in runs)
        name = method.name + (f" (diverged in {diverged}/{len(runs)} runs)" if diverged else "")
        epochs = ", ".join(str(r.best_epoch) for r in runs)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs} |")
    if per_class_recall:
        lines += [
            "",
            "Test recall per class (mean +- SD over seeds; training images per class in brackets):",
            "",
            "| method | " + " | ".join(f"{c} ({n})" for c, n in zip(data.class_names, counts, strict=True)) + " |",
            "|---|" + "---:|" * data.num_classes,
        ]
        for method in methods:
            cells = [mean_sd([rep["per_class"][c]["recall"] for rep in reports[method]]) for c in data.class_names]
            lines.append(f"| {method.name} | " + " | ".join(cells) + " |")
    sizes = f"train {len(data.train.labels)} ({', '.join(map(str, counts))} per class), "
    sizes += f"val {len(data.val.labels)}, test {len(data.test.labels)}"
    return f"### {dataset}\n\n{sizes}; classes {', '.join(data.class_names)}.\n\n" + "\n".join(lines) + "\n"


def parse_epochs(values: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, int]:
    """``{dataset: epochs}`` from ``N`` (every data set) and ``DATASET=N`` items, later items winning."""
    epochs = dict(DEFAULT_EPOCHS)
    for value in values:
        name, _, count = value.rpartition("=")
        if name and name not in DEFAULT_EPOCHS:
            parser.error(f"--epochs {value}: unknown data set {name!r}; choose from {list(DEFAULT_EPOCHS)}")
        if not count.isdigit() or int(count) < 1:
            parser.error(f"--epochs {value}: expected a positive number of epochs")
        epochs.update({name: int(count)} if name else dict.fromkeys(epochs, int(count)))
    return epochs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="folder with the MedMNIST .npz files")
    parser.add_argument(
        "--study",
        default="imbalance",
        choices=list(STUDY_SETS),
        help="imbalance: the losses and rebalancing methods of issue 5 (default); lmf_official: CE vs LMF "
        "(library defaults) vs LMF (official weighting) on DermaMNIST",
    )
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(STUDIES), help="default: the study's")
    parser.add_argument(
        "--per-class-recall",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the test recall of every class (default: on for --study lmf_official)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--epochs",
        nargs="+",
        default=[],
        metavar="[DATASET=]N",
        help=f"epochs: N for every data set and/or DATASET=N for one (default {DEFAULT_EPOCHS})",
    )
    parser.add_argument("--train-fraction", type=float, default=1.0, help="class-stratified share of the train split")
    parser.add_argument("--jobs", type=int, default=2, help="training runs in parallel (one thread each)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 15%% of the training images (a smoke run)")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    epochs = parse_epochs(["2", *args.epochs] if args.quick else args.epochs, parser)
    if args.quick:
        args.train_fraction = min(args.train_fraction, 0.15)
    if not 0 < args.train_fraction <= 1:
        parser.error("--train-fraction must lie in (0, 1]")
    if args.output is not None and args.output.exists():
        parser.error(f"{args.output} exists; move it away or choose another --output (nothing is overwritten)")
    studies = STUDY_SETS[args.study]
    if args.datasets is None:
        args.datasets = list(studies)
    unknown = [d for d in args.datasets if d not in studies]
    if unknown:
        parser.error(f"--study {args.study} has no data set(s) {unknown}; it has {list(studies)}")
    if args.per_class_recall is None:
        args.per_class_recall = args.study == "lmf_official"

    wall = time.perf_counter()
    runs = []
    for dataset in args.datasets:
        trainings = list(dict.fromkeys(m.training for m in studies[dataset]))  # thresholding reuses CE's run
        for training in trainings:
            for seed in args.seeds:
                runs.append(Run(dataset, training, seed, epochs[dataset], args.data_dir, args.train_fraction))
    print(f"{len(runs)} training runs on {args.jobs} process(es)...", file=sys.stderr, flush=True)
    results: dict[str, dict[tuple[Training, int], RunResult]] = {d: {} for d in args.datasets}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(train_once, runs):
            results[result.run.dataset][(result.run.training, result.run.seed)] = result
            r = result.run
            print(
                f"  {r.dataset} {r.training} seed {r.seed}: best epoch {result.best_epoch}, {result.seconds:.0f} s"
                + (f", diverged in epoch {result.diverged_epoch}" if result.diverged_epoch else ""),
                file=sys.stderr,
                flush=True,
            )
    wall = time.perf_counter() - wall

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *(argv or sys.argv[1:])])
    epochs = {d: epochs[d] for d in args.datasets}
    run_seconds = sum(r.seconds for per in results.values() for r in per.values())
    images_seen = sum(r.images_seen for per in results.values() for r in per.values())
    out = [
        "## Classification quality on real data (MedMNIST, CPU)\n",
        f"Command: `{command}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time {wall / 60:.1f} min "
        f"({len(runs)} training runs, {run_seconds / 60:.1f} min of run time in total, {args.jobs} parallel job(s); "
        f"{images_seen:,} training images passed, {1e3 * run_seconds / max(images_seen, 1):.2f} ms of run time each, "
        "validation, test and data loading included).  ",
        f"torch {torch.__version__}, monai {monai.__version__}, python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs.\n",
        f"Setting: SmallCNN (16/32/64) from scratch, 28 px, dropout {DROPOUT}, Adam {LEARNING_RATE} (weight decay "
        f"{WEIGHT_DECAY}), batch {BATCH_SIZE}, no augmentation, epochs {epochs}, training images used: "
        f"{args.train_fraction:.0%} (class-stratified), seeds {args.seeds}; best epoch by validation F1 "
        "(binary: positive class; multiclass: macro); test-split scores as mean +- SD (sample SD over seeds); "
        "'best epoch per seed' is the selected epoch of every seed.\n",
    ]
    for dataset in args.datasets:
        out.append(study_table(dataset, studies[dataset], results[dataset], per_class_recall=args.per_class_recall))
    text = "\n".join(out)
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
