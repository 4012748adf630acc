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
- Knee KL grades 0-4, grey, resized from the file's 64 px to ``--knee-size`` 32 px (``knee_kl_64_trainval.npz``;
  the test split carved out of the training split by
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
of this machine, 7x and 6x the small CNN: the grid (30 models, 3 seeds) would take over 3 CPU hours on an idle
core, far more than a session on the shared 2-core machine (load 9-14) has. So the
benchmark builds the same MONAI ``DenseNet121`` class through the bundles' factory with fewer, narrower layers
(``get_network("densenet121", init_features=32, growth_rate=16, block_config=(4, 8, 8))``: 3 dense blocks, 20
dense layers, 0.36 M parameters; three blocks so that 28 px images fit without resizing). Both placements exist
in it as in DenseNet121 (20 dropout layers against 58), so the placement comparison keeps its structure; the
absolute scores are those of a small network trained from scratch for a few epochs. Optimiser: Adam 1e-3, weight
decay 1e-4, one torch thread per run; DermaMNIST batch 64, ``--epochs-derma`` 4; knee batch ``--knee-batch`` 32,
``--epochs-knee`` 4, at 32 px: at 64 px on a quarter of the images for 3 epochs (68 steps, what the budget allowed)
every model predicted grade 0 for 97-100% of the test knees (accuracy 0.40 = the majority share), useless for
calibration and repeatability; 32 px costs a quarter per image and allows 722 steps on all 5778 images.

``--stage cost`` measures the MC-dropout cost of each placement side by side in one process: the time of 50
passes (``MCDropoutInferer(50, mc_batch_size=10)``, prefix reuse on, as the bundles) over the time of one
deterministic pass, for the reduced DenseNet at 28 and 64 px and for the bundles' DenseNet121 at 64 px
(batch 32, medians over repetitions in shuffled order after one warm-up).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_calibration.py --jobs 2                 # stage 1: the grid (~25 CPU-min)
    .venv/bin/python benchmarks/bench_calibration.py --stage cost             # MC cost of the placements
    .venv/bin/python benchmarks/bench_calibration.py --stage analyse --output /tmp/calibration.md   # stage 2
    .venv/bin/python benchmarks/bench_calibration.py --quick --cache /tmp/bc_quick   # smoke run (1 epoch, few items)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import json
import os
import platform
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
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
    knee_train_every: int
    knee_size: int
    batch_size: int
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


@functools.lru_cache(maxsize=2)
def load_data(
    dataset: str, knee_test_every: int, knee_train_every: int, knee_size: int, max_items: int | None
) -> dict[str, Any]:
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
                monai.transforms.Resized(keys="image", spatial_size=(knee_size, knee_size), mode="area"),
            ]
        )
    out: dict[str, Any] = {"class_names": list(datalists.class_names)}
    for split in ("train", "val", "test"):
        items = _subset(list(datalists[split]), max_items)
        if dataset == "knee" and split == "train":
            items = items[::knee_train_every]
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
    data = load_data(job.dataset, job.knee_test_every, job.knee_train_every, job.knee_size, job.max_items)
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
        for index in torch.randperm(len(train_y), generator=shuffle).split(job.batch_size):
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


# ---------------------------------------------------------------------------------------------- stage 2: analysis
# Independent numpy references of the metrics (float64). They give the bootstrap replicates (fast, one index
# array per replicate) and, where the package's metrics exist (monai_imbalance.metrics.calibration / selective),
# they are checked against them on every point estimate (the largest difference is printed).
NUM_BINS = 15  # equal-width bins (Guo et al. 2017), the package's DEFAULT_CALIBRATION_BINS
RATE = 0.2  # referral rate of the tables


def np_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def _bin_ece(score: np.ndarray, hit: np.ndarray) -> float:
    """sum_m |B_m|/N |mean(hit) - mean(score)| over equal-width bins (k/M, (k+1)/M], 0 in the first."""
    b = np.clip(np.ceil(score * NUM_BINS).astype(np.int64) - 1, 0, NUM_BINS - 1)
    s = np.bincount(b, weights=score, minlength=NUM_BINS)
    h = np.bincount(b, weights=hit.astype(np.float64), minlength=NUM_BINS)
    return float(np.abs(h - s).sum() / len(score))


