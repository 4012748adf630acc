"""FocusNet vs MONAI's U-Net on CPU: parameters and time of a training step and of inference at DSB2018 size.

Both networks as the segmentation bundles use them: one input channel, one output channel (sigmoid),
batch norm, dropout 0.1, input ``--batch`` x 1 x ``--size`` x ``--size`` (256 = the DSB2018 npz):

- MONAI ``UNet(spatial_dims=2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2)``
  (strided downsampling, residual units; the paper's "generic U-Net with batch norm, dropout and strided
  downsampling");
- ``FocusNet()`` with its defaults (``channels=(16, 32, 64, 128)``).

A training step is forward, binary cross-entropy, backward and an Adam step; inference is a forward pass
under ``torch.no_grad()`` in eval mode. Method: ``--reps`` repetitions after one warm-up, the two networks in
shuffled order within a repetition; the table gives median times and the median per-repetition ratio to the
U-Net.

Run::

    .venv/bin/python benchmarks/bench_focusnet.py          # --size 256 --batch 4 --reps 5 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import monai
import torch
from monai.networks.nets import UNet

from monai_imbalance.networks import FocusNet


def networks() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "MONAI UNet (16..256)": UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=(16, 32, 64, 128, 256),
            strides=(2, 2, 2, 2),
            num_res_units=2,
            norm="batch",
            dropout=0.1,
        ),
        "FocusNet (16..128)": FocusNet(in_channels=1, out_channels=1),
    }


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    net.train()
    start = time.perf_counter()
    optimizer.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def inference(net: torch.nn.Module, x: torch.Tensor) -> float:
    net.eval()
    start = time.perf_counter()
    with torch.no_grad():
        net(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nets = networks()
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=1e-4) for name, net in nets.items()}
    x = torch.rand(args.batch, 1, args.size, args.size)
    y = (torch.rand(args.batch, 1, args.size, args.size) > 0.9).float()
    times = {(name, kind): [] for name in nets for kind in ("train", "infer")}
    rng = random.Random(0)
    for rep in range(args.reps + 1):
        order = list(nets)
        rng.shuffle(order)
        for name in order:
            t_train = train_step(nets[name], optimizers[name], x, y)
            t_infer = inference(nets[name], x)
            if rep > 0:
                times[name, "train"].append(t_train)
                times[name, "infer"].append(t_infer)
    base = "MONAI UNet (16..256)"
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s); batch {args.batch} x 1 x {args.size} x {args.size}; median of {args.reps} "
        "repetitions after one warm-up\n"
    )
    print("| network | parameters | train step (s) | ratio | inference (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        row = [name, f"{params:,}"]
        for kind in ("train", "infer"):
            ratios = [a / b for a, b in zip(times[name, kind], times[base, kind], strict=True)]
            row += [f"{statistics.median(times[name, kind]):.3f}", f"{statistics.median(ratios):.2f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
