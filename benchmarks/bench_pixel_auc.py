"""Pixel-level AUC over a DRIVE-sized test set: histogram accumulation vs keeping every pixel (scikit-learn, MONAI).

Data: ``--images`` synthetic probability maps of DRIVE's size (584 x 565 px, float32), one image per
iteration, vessel labels on about 12% of the pixels, an elliptic field of view, scores correlated with
the labels (AUC about 0.9). Every variant sees the same iterations and computes the AUC of the pixels
inside the field of view:

- ``PixelROCAUCMetric`` (this package): per iteration, adds the pixels to two 65536-bin histograms;
  ``aggregate()`` at the end. State kept between iterations: ``2 * 65536`` int64 counts.
- scikit-learn ``roc_auc_score`` (exact): keeps the masked scores and labels of every iteration,
  concatenates and ranks them at the end.
- MONAI ``ROCAUCMetric`` (exact; ranks in a Python loop): keeps every masked pixel, ``aggregate()`` at
  the end; run on the first ``--monai-images`` images only (it is slow), and its time ratio is taken
  against this package's time on the same images.

Method: ``--reps`` repetitions after one warm-up, variants in shuffled order within a repetition; the
table gives median times and the median per-repetition ratio to the histogram metric. The retained
state is computed from the buffers (bytes held between iterations at the end of the run).

Run::

    .venv/bin/python benchmarks/bench_pixel_auc.py          # --images 20 --monai-images 2 --reps 5 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import monai
import numpy as np
import torch
from monai.metrics import ROCAUCMetric
from sklearn.metrics import roc_auc_score

from monai_imbalance.metrics import PixelROCAUCMetric, pixel_score_histograms, roc_auc_from_histograms

HEIGHT, WIDTH = 584, 565


def make_images(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, HEIGHT), torch.linspace(-1, 1, WIDTH), indexing="ij")
    fov = (yy**2 + xx**2 <= 0.95).float().view(1, 1, HEIGHT, WIDTH)
    images = []
    for _ in range(count):
        y = (torch.rand(1, 1, HEIGHT, WIDTH, generator=g) < 0.12).float() * fov
        logits = 1.8 * (2 * y - 1) + 1.2 * torch.randn(1, 1, HEIGHT, WIDTH, generator=g)
        images.append((torch.sigmoid(logits), y, fov))
    return images


def run_histogram(images) -> tuple[float, int]:
    metric = PixelROCAUCMetric()
    for prob, y, fov in images:
        metric(prob, y, mask=fov)
    auc = float(metric.aggregate())
    return auc, metric.histograms().numel() * 8


def run_sklearn(images) -> tuple[float, int]:
    scores, labels = [], []
    for prob, y, fov in images:
        inside = fov.bool()
        scores.append(prob[inside].numpy())
        labels.append(y[inside].numpy())
    retained = sum(s.nbytes + t.nbytes for s, t in zip(scores, labels, strict=True))
    return float(roc_auc_score(np.concatenate(labels), np.concatenate(scores))), retained


def run_monai(images) -> tuple[float, int]:
    metric = ROCAUCMetric()
    for prob, y, fov in images:
        inside = fov.bool()
        metric(prob[inside].view(-1, 1), y[inside].view(-1, 1))
    retained = sum(t.numel() * t.element_size() for buffer in metric._buffers for t in buffer)
    return float(metric.aggregate()), retained


def timed(fn, images) -> tuple[float, float, int]:
    start = time.perf_counter()
    auc, retained = fn(images)
    return time.perf_counter() - start, auc, retained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--monai-images", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = make_images(args.images)
    small = images[: args.monai_images]
    pixels = int(sum(fov.sum() for _, _, fov in images))
    small_pixels = int(sum(fov.sum() for _, _, fov in small))

    variants = {
        "histogram (PixelROCAUCMetric)": (run_histogram, images),
        "scikit-learn roc_auc_score": (run_sklearn, images),
        "histogram, MONAI subset": (run_histogram, small),
        "MONAI ROCAUCMetric, MONAI subset": (run_monai, small),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    results: dict[str, tuple[float, int]] = {}
    rng = random.Random(0)
    for rep in range(args.reps + 1):
        order = list(variants)
        rng.shuffle(order)
        this = {}
        for name in order:
            fn, data = variants[name]
            seconds, auc, retained = timed(fn, data)
            this[name] = seconds
            results[name] = (auc, retained)
        if rep == 0:
            continue  # warm-up
        for name in variants:
            times[name].append(this[name])
            base = "histogram, MONAI subset" if "MONAI subset" in name else "histogram (PixelROCAUCMetric)"
            ratios[name].append(this[name] / this[base])

    hist = torch.stack([pixel_score_histograms(p, y, fov) for p, y, fov in images]).sum(0)
    _, bound = roc_auc_from_histograms(hist, return_tie_bound=True)
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s); {args.images} images of {HEIGHT} x {WIDTH} px, {pixels:,} pixels in the "
        f"field of view (MONAI subset: {args.monai_images} images, {small_pixels:,} pixels); "
        f"median of {args.reps} repetitions after one warm-up\n"
    )
    print("| variant | pixels | median time (s) | median ratio to histogram | retained state | AUC |")
    print("|---|---|---|---|---|---|")
    for name in variants:
        auc, retained = results[name]
        n = small_pixels if "MONAI subset" in name else pixels
        print(
            f"| {name} | {n:,} | {statistics.median(times[name]):.3f} | {statistics.median(ratios[name]):.2f} | "
            f"{retained / 2**20:.1f} MiB | {auc:.6f} |"
        )
    exact = results["scikit-learn roc_auc_score"][0]
    print(
        f"\n|histogram AUC - exact AUC| = {abs(results['histogram (PixelROCAUCMetric)'][0] - exact):.2e} "
        f"(guaranteed bound from shared bins: {float(bound[0]):.2e})"
    )


if __name__ == "__main__":
    main()