def np_ece(p: np.ndarray, y: np.ndarray) -> float:
    return _bin_ece(p.max(1), p.argmax(1) == y)


def np_classwise_ece(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([_bin_ece(p[:, c], y == c) for c in range(p.shape[1])]))


def np_nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())


def np_aurc(u: np.ndarray, err: np.ndarray) -> float:
    """(1/N) sum_k risk(k), cases by increasing u, the risk of a run of ties averaged over its orders."""
    order = np.argsort(u, kind="stable")
    us, es = u[order], err[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])
    sizes = np.diff(np.r_[starts, len(us)])
    run_loss = np.add.reduceat(es, starts)
    before = np.cumsum(run_loss) - run_loss
    run = np.repeat(np.arange(len(starts)), sizes)
    k = np.arange(1, len(us) + 1, dtype=np.float64)
    j = k - starts[run]
    return float(((before[run] + j * run_loss[run] / sizes[run]) / k).mean())


def np_macro_f1(pred: np.ndarray, y: np.ndarray, c: int) -> float:
    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    den = support + predicted
    return float((2 * tp[den > 0] / den[den > 0]).mean())


def np_threshold(u: np.ndarray, rate: float) -> float:
    """The largest kept score when floor(rate N + 1/2) cases are referred (referral_threshold's rule)."""
    keep = max(1, len(u) - int(np.floor(rate * len(u) + 0.5)))
    return float(np.sort(u)[keep - 1])


