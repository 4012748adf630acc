"""Calibration and referral of the imbalance losses, with MC dropout in two placements (issue 20, item 5).

Stage 1 (``--stage train``, the default) trains the grid below with the package's own components, in this
process and ``--jobs`` worker processes (no bundle subprocesses: the whole grid has to fit a shared 2-core CPU),
and saves, for every model, the raw logits of the validation and test splits to ``--cache`` (outside the
repository, default ``/tmp/bench_calibration``), one ``.npz`` per (data set, loss, dropout placement, seed):

- ``{split}_logits`` ``(N, C)``: the deterministic pass (eval mode, dropout off);
- ``{split}_mc_logits`` ``(S, N, C)``: the ``S`` (``--mc-samples``) stochastic passes of
  :class:`~monai_imbalance.inferers.MCDropoutInferer` (``activation=None, keep_samples=True``: raw logits of every
  pass, so that a temperature can be applied to each pass; prefix reuse on, ``mc_batch_size`` 10, seeded by the
  run's seed, as the bundles run it);
- ``{split}_labels``; for the knee set also ``test_patient_ids``, ``test_sides`` and the simulated repeats
  ``repeat_logits`` / ``repeat_mc_logits`` / ``repeat_patient_ids`` / ``repeat_units`` / ``repeat_labels``;
- ``meta`` (JSON): settings, best epoch, validation score per epoch, times.

Grid (every cell with seeds ``--seeds``):

- DermaMNIST, 28 px RGB (7 classes, nevi 67% of the training images, dermatofibroma 1.1%): cross-entropy,
  focal (``get_loss("focal")``, gamma 2, as the skin bundle's ``--loss_name focal``) and LMF in the official
  setting (``get_loss("lmf_official")``, the skin bundle's default loss), linear head, no augmentation (as the
  skin bundle); model selection by validation macro-F1 (the classification bundles' key metric).
- Knee KL grades 0-4, 64 px grey (``knee_kl_64_trainval.npz``; the test split carved out of the training split by
  patient with ``split_seed`` 0, as the knee bundle does): cross-entropy vs focal (gamma 2, alpha 0.25, the knee
  bundle's ``--loss_name focal``), with the knee bundle's batch augmentation (``BatchRandAugment``: left-right
  flips, affine with probability 0.5, rotation 0.17 rad, scale 0.1); model selection by validation accuracy (the
  repeatability bundle's key metric). Repeats: the bundle's simulation (``RepeatEvaluationDataset(repeats=
  "simulate")``: two perturbed copies of every ``--knee-test-every``-th test knee, strength 1, seed 0).
- Dropout placement, rate 0.1 in both: ``all``: after every dense layer, exactly as the bundles build their
  DenseNet (``get_network("densenet121", dropout_prob=0.1, ...)`` -> ``add_dropout``); ``head``: only before the
  final linear layer (``get_network(..., dropout_prob=None)`` then ``add_dropout(net, 0.1,
  before="class_layers.out")``). Dropout is active in training in both (it changes the trained model).

Network: the bundles' DenseNet121 costs about 9 ms (28-32 px) and 25 ms (64 px) per training image on one core
of this machine, 7x and 6x the small CNN: the grid (30 models, 3 seeds) would take about 8 CPU hours. So the
benchmark builds the same MONAI ``DenseNet121`` class through the bundles' factory with fewer, narrower layers
(``get_network("densenet121", init_features=32, growth_rate=16, block_config=(4, 8, 8))``: 3 dense blocks, 20
dense layers, 0.36 M parameters; three blocks so that 28 px images fit without resizing). Both placements exist
in it as in DenseNet121 (20 dropout layers against 58), so the placement comparison keeps its structure; the
absolute scores are those of a small network trained from scratch for a few epochs. Optimiser: Adam 1e-3, weight
decay 1e-4, batch 64, ``--epochs-derma`` / ``--epochs-knee`` epochs, one torch thread per run.

``--stage cost`` measures the MC-dropout cost of each placement side by side in one process: the time of 50
passes (``MCDropoutInferer(50, mc_batch_size=10)``, prefix reuse on, as the bundles) over the time of one
deterministic pass, for the reduced DenseNet at 28 and 64 px and for the bundles' DenseNet121 at 64 px
(batch 32, medians over repetitions in shuffled order after one warm-up).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_calibration.py --jobs 2                 # stage 1: the grid (about 60 min)
    .venv/bin/python benchmarks/bench_calibration.py --stage cost             # MC cost of the placements
    .venv/bin/python benchmarks/bench_calibration.py --quick --cache /tmp/bc_quick   # smoke run (1 epoch, few items)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch

from monai_imbalance.data import RepeatEvaluationDataset, class_counts, load_datalists
from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.losses import get_loss
from monai_imbalance.metrics import f1_score
from monai_imbalance.networks import add_dropout, get_network
from monai_imbalance.transforms import BatchRandAugment, LoadImageOrArrayd

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MONAI_IMBALANCE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CACHE = Path("/tmp/bench_calibration")

#: the reduced DenseNet121 (same class and factory as the bundles, fewer and narrower layers)
DENSENET_KWARGS: dict[str, Any] = {"init_features": 32, "growth_rate": 16, "block_config": (4, 8, 8)}
DROPOUT = 0.1
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MC_BATCH_SIZE = 10  # the bundles' mc_batch_size
EVAL_BATCH = 256

LOSSES = {"dermamnist": ("ce", "focal", "lmf_official"), "knee": ("ce", "focal")}
LOSS_KWARGS = {("knee", "focal"): {"gamma": 2.0, "alpha": 0.25}}  # the knee bundle's focal_gamma / focal_alpha
PLACEMENTS = ("all", "head")
KNEE_SIMULATION = {"num_repeats": 2, "strength": 1.0, "seed": 0}  # the knee bundle's repeat_simulation


@dataclass(frozen=True)
class Job:
    dataset: str  # dermamnist | knee
    loss: str
    placement: str  # all | head
    seed: int
    epochs: int
    mc_samples: int
    knee_test_every: int
    max_items: int | None
    cache: str

    @property
    def key(self) -> str:
        return f"{self.dataset}_{self.loss}_{self.placement}_s{self.seed}"

    @property
    def path(self) -> Path:
        return Path(self.cache) / f"{self.key}.npz"


# ---------------------------------------------------------------------------------------------- data
def _stack(items: list[dict[str, Any]], transform: monai.transforms.Compose) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([torch.as_tensor(transform(dict(item))["image"]).float() for item in items])
    labels = torch.tensor([int(item["label"]) for item in items], dtype=torch.long)
    return images.as_subclass(torch.Tensor), labels


def _subset(items: list[dict[str, Any]], max_items: int | None) -> list[dict[str, Any]]:
    return items if max_items is None else items[:: max(1, len(items) // max_items)][:max_items]


@lru_cache(maxsize=2)
def load_data(dataset: str, knee_test_every: int, max_items: int | None) -> dict[str, Any]:
    """Pre-processed tensors of every split (as the bundles pre-process them) and, for the knee set, the repeats."""
    if dataset == "dermamnist":
        datalists = load_datalists("medmnist", DATA / "medmnist", flag="dermamnist", download=False, warn=False)
        # the skin bundle's medmnist pre-processing: load, scale 0-255 to [0, 1] (28 px: no resize)
        transform = monai.transforms.Compose(
            [
                LoadImageOrArrayd(keys="image"),
                monai.transforms.ScaleIntensityRanged(
                    keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True
                ),
            ]
        )
    else:
        datalists = load_datalists("medmnist", DATA / "knee_kl" / "knee_kl_64_trainval.npz", seed=0, warn=False)
        # the knee bundle's pre-processing: load (1 channel), min-max per image, resize to 64 (a no-op here)
        transform = monai.transforms.Compose(
            [
                LoadImageOrArrayd(keys="image", channels=1),
                monai.transforms.ScaleIntensityd(keys="image", minv=0.0, maxv=1.0),
                monai.transforms.Resized(keys="image", spatial_size=(64, 64), mode="area"),
            ]
        )
    out: dict[str, Any] = {"class_names": list(datalists.class_names)}
    for split in ("train", "val", "test"):
        items = _subset(list(datalists[split]), max_items)
        if dataset == "knee" and split == "test":
            items = items[::knee_test_every]
            out["test_patient_ids"] = np.array([str(i["patient_id"]) for i in items])
            out["test_sides"] = np.array([str(i.get("side", "")) for i in items])
            repeats = RepeatEvaluationDataset(
                items, transform=transform, repeats="simulate", unit_keys=["side"], simulation=KNEE_SIMULATION
            )
            rep = [repeats[i] for i in range(len(repeats))]
            out["repeat_images"] = torch.stack([torch.as_tensor(r["image"]).float() for r in rep]).as_subclass(
                torch.Tensor
            )
            out["repeat_labels"] = np.array([int(r["label"]) for r in rep])
            out["repeat_patient_ids"] = np.array([str(r["patient_id"]) for r in rep])
            out["repeat_units"] = np.array([str(r[repeats.unit_key]) for r in rep])
            out["repeat_info"] = repeats.info
        out[split] = _stack(items, transform)
    return out


# ---------------------------------------------------------------------------------------------- model
def build_network(placement: str, in_channels: int, num_classes: int) -> torch.nn.Module:
    """The reduced DenseNet121 through the bundles' factory, dropout 0.1 after every dense layer or before the head."""
    if placement == "all":
        return get_network(
            "densenet121", in_channels=in_channels, out_channels=num_classes, dropout_prob=DROPOUT, **DENSENET_KWARGS
        )
    net = get_network(
        "densenet121", in_channels=in_channels, out_channels=num_classes, dropout_prob=None, **DENSENET_KWARGS
    )
    return add_dropout(net, DROPOUT, before="class_layers.out")


