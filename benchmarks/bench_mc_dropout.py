"""Cost of 50-sample MC-dropout inference relative to one deterministic pass (MONAI DenseNet121, 2D, CPU).

Network: ``monai.networks.nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=5)`` with dropout
added by ``monai_imbalance.networks.add_dropout(net, p=0.1)`` (``Dropout2d`` after every dense layer, as
``dropout_prob=0.1`` builds it). Input: a batch of 16 random 1 x 64 x 64 images. Variants, all under
``torch.no_grad()``:

- deterministic: ``softmax(net(x))`` in eval mode (the baseline, one pass);
- MC sequential: ``MCDropoutInferer(num_samples=50)``, one stochastic pass per forward (batch 16);
- MC batched ``m``: ``MCDropoutInferer(num_samples=50, mc_batch_size=m)``, ``m`` passes per forward by
  repeating the batch (batch ``16 m``), for ``m`` in ``--mc-batch-sizes``.

Method: every repetition times each variant once (the deterministic baseline as the median of
``--baseline-passes`` passes), in a shuffled order; the ratio of a repetition is the variant's time over the
deterministic time in that repetition; the table gives median times and median
ratios after one warm-up repetition. The ideal ratio of any 50-pass method is 50; below 50 means the
batched forward amortises per-call overhead, above 50 means the MC bookkeeping (or memory traffic of the
larger batch) costs extra.

Run::

    .venv/bin/python benchmarks/bench_mc_dropout.py          # --reps 3 --threads 1 --mc-batch-sizes 5 10 25
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable

import monai
import torch
from monai.networks.nets import DenseNet121

from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.networks import add_dropout

NUM_SAMPLES = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--mc-batch-sizes", type=int, nargs="+", default=[5, 10, 25])
    parser.add_argument("--baseline-passes", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = add_dropout(DenseNet121(spatial_dims=2, in_channels=1, out_channels=5), p=0.1).eval()
    x = torch.randn(args.batch, 1, args.size, args.size)

    def deterministic() -> torch.Tensor:
        return torch.softmax(net(x), dim=1)

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "deterministic (1 pass)": deterministic,
        "MC sequential (50 x batch 16)": lambda: MCDropoutInferer(NUM_SAMPLES, seed=0)(x, net),
    }
    for m in args.mc_batch_sizes:
        inferer = MCDropoutInferer(NUM_SAMPLES, mc_batch_size=m, seed=0)
        variants[f"MC batched, mc_batch_size={m} (batch {m * args.batch})"] = lambda inferer=inferer: inferer(x, net)

    def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, float]:
        """(wall-clock seconds, CPU seconds of this process) of one call."""
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    def baseline_time() -> tuple[float, float]:
        # the one-pass baseline is short and the CPU may be shared: median of a few passes
        passes = [timed(deterministic) for _ in range(args.baseline_passes)]
        return statistics.median(p[0] for p in passes), statistics.median(p[1] for p in passes)

    baseline = "deterministic (1 pass)"
    ratios: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.reps + 1):
        order = list(variants)
        random.Random(rep).shuffle(order)
        measured = {name: baseline_time() if name == baseline else timed(variants[name]) for name in order}
        if rep == 0:
            continue  # warm-up
        for name, (wall, cpu) in measured.items():
            times[name].append(wall)
            ratios[name]["wall"].append(wall / measured[baseline][0])
            ratios[name]["cpu"].append(cpu / measured[baseline][1])

    def cell(values: list[float], name: str) -> str:
        text = f"{statistics.median(values):.1f}"
        return text if name == baseline else f"{text} ({min(values):.1f}-{max(values):.1f})"

    print(
        f"monai {monai.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), DenseNet121 2D, batch {args.batch} x 1 x {args.size} x {args.size}, "
        f"{NUM_SAMPLES} MC samples, {args.reps} repetitions after 1 warm-up"
    )
    print()
    print(
        "| variant | median wall time (s) | wall-time ratio to one deterministic pass, median (min-max) "
        "| CPU-time ratio, median (min-max) | CPU-time ratio / 50 |"
    )
    print("|---|---|---|---|---|")
    for name in variants:
        per_pass = "" if name == baseline else f"{statistics.median(ratios[name]['cpu']) / NUM_SAMPLES:.2f}"
        print(
            f"| {name} | {statistics.median(times[name]):.3f} | {cell(ratios[name]['wall'], name)} "
            f"| {cell(ratios[name]['cpu'], name)} | {per_pass} |"
        )


if __name__ == "__main__":
    main()