def np_referral_f1(p: np.ndarray, y: np.ndarray, u: np.ndarray, rate: float, threshold: float | None = None) -> float:
    t = np_threshold(u, rate) if threshold is None else threshold
    kept = u <= t
    return np_macro_f1(p.argmax(1)[kept], y[kept], p.shape[1])


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """One temperature T > 0 minimising the validation NLL of softmax(z / T) (for ``(S, N, C)`` MC logits: of the
    mean over the passes of softmax(z_s / T)); golden-section search on log T in [log 0.01, log 100]."""

    def nll(log_t: float) -> float:
        p = np_softmax(logits / np.exp(log_t))
        return np_nll(p.mean(0) if p.ndim == 3 else p, y)

    lo, hi = np.log(0.01), np.log(100.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def _package_metrics() -> dict[str, Any] | None:
    """The package's calibration / selective metrics where this tree has them (branch ``uncertainty``)."""
    try:
        from monai_imbalance.metrics.calibration import classwise_calibration_error, expected_calibration_error
        from monai_imbalance.metrics.selective import aurc, referral_table
    except ImportError:
        return None
    return {
        "ece": lambda p, y: expected_calibration_error(p, y, num_bins=NUM_BINS),
        "classwise_ece": lambda p, y: classwise_calibration_error(p, y, num_bins=NUM_BINS),
        "aurc": lambda u, err: aurc(u, err),
        "referral_f1": lambda p, y, u: referral_table(p, y, u, rates=[RATE])[f"{RATE:g}"]["f1_macro"],
    }


@dataclass
class Variant:
    """Test-split probabilities and uncertainty scores of one model in one form (deterministic / MC, raw / scaled)."""

    probs: np.ndarray  # (N, C)
    scores: dict[str, np.ndarray]  # name -> (N,) uncertainty, larger: less sure
    temperature: float
    val_probs: np.ndarray
    val_scores: dict[str, np.ndarray]


def _variant(val: np.ndarray, test: np.ndarray, temperature: float) -> Variant:
    """val / test logits ``(N, C)`` (deterministic) or ``(S, N, C)`` (MC passes), scaled by ``temperature``."""

    def form(z: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        p = np_softmax(z.astype(np.float64) / temperature)
        if p.ndim == 2:
            return p, {"maxprob": 1 - p.max(1), "entropy": np_entropy(p)}
        mean = p.mean(0)
        h = np_entropy(mean)
        return mean, {"maxprob": 1 - mean.max(1), "entropy": h, "mi": np.maximum(h - np_entropy(p).mean(0), 0)}

    vp, vs = form(val)
    tp, ts = form(test)
    return Variant(tp, ts, temperature, vp, vs)


def package_temperature(logits: np.ndarray, y: np.ndarray) -> float | None:
    """The package's ``fit_temperature`` (what the bundles' ``--calibrate temperature`` fits), if this tree has it."""
    try:
        from monai_imbalance.transforms import fit_temperature as fit
    except ImportError:
        return None
    return fit(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(y))


#: largest |package T - benchmark T| seen (None: the package has no fit_temperature)
TEMPERATURE_CHECK: dict[str, float | None] = {"max_abs_difference": None}


def model_variants(d: Any) -> dict[str, Variant]:
    """The four forms of a model; temperature as the bundles fit it (validation NLL of the deterministic logits,
    the same T on every MC pass), plus ``mc_tsmc``: T fitted on the NLL of the mean of the validation MC passes."""
    yv = d["val_labels"].astype(np.int64)
    own = fit_temperature(d["val_logits"].astype(np.float64), yv)
    t_det = package_temperature(d["val_logits"].astype(np.float64), yv)
    if t_det is None:
        t_det = own
    else:
        worst = TEMPERATURE_CHECK["max_abs_difference"] or 0.0
        TEMPERATURE_CHECK["max_abs_difference"] = max(worst, abs(t_det - own) / t_det)
    t_mc = fit_temperature(d["val_mc_logits"].astype(np.float64), yv)
    return {
        "det": _variant(d["val_logits"], d["test_logits"], 1.0),
        "det_ts": _variant(d["val_logits"], d["test_logits"], t_det),
        "mc": _variant(d["val_mc_logits"], d["test_mc_logits"], 1.0),
        "mc_ts": _variant(d["val_mc_logits"], d["test_mc_logits"], t_det),
        "mc_tsmc": _variant(d["val_mc_logits"], d["test_mc_logits"], t_mc),
    }


#: (variant, uncertainty score) pairs whose selective metrics the tables show
SELECTIVE = (("det", "maxprob"), ("det", "entropy"), ("mc", "maxprob"), ("mc", "entropy"), ("mc", "mi"))


def metrics_of(
    variants: dict[str, Variant], y: np.ndarray, idx: np.ndarray | None = None, *, replicate: bool = False
) -> dict[str, float]:
    """Every scalar of a model on the test cases ``idx`` (None: all), numpy references; ``replicate``: only what
    the tables of paired differences read (a bootstrap replicate)."""
    sel = slice(None) if idx is None else idx
    out: dict[str, float] = {}
    ys = y[sel]
    for name, v in variants.items():
        if replicate and name not in ("det", "det_ts", "mc"):
            continue
        p = v.probs[sel]
        out[f"{name}/ece"] = np_ece(p, ys)
        out[f"{name}/classwise_ece"] = np_classwise_ece(p, ys)
        if not replicate:
            out[f"{name}/nll"] = np_nll(p, ys)
    p = variants["det"].probs[sel]
    out["accuracy"] = float((p.argmax(1) == ys).mean())
    out["macro_f1"] = np_macro_f1(p.argmax(1), ys, p.shape[1])
    for name, score in SELECTIVE:
        v = variants[name]
        p, u = v.probs[sel], v.scores[score][sel]
        out[f"{name}/{score}/aurc"] = np_aurc(u, p.argmax(1) != ys)
        if replicate and score == "entropy":
            continue
        out[f"{name}/{score}/f1_at_20"] = np_referral_f1(p, ys, u, RATE)
        if not replicate:  # the threshold fitted on validation (20% of its cases referred), applied unchanged
            t = np_threshold(v.val_scores[score], RATE)
            out[f"{name}/{score}/f1_at_20_val"] = np_referral_f1(p, ys, u, RATE, threshold=t)
            out[f"{name}/{score}/referred_val"] = float((u > t).mean())
    return out


def check_against_package(variants: dict[str, Variant], y: np.ndarray, point: dict[str, float]) -> float | None:
    """Largest |package - numpy| over the point estimates the package can compute; None without the package."""
    pkg = _package_metrics()
    if pkg is None:
        return None
    worst = 0.0
    for name, v in variants.items():
        p = torch.as_tensor(v.probs)
        worst = max(worst, abs(pkg["ece"](p, torch.as_tensor(y)) - point[f"{name}/ece"]))
        worst = max(worst, abs(pkg["classwise_ece"](p, torch.as_tensor(y)) - point[f"{name}/classwise_ece"]))
    for name, score in SELECTIVE:
        v = variants[name]
        u, err = torch.as_tensor(v.scores[score]), torch.as_tensor((v.probs.argmax(1) != y).astype(np.float64))
        worst = max(worst, abs(pkg["aurc"](u, err) - point[f"{name}/{score}/aurc"]))
        worst = max(
            worst,
            abs(
                pkg["referral_f1"](torch.as_tensor(v.probs), torch.as_tensor(y), u) - point[f"{name}/{score}/f1_at_20"]
            ),
        )
    return worst


def bootstrap_indices(d: Any, dataset: str, n_boot: int) -> list[np.ndarray]:
    """Test-case indices of every replicate: images (DermaMNIST) or patients with all their knees (knee)."""
    rng = np.random.default_rng(0)
    n = len(d["test_labels"])
    if dataset != "knee":
        return [rng.integers(0, n, n) for _ in range(n_boot)]
    pids = d["test_patient_ids"]
    groups = [np.flatnonzero(pids == p) for p in np.unique(pids)]
    return [np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))]) for _ in range(n_boot)]