@torch.no_grad()
def logits_of(network: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    network.eval()
    return torch.cat([network(x) for x in images.split(EVAL_BATCH)])


@torch.no_grad()
def mc_logits_of(network: torch.nn.Module, images: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """``(S, N, C)`` raw logits of ``S`` MC-dropout passes (MCDropoutInferer, prefix reuse, as the bundles)."""
    inferer = MCDropoutInferer(samples, activation=None, mc_batch_size=MC_BATCH_SIZE, seed=seed, keep_samples=True)
    out = []
    for x in images.split(EVAL_BATCH):
        out.append(inferer.predict(x, network)["samples"])
    return torch.cat(out, dim=1)


def train_one(job: Job) -> dict[str, Any]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data(job.dataset, job.knee_test_every, job.max_items)
    load_s = time.perf_counter() - start
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
    num_classes = len(data["class_names"])
    counts = class_counts(train_y, num_classes)
    loss_fn = get_loss(job.loss, class_counts=counts, **LOSS_KWARGS.get((job.dataset, job.loss), {}))
    torch.manual_seed(job.seed)
    network = build_network(job.placement, train_x.shape[1], num_classes)
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    augment = (
        BatchRandAugment(flip_axes=[1], affine_prob=0.5, rotate_range=0.17, scale_range=0.1, seed=job.seed)
        if job.dataset == "knee"
        else None
    )
    shuffle = torch.Generator().manual_seed(job.seed)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    train_start = time.perf_counter()
    for epoch in range(1, job.epochs + 1):
        network.train()
        for index in torch.randperm(len(train_y), generator=shuffle).split(BATCH_SIZE):
            if len(index) < 2:
                continue
            x = train_x[index]
            if augment is not None:
                x, _ = augment(x)
            loss = loss_fn(network(x), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        pred = logits_of(network, val_x).argmax(1)
        if job.dataset == "knee":
            score = float((pred == val_y).float().mean())  # the repeatability bundle's key metric
        else:
            score = float(f1_score(torch.nn.functional.one_hot(pred, num_classes).float(), val_y, average="macro"))
        history.append(round(score, 4))
        if score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(network.state_dict())
    train_s = time.perf_counter() - train_start
    network.load_state_dict(best_state)

    arrays: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    splits = {"val": (val_x, val_y), "test": (test_x, test_y)}
    if job.dataset == "knee":
        splits["repeat"] = (data["repeat_images"], torch.as_tensor(data["repeat_labels"]))
    for split, (x, y) in splits.items():
        t0 = time.perf_counter()
        arrays[f"{split}_logits"] = logits_of(network, x).numpy()
        t1 = time.perf_counter()
        arrays[f"{split}_mc_logits"] = mc_logits_of(network, x, job.mc_samples, job.seed).numpy()
        t2 = time.perf_counter()
        arrays[f"{split}_labels"] = y.numpy()
        timing[f"{split}_deterministic_s"] = t1 - t0
        timing[f"{split}_mc_s"] = t2 - t1
    if job.dataset == "knee":
        for key in ("test_patient_ids", "test_sides", "repeat_patient_ids", "repeat_units"):
            arrays[key] = data[key]
    meta = {
        "job": asdict(job),
        "class_names": data["class_names"],
        "class_counts": [int(c) for c in counts],
        "best_epoch": best_epoch,
        "val_history": history,
        "load_s": load_s,
        "train_s": train_s,
        "timing": timing,
        "network": {
            "name": "densenet121",
            **{k: list(v) if isinstance(v, tuple) else v for k, v in DENSENET_KWARGS.items()},
        },
        "dropout": DROPOUT,
        "repeat_info": data.get("repeat_info"),
        "torch": torch.__version__,
        "monai": monai.__version__,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    Path(job.cache).mkdir(parents=True, exist_ok=True)
    tmp = job.path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(job.path)
    return {"key": job.key, "best_epoch": best_epoch, "history": history, "train_s": train_s, **timing}


# ---------------------------------------------------------------------------------------------- cost
def _timed(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def cost(args: argparse.Namespace) -> None:
    """50 MC passes over one deterministic pass, per placement, side by side (medians over shuffled repetitions)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = [
        ("reduced DenseNet, 28 px RGB", 3, 28, DENSENET_KWARGS),
        ("reduced DenseNet, 64 px grey", 1, 64, DENSENET_KWARGS),
        ("DenseNet121 (the bundles'), 64 px grey", 1, 64, {}),
    ]
    print(
        f"monai {monai.__version__}, torch {torch.__version__}, {platform.machine()}, {args.threads} thread(s), "
        f"batch {args.cost_batch}, 50 passes, mc_batch_size {MC_BATCH_SIZE}, prefix reuse on, "
        f"{args.cost_reps} repetitions after 1 warm-up"
    )
    print()
    print(
        "| network | placement | dropout layers | deterministic pass (s) | 50 MC passes / one pass, median (min-max) |"
    )
    print("|---|---|---:|---:|---|")
    for name, channels, size, kwargs in cases:
        x = torch.rand(args.cost_batch, channels, size, size)
        for placement in PLACEMENTS:
            if placement == "all":
                net = get_network("densenet121", in_channels=channels, out_channels=5, dropout_prob=DROPOUT, **kwargs)
            else:
                net = add_dropout(
                    get_network("densenet121", in_channels=channels, out_channels=5, dropout_prob=None, **kwargs),
                    DROPOUT,
                    before="class_layers.out",
                )
            net.eval()
            n_dropout = sum(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in net.modules())
            inferer = MCDropoutInferer(50, mc_batch_size=MC_BATCH_SIZE, seed=0)
            ratios, bases = [], []
            for rep in range(args.cost_reps + 1):
                order = ["base", "mc"]
                random.Random(rep).shuffle(order)
                measured = {}
                for variant in order:
                    if variant == "base":
                        measured[variant] = statistics.median(_timed(lambda n=net, x=x: n(x)) for _ in range(3))
                    else:
                        measured[variant] = _timed(lambda i=inferer, n=net, x=x: i(x, n))
                if rep:
                    ratios.append(measured["mc"] / measured["base"])
                    bases.append(measured["base"])
            print(
                f"| {name} | {placement} | {n_dropout} | {statistics.median(bases):.3f} | "
                f"{statistics.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}) |",
                flush=True,
            )


# ---------------------------------------------------------------------------------------------- main
def jobs_of(args: argparse.Namespace) -> list[Job]:
    jobs = []
    for seed in args.seeds:  # seed-major: an interrupted run still has complete seeds
        for dataset in args.datasets:
            for loss in LOSSES[dataset]:
                for placement in args.placements:
                    jobs.append(
                        Job(
                            dataset=dataset,
                            loss=loss,
                            placement=placement,
                            seed=seed,
                            epochs=args.epochs_derma if dataset == "dermamnist" else args.epochs_knee,
                            mc_samples=args.mc_samples,
                            knee_test_every=args.knee_test_every,
                            max_items=args.max_items,
                            cache=str(args.cache),
                        )
                    )
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("train", "cost"), default="train")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=tuple(LOSSES), default=list(LOSSES))
    parser.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=list(PLACEMENTS))
    parser.add_argument("--epochs-derma", type=int, default=6)
    parser.add_argument("--epochs-knee", type=int, default=4)
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--knee-test-every", type=int, default=2, help="every k-th test knee (the split is by grade)")
    parser.add_argument("--max-items", type=int, default=None, help="at most this many items per split (smoke runs)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of --stage cost")
    parser.add_argument("--cost-batch", type=int, default=32)
    parser.add_argument("--cost-reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 300 items per split, 5 MC passes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs_derma, args.epochs_knee, args.mc_samples, args.max_items = [0], 1, 1, 5, 300
    print(f"command: {' '.join([sys.executable.split('/')[-1], *sys.argv])}", flush=True)
    print(f"start {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs", flush=True)
    if args.stage == "cost":
        cost(args)
        return
    todo = [job for job in jobs_of(args) if not job.path.exists()]
    print(f"{len(todo)} model(s) to train, cache {args.cache}", flush=True)
    start = time.perf_counter()
    if args.jobs <= 1:
        for job in todo:
            print(json.dumps(train_one(job)), flush=True)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(train_one, job) for job in todo]
            for future in as_completed(futures):
                print(json.dumps(future.result()), flush=True)
    print(f"done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
