"""The GPU checks that need no data: DenseNet121 training throughput at 224 px and batched MC dropout (CUDA, AMP).

Prepared for a session that is lent a GPU machine (none of this project's sessions so far was); it runs on the CPU
too (``--device cpu``, with small sizes) so that it is tested before a GPU is at hand. Two measurements, both on
random tensors already on the device (the network-bound limit, no data pipeline):

1. **Training throughput**: ``get_network("densenet121", in_channels=3, out_channels=7, dropout_prob=0.1)``, Adam,
   cross-entropy, batch ``--batch`` of 3 x ``--size`` x ``--size`` images, ``torch.autocast`` in float16 with a
   ``GradScaler`` on CUDA (what the bundles do with ``amp: true``), ``channels_last``; images per second over
   ``--steps`` steps after ``--warmup`` steps, synchronised.
2. **MC dropout, batched**: 50 passes of ``MCDropoutInferer(50, mc_batch_size=m)`` over a batch of ``--mc-batch``
   images, for DenseNet121 as the bundles build it (dropout in every dense layer) and with head-only dropout
   (``add_dropout(..., before="class_layers.out")``), with and without prefix reuse, as a ratio to one
   deterministic pass (medians of ``--reps``), under the same autocast.

Run on the GPU machine (from the repository root; prints a markdown section for ``benchmarks/RESULTS.md``)::

    python benchmarks/bench_gpu.py --output $OUT/gpu.md
    python benchmarks/bench_gpu.py --device cpu --size 64 --batch 8 --steps 3 --warmup 1 --reps 1   # CPU smoke run
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import monai
import torch
from torch import nn

from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.networks import add_dropout, get_network

NUM_SAMPLES = 50
DROPOUT = 0.1


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda")


def training_throughput(args: argparse.Namespace, device: torch.device) -> float:
    """Images per second of DenseNet121 training steps (forward, loss, backward, Adam) on in-memory tensors."""
    torch.manual_seed(0)
    network = get_network("densenet121", in_channels=3, out_channels=7, dropout_prob=DROPOUT).to(device)
    network = network.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    images = torch.randn(args.batch, 3, args.size, args.size, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 7, (args.batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device):
            loss = nn.functional.cross_entropy(network(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    _synchronize(device)
    return args.steps * args.batch / (time.perf_counter() - start)


def _timed(device: torch.device, fn: Callable[[], object]) -> float:
    _synchronize(device)
    start = time.perf_counter()
    with torch.no_grad(), _autocast(device):
        fn()
    _synchronize(device)
    return time.perf_counter() - start


def _mc_row(network: nn.Module, images: torch.Tensor, args: argparse.Namespace, device: torch.device) -> tuple:
    """``(deterministic seconds, full-pass ratio, prefix-reuse ratio)`` of one network."""
    network = network.to(device).eval()
    full = MCDropoutInferer(NUM_SAMPLES, mc_batch_size=args.mc_batch_size, reuse_prefix=False, seed=0)
    reuse = MCDropoutInferer(NUM_SAMPLES, mc_batch_size=args.mc_batch_size, seed=0)
    variants = {
        "deterministic": lambda: network(images),
        "full": lambda: full(images, network),
        "reuse": lambda: reuse(images, network),
    }
    for fn in variants.values():  # warm-up: kernels, cuDNN autotuning, the prefix trace
        _timed(device, fn)
    times: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(args.reps):
        for key, fn in variants.items():
            times[key].append(_timed(device, fn))
    base = statistics.median(times["deterministic"])
    return base, statistics.median(times["full"]) / base, statistics.median(times["reuse"]) / base


def mc_dropout_ratios(args: argparse.Namespace, device: torch.device) -> list[tuple]:
    """``(network, deterministic seconds, full-pass ratio, prefix-reuse ratio)`` per network."""
    torch.manual_seed(0)
    images = torch.randn(args.mc_batch, 3, args.size, args.size, device=device)
    networks = {
        "densenet121 (dropout in every dense layer, as the bundles build it)": get_network(
            "densenet121", in_channels=3, out_channels=7, dropout_prob=DROPOUT
        ),
        "densenet121, head-only dropout": add_dropout(
            get_network("densenet121", in_channels=3, out_channels=7), DROPOUT, before="class_layers.out"
        ),
    }
    return [(name, *_mc_row(network, images, args, device)) for name, network in networks.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="training steps before timing")
    parser.add_argument("--mc-batch", type=int, default=16, help="images per MC-dropout call")
    parser.add_argument("--mc-batch-size", type=int, default=10, help="passes per forward (the bundles' default)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per MC variant")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    started = time.perf_counter()
    throughput = training_throughput(args, device)
    mc_rows = mc_dropout_ratios(args, device)
    lines = [
        f"## GPU checks without data: DenseNet121 training throughput and batched MC dropout ({name})",
        "",
        f"Command: `python benchmarks/bench_gpu.py` (device {device}, torch {torch.__version__}, monai "
        f"{monai.__version__}; {time.perf_counter() - started:.0f} s).",
        "",
        f"Training, DenseNet121 at {args.size} px, batch {args.batch}, AMP float16 "
        f"{'on' if device.type == 'cuda' else 'off (CPU)'}, channels_last, in-memory tensors: "
        f"**{throughput:.0f} images/s** ({args.steps} steps after {args.warmup}).",
        "",
        f"MC dropout, {NUM_SAMPLES} passes over {args.mc_batch} images at {args.size} px, mc_batch_size "
        f"{args.mc_batch_size}, ratio to one deterministic pass (median of {args.reps}):",
        "",
        "| network | deterministic pass (ms) | full passes | prefix reuse |",
        "|---|---:|---:|---:|",
        *(f"| {row[0]} | {row[1] * 1e3:.1f} | {row[2]:.1f}x | {row[3]:.1f}x |" for row in mc_rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