LOSS_LABELS = {"ce": "CE", "focal": "focal", "lmf_official": "LMF (official)"}
PLACEMENT_LABELS = {"all": "after every dense layer", "head": "head only"}
DATASET_LABELS = {"dermamnist": "DermaMNIST 28 px", "knee": "knee KL 32 px"}
FORMS = {"det": "deterministic", "det_ts": "deterministic, temperature", "mc": "MC", "mc_ts": "MC, temperature"}
#: forms of the repeatability table (mc_tsmc: see model_variants)


@dataclass
class Model:
    dataset: str
    loss: str
    placement: str
    seed: int
    meta: dict[str, Any]
    arrays: Any
    variants: dict[str, Variant]
    point: dict[str, float]
    boot: dict[str, np.ndarray]  # metric -> (B,) replicates


def _mean_sd(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _col(models: list[Model], key: str, digits: int = 3) -> str:
    return _mean_sd([m.point[key] for m in models], digits)


def _diff_cell(a: list[Model], b: list[Model], metric: str, metric_b: str | None = None) -> str:
    """mean over seeds of a - b, [2.5, 97.5] percentiles of its bootstrap replicates, seeds with a < b."""
    metric_b = metric_b or metric
    diffs = [x.point[metric] - y.point[metric_b] for x, y in zip(a, b, strict=True)]
    boot = np.mean([x.boot[metric] - y.boot[metric_b] for x, y in zip(a, b, strict=True)], axis=0)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    star = "**" if lo > 0 or hi < 0 else ""
    return f"{star}{np.mean(diffs):+.3f}{star} [{lo:+.3f}, {hi:+.3f}] ({sum(d < 0 for d in diffs)}/{len(diffs)})"


def _seed_t_interval(a: list[Model], b: list[Model], metric: str, metric_b: str | None = None) -> str:
    from scipy import stats

    diffs = np.array([x.point[metric] - y.point[metric_b or metric] for x, y in zip(a, b, strict=True)])
    if len(diffs) < 2:
        return "-"
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return f"[{diffs.mean() - half:+.3f}, {diffs.mean() + half:+.3f}]"


def load_models(cache: Path, n_boot: int) -> tuple[dict[tuple[str, str, str], list[Model]], dict[str, Any]]:
    """Every complete seed of the cache: {(dataset, loss, placement): [Model per seed]} and a check summary."""
    found: dict[tuple[str, str, str, int], Path] = {}
    for path in sorted(cache.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        job = json.loads(str(np.load(path)["meta"]))["job"]
        found[(job["dataset"], job["loss"], job["placement"], job["seed"])] = path
    models: dict[tuple[str, str, str], list[Model]] = {}
    check: dict[str, Any] = {"package_metrics": _package_metrics() is not None, "max_abs_difference": 0.0}
    for dataset in LOSSES:
        cells = [(loss, placement) for loss in LOSSES[dataset] for placement in PLACEMENTS]
        seeds = sorted({k[3] for k in found if k[0] == dataset})
        seeds = [s for s in seeds if all((dataset, lo, pl, s) in found for lo, pl in cells)]
        if not seeds:
            continue
        indices = None
        for loss, placement in cells:
            for seed in seeds:
                d = np.load(found[(dataset, loss, placement, seed)])
                if indices is None:
                    indices = bootstrap_indices(d, dataset, n_boot)
                y = d["test_labels"].astype(np.int64)
                variants = model_variants(d)
                point = metrics_of(variants, y)
                worst = check_against_package(variants, y, point)
                if worst is not None:
                    check["max_abs_difference"] = max(check["max_abs_difference"], worst)
                reps = [metrics_of(variants, y, idx, replicate=True) for idx in indices]
                boot = {k: np.array([r[k] for r in reps]) for k in reps[0]}
                meta = json.loads(str(d["meta"]))
                models.setdefault((dataset, loss, placement), []).append(
                    Model(dataset, loss, placement, seed, meta, d, variants, point, boot)
                )
    return models, check


def calibration_tables(models: dict[tuple[str, str, str], list[Model]]) -> str:
    lines = []
    for dataset in LOSSES:
        rows = [(k, v) for k, v in models.items() if k[0] == dataset]
        if not rows:
            continue
        seeds = [m.seed for m in rows[0][1]]
        lines += [
            f"#### {DATASET_LABELS[dataset]}: calibration (test split, mean ± SD over seeds {seeds})",
            "",
            "| dropout | loss | accuracy | macro-F1 | ECE | ECE, temperature (T) | class-wise ECE | class-wise ECE, "
            "temperature | ECE, MC | ECE, MC + temperature | ECE, MC + T fitted on MC (T) | class-wise ECE, MC | "
            "class-wise ECE, MC + temperature | best epoch per seed |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for (_, loss, placement), ms in rows:
            col = functools.partial(_col, ms)
            t_det = statistics.mean(m.variants["det_ts"].temperature for m in ms)
            t_mc = statistics.mean(m.variants["mc_tsmc"].temperature for m in ms)
            lines.append(
                f"| {PLACEMENT_LABELS[placement]} | {LOSS_LABELS[loss]} | {col('accuracy')} | {col('macro_f1')} | "
                f"{col('det/ece')} | {col('det_ts/ece')} ({t_det:.2f}) | {col('det/classwise_ece')} | "
                f"{col('det_ts/classwise_ece')} | {col('mc/ece')} | {col('mc_ts/ece')} | "
                f"{col('mc_tsmc/ece')} ({t_mc:.2f}) | "
                f"{col('mc/classwise_ece')} | {col('mc_ts/classwise_ece')} | "
                f"{', '.join(str(m.meta['best_epoch']) for m in ms)} |"
            )
        lines += [
            "",
            f"#### {DATASET_LABELS[dataset]}: referral (test split, mean ± SD over seeds; uncertainty of the "
            "uncalibrated probabilities)",
            "",
            "| dropout | loss | AURC 1 - max p | AURC entropy | AURC MC 1 - max p | AURC MC entropy | AURC MC mutual "
            "information | macro-F1, no referral | macro-F1 at 20% referral: 1 - max p | MC 1 - max p | MC mutual "
            "information | 1 - max p, threshold fitted on validation (test share referred) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for (_, loss, placement), ms in rows:
            col = functools.partial(_col, ms)
            lines.append(
                f"| {PLACEMENT_LABELS[placement]} | {LOSS_LABELS[loss]} | {col('det/maxprob/aurc')} | "
                f"{col('det/entropy/aurc')} | {col('mc/maxprob/aurc')} | {col('mc/entropy/aurc')} | "
                f"{col('mc/mi/aurc')} | {col('macro_f1')} | {col('det/maxprob/f1_at_20')} | "
                f"{col('mc/maxprob/f1_at_20')} | {col('mc/mi/f1_at_20')} | {col('det/maxprob/f1_at_20_val')} "
                f"({col('det/maxprob/referred_val', 2)}) |"
            )
        lines.append("")
    return "\n".join(lines)


def difference_tables(models: dict[tuple[str, str, str], list[Model]]) -> str:
    lines = [
        "Cells: mean over seeds of the paired difference a - b, [95% bootstrap CI], (seeds with a < b). The CI "
        "resamples the test images (knee: the test patients, both knees together) with the same draws for every "
        "model and seed and averages the difference over the seeds: it holds the trained models fixed (test-set "
        "noise only); the seed-to-seed spread is in the SDs above and the seed count. **Bold**: the CI excludes 0.",
        "",
    ]
    # 1. losses
    metrics = [
        ("ECE", "det/ece"),
        ("ECE, temperature", "det_ts/ece"),
        ("class-wise ECE", "det/classwise_ece"),
        ("class-wise ECE, temperature", "det_ts/classwise_ece"),
        ("AURC 1 - max p", "det/maxprob/aurc"),
        ("macro-F1 at 20% referral (1 - max p)", "det/maxprob/f1_at_20"),
    ]
    lines += [
        "#### Loss against cross-entropy (same seed: same initial weights and batch order)",
        "",
        "| data | dropout | a vs b | " + " | ".join(name for name, _ in metrics) + " |",
        "|---|---|---|" + "---|" * len(metrics),
    ]
    for dataset in LOSSES:
        for placement in PLACEMENTS:
            base = models.get((dataset, "ce", placement))
            for loss in LOSSES[dataset][1:]:
                other = models.get((dataset, loss, placement))
                if base and other:
                    cells = " | ".join(_diff_cell(other, base, key) for _, key in metrics)
                    lines.append(
                        f"| {DATASET_LABELS[dataset]} | {PLACEMENT_LABELS[placement]} | {LOSS_LABELS[loss]} vs CE | "
                        f"{cells} |"
                    )
    # 2. MC uncertainty against 1 - max probability (same model)
    lines += [
        "",
        "#### MC-dropout uncertainty against 1 - max probability of the deterministic pass (same models)",
        "",
        "| data | dropout | loss | AURC: MC mutual information - 1 - max p | AURC: MC entropy - 1 - max p | AURC: MC "
        "1 - max p - 1 - max p | macro-F1 at 20%: MC mutual information - 1 - max p | macro-F1 at 20%: MC 1 - max p "
        "- 1 - max p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, loss, placement), ms in models.items():
        lines.append(
            f"| {DATASET_LABELS[dataset]} | {PLACEMENT_LABELS[placement]} | {LOSS_LABELS[loss]} | "
            f"{_diff_cell(ms, ms, 'mc/mi/aurc', 'det/maxprob/aurc')} | "
            f"{_diff_cell(ms, ms, 'mc/entropy/aurc', 'det/maxprob/aurc')} | "
            f"{_diff_cell(ms, ms, 'mc/maxprob/aurc', 'det/maxprob/aurc')} | "
            f"{_diff_cell(ms, ms, 'mc/mi/f1_at_20', 'det/maxprob/f1_at_20')} | "
            f"{_diff_cell(ms, ms, 'mc/maxprob/f1_at_20', 'det/maxprob/f1_at_20')} |"
        )
    # 3. placement
    metrics = [
        ("accuracy", "accuracy"),
        ("macro-F1", "macro_f1"),
        ("ECE", "det/ece"),
        ("class-wise ECE", "det/classwise_ece"),
        ("ECE, MC", "mc/ece"),
        ("AURC 1 - max p", "det/maxprob/aurc"),
        ("AURC MC mutual information", "mc/mi/aurc"),
        ("macro-F1 at 20%, 1 - max p", "det/maxprob/f1_at_20"),
        ("macro-F1 at 20%, MC mutual information", "mc/mi/f1_at_20"),
    ]
    lines += [
        "",
        "#### Dropout head only against after every dense layer (same seed: same initial weights and batch order)",
        "",
        "| data | loss | " + " | ".join(name for name, _ in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for dataset in LOSSES:
        for loss in LOSSES[dataset]:
            head, full = models.get((dataset, loss, "head")), models.get((dataset, loss, "all"))
            if head and full:
                cells = " | ".join(_diff_cell(head, full, key) for _, key in metrics)
                lines.append(f"| {DATASET_LABELS[dataset]} | {LOSS_LABELS[loss]} | {cells} |")
    return "\n".join(lines) + "\n"


def _repeat_probs(m: Model, form: str) -> np.ndarray:
    t = m.variants[form].temperature
    z = m.arrays["repeat_mc_logits"] if form.startswith("mc") else m.arrays["repeat_logits"]
    p = np_softmax(z.astype(np.float64) / t)
    return p.mean(0) if p.ndim == 3 else p


def repeatability_tables(models: dict[tuple[str, str, str], list[Model]], n_boot: int) -> str:
    """Knee: LoA and disagreement of CE and focal, before and after temperature scaling, paired focal - CE tests."""
    from monai_imbalance.metrics import compare_repeatability, continuous_score, repeatability_report

    lines = [
        "| dropout | seed | form | T CE / focal | LoA CE | LoA focal | ΔLoA focal - CE [95% CI] | p | LoA / spread CE "
        "/ focal | disagreement CE / focal | accuracy CE / focal |",
        "|---|---:|---|---|---:|---:|---|---:|---|---|---|",
    ]
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for placement in PLACEMENTS:
        ce, focal = models.get(("knee", "ce", placement)), models.get(("knee", "focal", placement))
        if not ce or not focal:
            continue
        for a, b in zip(focal, ce, strict=True):
            reports = {}
            for form in FORMS:
                for name, m in (("focal", a), ("ce", b)):
                    p = _repeat_probs(m, form)
                    with np.errstate(all="ignore"):
                        reports[(name, form)] = repeatability_report(
                            continuous_score(p.astype(np.float32)),
                            m.arrays["repeat_patient_ids"],
                            num_classes=p.shape[1],
                            predictions=p.argmax(1),
                            n_boot=n_boot,
                            seed=0,
                            visit_ids=m.arrays["repeat_units"],
                        )
                    reports[(name, form, "acc")] = float((p.argmax(1) == m.arrays["repeat_labels"]).mean())
                comp = compare_repeatability(reports[("focal", form)], reports[("ce", form)], metric="loa", n_boot=2000)
                rf, rc = reports[("focal", form)], reports[("ce", form)]
                summary.setdefault((placement, form), []).append((comp["difference"], comp["ci"][1], comp["ci"][0]))
                lines.append(
                    f"| {PLACEMENT_LABELS[placement]} | {a.seed} | {FORMS[form]} | "
                    f"{b.variants[form].temperature:.2f} / {a.variants[form].temperature:.2f} | {rc['loa']:.3f} | "
                    f"{rf['loa']:.3f} | {comp['difference']:+.3f} [{comp['ci'][0]:+.3f}, {comp['ci'][1]:+.3f}] | "
                    f"{comp['p_value']:.3g} | {rc['loa_rel']:.3f} / {rf['loa_rel']:.3f} | "
                    f"{rc['disagreement_rate']:.3f} / {rf['disagreement_rate']:.3f} | "
                    f"{reports[('ce', form, 'acc')]:.3f} / {reports[('focal', form, 'acc')]:.3f} |"
                )
    lines += [
        "",
        "| dropout | form | mean ΔLoA focal - CE over seeds | seeds where focal is lower (significantly) | seeds where "
        "focal is significantly higher |",
        "|---|---|---:|---|---|",
    ]
    for (placement, form), rows in summary.items():
        lines.append(
            f"| {PLACEMENT_LABELS[placement]} | {FORMS[form]} | {statistics.mean(r[0] for r in rows):+.3f} | "
            f"{sum(r[0] < 0 for r in rows)}/{len(rows)} ({sum(r[1] < 0 for r in rows)}/{len(rows)}) | "
            f"{sum(r[2] > 0 for r in rows)}/{len(rows)} |"
        )
    return "\n".join(lines) + "\n"


def run_cost_table(models: dict[tuple[str, str, str], list[Model]]) -> str:
    """The evaluation times recorded by stage 1: MC passes over one deterministic pass, validation + test splits."""
    lines = [
        "| data | dropout | models | MC passes | MC time / deterministic time, median (min-max) | training s per model "
        "(median) |",
        "|---|---|---:|---:|---|---:|",
    ]
    for dataset in LOSSES:
        for placement in PLACEMENTS:
            ms = [m for (d, _, p), group in models.items() if d == dataset and p == placement for m in group]
            if not ms:
                continue
            ratios = []
            for m in ms:
                t = m.meta["timing"]
                ratios.append((t["val_mc_s"] + t["test_mc_s"]) / (t["val_deterministic_s"] + t["test_deterministic_s"]))
            lines.append(
                f"| {DATASET_LABELS[dataset]} | {PLACEMENT_LABELS[placement]} | {len(ms)} | "
                f"{ms[0].meta['job']['mc_samples']} | {statistics.median(ratios):.1f} ({min(ratios):.1f}-"
                f"{max(ratios):.1f}) | {statistics.median(m.meta['train_s'] for m in ms):.0f} |"
            )
    return "\n".join(lines) + "\n"


def analyse(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    models, check = load_models(args.cache, args.n_boot)
    if not models:
        raise SystemExit(f"no complete seed in {args.cache}: run stage 1 first")
    backend = (
        "the package's `monai_imbalance.metrics.calibration` / `selective` functions agree with the benchmark's "
        f"numpy references to {check['max_abs_difference']:.1e} on every point estimate (the bootstrap uses the "
        "numpy references)"
        if check["package_metrics"]
        else "**the package's calibration / selective metrics were not in this tree: every figure comes from the "
        "benchmark's own numpy implementation** (`np_ece`, `np_classwise_ece`, `np_aurc`, `np_referral_f1`)"
    )
    t_check = TEMPERATURE_CHECK["max_abs_difference"]
    temperature = (
        "one T per model, fitted on the validation logits by NLL with the package's "
        f"`monai_imbalance.transforms.fit_temperature` (what `--calibrate temperature` fits; the benchmark's own "
        f"golden-section fit agrees to a relative {t_check:.1e})"
        if t_check is not None
        else "one T per model fitted on the validation logits by NLL (**the benchmark's own golden-section fit**: "
        "the package has no fit_temperature in this tree)"
    )
    text = [
        f"Metrics: {backend}. ECE: {NUM_BINS} equal-width bins, top label; class-wise ECE: the same per class, "
        "unweighted mean over the classes; AURC: mean risk (error rate of the kept cases) over all coverages, ties "
        "averaged; referral at 20%: the 20% least certain test cases referred (exactly, by rank), macro-F1 of the "
        "rest; the last referral column fits the threshold on the validation split instead and applies it to the "
        f"test split. Temperature: {temperature}; 'MC + temperature' divides the logits of every pass by that T "
        "(as the bundles' MCDropoutInferer(temperature=T)); 'MC + T fitted on MC' fits T on the validation NLL of "
        "the mean of the passes' softmax instead (the benchmark's own fit). MC: the stored passes of "
        "MCDropoutInferer; mutual information = entropy of the mean - mean entropy of the passes. "
        f"{args.n_boot} bootstrap replicates.",
        "",
        calibration_tables(models),
        difference_tables(models),
    ]
    if any(k[0] == "knee" for k in models):
        text += [
            "#### Knee: does the repeatability difference survive temperature scaling? (simulated repeats)",
            "",
            repeatability_tables(models, args.n_boot),
        ]
    text += ["#### MC cost recorded in the grid run (wall clock, shared machine)", "", run_cost_table(models)]
    text.append(f"(analysis: {(time.perf_counter() - start) / 60:.1f} min)")
    out = "\n".join(text)
    print(out)
    if args.output:
        Path(args.output).write_text(out)


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
                            knee_train_every=args.knee_train_every,
                            knee_size=args.knee_size,
                            batch_size=BATCH_SIZE if dataset == "dermamnist" else args.knee_batch,
                            max_items=args.max_items,
                            cache=str(args.cache),
                        )
                    )
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("train", "cost", "analyse"), default="train")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=tuple(LOSSES), default=list(LOSSES))
    parser.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=list(PLACEMENTS))
    parser.add_argument("--epochs-derma", type=int, default=4)
    parser.add_argument("--epochs-knee", type=int, default=4)
    parser.add_argument("--mc-samples", type=int, default=16)
    parser.add_argument("--knee-test-every", type=int, default=4, help="every k-th test knee (the split is by grade)")
    parser.add_argument("--knee-train-every", type=int, default=1, help="every k-th training knee image")
    parser.add_argument("--max-items", type=int, default=None, help="at most this many items per split (smoke runs)")
    parser.add_argument("--knee-size", type=int, default=32, help="knee image side (the bundle's --image_size)")
    parser.add_argument("--knee-batch", type=int, default=32, help="knee batch size")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of --stage cost")
    parser.add_argument("--cost-batch", type=int, default=32)
    parser.add_argument("--cost-reps", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates of the analysis")
    parser.add_argument("--output", type=Path, default=None, help="write the analysis (markdown) here too")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 300 items per split, 5 MC passes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs_derma, args.epochs_knee, args.mc_samples, args.max_items = [0], 1, 1, 5, 300
    print(f"command: {' '.join([sys.executable.split('/')[-1], *sys.argv])}", flush=True)
    print(f"start {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs", flush=True)
    if args.stage == "cost":
        cost(args)
        return
    if args.stage == "analyse":
        analyse(args)
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
