"""Cost of 50-sample MC-dropout inference relative to one deterministic pass, with and without prefix reuse (CPU).

Networks (``torch.no_grad()``, eval mode, dropout rate 0.1):

- ``resnet18``: ``get_network("resnet18", dropout_prob=0.1)``, dropout before the final linear layer;
- ``small_cnn``: ``get_network("small_cnn", dropout_prob=0.1)``, dropout before the final linear layer;
- ``densenet121``: ``get_network("densenet121", dropout_prob=0.1)``, dropout after every dense layer (as
  ``DenseNet121(dropout_prob=0.1)``), so only the stem and the first dense layer's convolutions are reusable;
- ``densenet121_head`` (only with ``--networks``): ``add_dropout(DenseNet121(...), 0.1, before="class_layers.out")``,
  dropout before the final linear layer only;
- ``unet3d``: MONAI ``UNet(spatial_dims=3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2,
  dropout=0.1)``: dropout in every unit, the first one right after the first convolution.

2D networks get a batch of ``--batch`` random 1 x ``--size`` x ``--size`` images, the 3D UNet
``--batch-3d`` volumes of 1 x ``--size-3d`` cubed voxels. Variants per network:

- deterministic: ``net(x)`` in eval mode (the baseline, one pass; median of ``--baseline-passes`` passes);
- MC full passes: ``MCDropoutInferer(50, mc_batch_size=m, reuse_prefix=False)``;
- MC prefix reuse: ``MCDropoutInferer(50, mc_batch_size=m)`` (the default).

Method: every repetition times each variant once, in a shuffled order; a repetition's ratio is the variant's time
over the deterministic time of the same repetition; the table gives medians (and min-max) after one warm-up
repetition. Prefix reuse traces the network once (cached per network; "trace" is the time of tracing a copy) and
checks the split on two samples at its first call. Ideal ratios: 50 for full passes; for prefix reuse 1 plus 50
times the share of the network after the first dropout.

Run (about 4 minutes on one core)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mc_dropout.py
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import statistics
import time
from collections.abc import Callable

import monai
import torch
from monai.networks.nets import DenseNet121, UNet
from torch import nn

from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.inferers.prefix_reuse import split_at_first_dropout
from monai_imbalance.networks import add_dropout, get_network
from monai_imbalance.networks.dropout import mc_dropout_mode

NUM_SAMPLES = 50
P = 0.1


def _networks(args: argparse.Namespace) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    image = torch.randn(args.batch, 1, args.size, args.size)
    volume = torch.randn(args.batch_3d, 1, args.size_3d, args.size_3d, args.size_3d)
    builders: dict[str, tuple[Callable[[], nn.Module], torch.Tensor]] = {
        "resnet18": (lambda: get_network("resnet18", in_channels=1, out_channels=5, dropout_prob=P), image),
        "small_cnn": (lambda: get_network("small_cnn", in_channels=1, out_channels=5, dropout_prob=P), image),
        "densenet121": (lambda: get_network("densenet121", in_channels=1, out_channels=5, dropout_prob=P), image),
        "densenet121_head": (
            lambda: add_dropout(DenseNet121(2, 1, 5), P, before="class_layers.out"),  # not in the default set
            image,
        ),
        "unet3d": (
            lambda: UNet(3, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2, dropout=P),
            volume,
        ),
    }
    return {name: (build().eval(), x) for name, (build, x) in builders.items() if name in args.networks}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-3d", type=int, default=2)
    parser.add_argument("--size-3d", type=int, default=32)
    parser.add_argument("--mc-batch-size", type=int, default=10, help="passes per forward (the bundles' default)")
    parser.add_argument("--baseline-passes", type=int, default=5)
    parser.add_argument(
        "--networks", nargs="+", default=["resnet18", "small_cnn", "densenet121", "unet3d"], help="subset to run"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"monai {monai.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), {NUM_SAMPLES} MC samples, mc_batch_size={args.mc_batch_size}, "
        f"{args.reps} repetitions after 1 warm-up; 2D input {args.batch} x 1 x {args.size} x {args.size}, "
        f"3D input {args.batch_3d} x 1 x {args.size_3d}^3"
    )
    print()
    print(
        "| network | deterministic pass (s) | MC full passes: ratio to one pass, median (min-max) "
        "| MC prefix reuse: ratio, median (min-max) | speed-up of reuse | reused part | trace (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (net, x) in _networks(args).items():
        full = MCDropoutInferer(NUM_SAMPLES, mc_batch_size=args.mc_batch_size, seed=0, reuse_prefix=False)
        reuse = MCDropoutInferer(NUM_SAMPLES, mc_batch_size=args.mc_batch_size, seed=0)
        variants = {"full": lambda full=full, net=net, x=x: full(x, net), "reuse": lambda r=reuse, n=net, x=x: r(x, n)}
        ratios: dict[str, list[float]] = {"full": [], "reuse": []}
        baselines: list[float] = []
        for rep in range(args.reps + 1):
            order = ["baseline", *variants]
            random.Random(rep).shuffle(order)
            measured = {}
            for variant in order:
                if variant == "baseline":  # short and the CPU may be shared: median of a few passes
                    measured[variant] = statistics.median(
                        _timed(lambda net=net, x=x: net(x)) for _ in range(args.baseline_passes)
                    )
                else:
                    measured[variant] = _timed(variants[variant])
            if rep == 0:
                continue
            baselines.append(measured["baseline"])
            for variant in variants:
                ratios[variant].append(measured[variant] / measured["baseline"])
        with mc_dropout_mode(net):  # the cached split, for the table
            split = split_at_first_dropout(net)
        reused = (
            split if isinstance(split, str) else f"{split.prefix_nodes} operations, cut before `{split.cut_before}`"
        )
        fresh = copy.deepcopy(net)
        with mc_dropout_mode(fresh):
            trace_time = _timed(lambda fresh=fresh: split_at_first_dropout(fresh))

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

        speed_up = statistics.median(f / r for f, r in zip(ratios["full"], ratios["reuse"], strict=True))
        print(
            f"| {name} | {statistics.median(baselines):.3f} | {cell(ratios['full'])} | {cell(ratios['reuse'])} "
            f"| {speed_up:.1f}x | {reused} | {trace_time:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
