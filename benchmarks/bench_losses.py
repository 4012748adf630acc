"""Forward + backward time of the losses, as ratios to a baseline measured side by side in one process.

Groups (the baseline of each group is the first row, ratio 1.00):

- classification, logits ``(1024, 7)`` and labels ``(1024,)``: baseline ``F.cross_entropy``; our cross-entropy,
  focal, LDAM and LMF; MONAI's ``FocalLoss(use_softmax=True, to_onehot_y=True)`` at equal semantics (same
  formula; MONAI's 'mean' also divides by C). Target: focal, LDAM, LMF <= 1.5x.
- weighted classification: the same with class weights (baseline ``F.cross_entropy(weight=...)``).
- segmentation, logits ``(8, 2, 256, 256)`` and a label map ``(8, 1, 256, 256)``: baseline MONAI
  ``DiceLoss(softmax=True, to_onehot_y=True)``; ALL over that Dice loss (target <= 1.1x), Focal Tversky, Combo,
  our softmax focal next to MONAI's softmax focal (target: ours no slower).
- binary segmentation, logits ``(8, 1, 256, 256)`` and a mask: baseline MONAI ``DiceLoss(sigmoid=True)``; our
  sigmoid focal next to MONAI's sigmoid ``FocalLoss`` with the same ``gamma`` and ``alpha``.

Method: every repetition runs each candidate once, in a shuffled order, timing ``loss(x, y).backward()`` with
the gradient of ``x`` cleared before (as ``zero_grad(set_to_none=True)`` does); the ratio of a repetition is its
time over the baseline's time in the same repetition. The table gives the median ratio over repetitions (after
warm-up) and the median times. By default the clock is the CPU time of the process (``time.process_time``) and
torch runs one thread, so that other jobs on a shared CPU disturb the ratios as little as possible. Run::

    .venv/bin/python benchmarks/bench_losses.py            # add --reps-cls/--reps-seg/--threads to change
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import monai
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, TverskyLoss
from monai.losses import FocalLoss as MonaiFocalLoss

from monai_imbalance.losses import (
    AdaptiveLogarithmicLoss,
    ComboLoss,
    CrossEntropyLoss,
    FocalLoss,
    FocalTverskyLoss,
    LDAMLoss,
    LMFLoss,
    drw_class_weights,
)


@dataclass
class Candidate:
    name: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    target: float | None = None  # the ratio the issue asks for, if any


@dataclass
class Group:
    title: str
    make_input: Callable[[], torch.Tensor]
    target: torch.Tensor
    candidates: list[Candidate]
    reps: int
    warmup: int


def _time_once(loss: Callable, x: torch.Tensor, target: torch.Tensor, clock: Callable[[], float]) -> float:
    x.grad = None
    start = clock()
    loss(x, target).backward()
    return clock() - start


def run_group(group: Group, rng: random.Random, clock: Callable[[], float]) -> list[tuple[Candidate, float, float]]:
    """Return ``(candidate, median ratio to the baseline, median seconds)`` per candidate."""
    x = group.make_input().requires_grad_(True)
    for _ in range(group.warmup):
        for cand in group.candidates:
            _time_once(cand.loss, x, group.target, clock)
    times: dict[str, list[float]] = {c.name: [] for c in group.candidates}
    ratios: dict[str, list[float]] = {c.name: [] for c in group.candidates}
    order = list(group.candidates)
    for _ in range(group.reps):
        rng.shuffle(order)
        rep = {c.name: _time_once(c.loss, x, group.target, clock) for c in order}
        base = rep[group.candidates[0].name]
        for name, seconds in rep.items():
            times[name].append(seconds)
            ratios[name].append(seconds / base)
    return [(c, statistics.median(ratios[c.name]), statistics.median(times[c.name])) for c in group.candidates]


def build_groups(reps_cls: int, reps_seg: int, seed: int) -> list[Group]:
    gen = torch.Generator().manual_seed(seed)
    num_classes = 7
    # HAM10000-like class counts (skin lesion classification, 7 classes)
    counts = [1113, 6705, 514, 327, 1099, 115, 142]
    labels = torch.randint(0, num_classes, (1024,), generator=gen)
    logits = torch.randn(1024, num_classes, generator=gen)
    weights = drw_class_weights(counts)
    monai_focal = MonaiFocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)
    cls = Group(
        "classification (B=1024, C=7)",
        logits.clone,
        labels,
        [
            Candidate("torch F.cross_entropy", lambda x, y: F.cross_entropy(x, y)),
            Candidate("CrossEntropyLoss (ours)", CrossEntropyLoss()),
            Candidate("FocalLoss (ours, gamma=2)", FocalLoss(gamma=2.0, sigmoid=False), 1.5),
            Candidate("MONAI FocalLoss (softmax, gamma=2)", lambda x, y: monai_focal(x, y.unsqueeze(1))),
            Candidate("LDAMLoss (s=30, max_m=0.5)", LDAMLoss(counts), 1.5),
            Candidate("LMFLoss (official defaults)", LMFLoss(counts), 1.5),
        ],
        reps_cls,
        max(reps_cls // 10, 10),
    )
    cls_weighted = Group(
        "weighted classification (B=1024, C=7, DRW class weights)",
        logits.clone,
        labels,
        [
            Candidate("torch F.cross_entropy(weight)", lambda x, y: F.cross_entropy(x, y, weight=weights)),
            Candidate("FocalLoss (ours, weight)", FocalLoss(gamma=2.0, sigmoid=False, weight=weights), 1.5),
            Candidate("LDAMLoss (weight) = LDAM-DRW", LDAMLoss(counts, weight=weights), 1.5),
            Candidate("LMFLoss (weight)", LMFLoss(counts, weight=weights), 1.5),
        ],
        reps_cls,
        max(reps_cls // 10, 10),
    )
    seg_logits = torch.randn(8, 2, 256, 256, generator=gen)
    seg_labels = (torch.rand(8, 1, 256, 256, generator=gen) < 0.1).float()  # 10% foreground, float like MONAI
    seg_kw = {"softmax": True, "to_onehot_y": True}
    dice = DiceLoss(**seg_kw)
    seg = Group(
        "segmentation (8x2x256x256, softmax, label map)",
        seg_logits.clone,
        seg_labels,
        [
            Candidate("MONAI DiceLoss", dice),
            Candidate("AdaptiveLogarithmicLoss(DiceLoss)", AdaptiveLogarithmicLoss(DiceLoss(**seg_kw)), 1.1),
            Candidate("MONAI TverskyLoss", TverskyLoss(alpha=0.3, beta=0.7, **seg_kw)),
            Candidate("FocalTverskyLoss (ours)", FocalTverskyLoss(**seg_kw)),
            Candidate("ComboLoss (ours)", ComboLoss(**seg_kw)),
            Candidate("torch F.cross_entropy", lambda x, y: F.cross_entropy(x, y[:, 0].long())),
            Candidate("CrossEntropyLoss (ours)", CrossEntropyLoss()),
            Candidate("MONAI FocalLoss (softmax, gamma=2)", monai_focal),
            Candidate("FocalLoss (ours, softmax, gamma=2)", FocalLoss(gamma=2.0, sigmoid=False)),
        ],
        reps_seg,
        3,
    )
    bin_logits = torch.randn(8, 1, 256, 256, generator=gen)
    bin_mask = (torch.rand(8, 1, 256, 256, generator=gen) < 0.1).float()
    seg_bin = Group(
        "binary segmentation (8x1x256x256, sigmoid)",
        bin_logits.clone,
        bin_mask,
        [
            Candidate("MONAI DiceLoss (sigmoid)", DiceLoss(sigmoid=True)),
            Candidate("AdaptiveLogarithmicLoss(DiceLoss)", AdaptiveLogarithmicLoss(DiceLoss(sigmoid=True)), 1.1),
            Candidate("ComboLoss (ours, sigmoid)", ComboLoss(sigmoid=True)),
            Candidate("MONAI FocalLoss (sigmoid, gamma=2, alpha=0.25)", MonaiFocalLoss(gamma=2.0, alpha=0.25)),
            Candidate("FocalLoss (ours, sigmoid, gamma=2, alpha=0.25)", FocalLoss(gamma=2.0, alpha=0.25, sigmoid=True)),
        ],
        reps_seg,
        3,
    )
    return [cls, cls_weighted, seg, seg_bin]


def _verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"<= {target:.2f}: {'met' if ratio <= target else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps-cls", type=int, default=300, help="timed repetitions per classification loss")
    parser.add_argument("--reps-seg", type=int, default=30, help="timed repetitions per segmentation loss")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: least noise on a shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: CPU time of this process (time.process_time), robust to other jobs on a shared machine; "
        "wall: time.perf_counter",
    )
    args = parser.parse_args()
    if args.reps_cls < 20 or args.reps_seg < 20:
        parser.error("use at least 20 repetitions")
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, threads={args.threads}, clock={args.clock}, "
        f"reps cls/seg={args.reps_cls}/{args.reps_seg}\n"
    )
    for group in build_groups(args.reps_cls, args.reps_seg, args.seed):
        print(f"### {group.title}\n")
        print("| loss | median fwd+bwd (ms) | ratio to first row (median) | target |")
        print("|---|---:|---:|---|")
        for cand, ratio, seconds in run_group(group, rng, clock):
            print(f"| {cand.name} | {seconds * 1e3:.3f} | {ratio:.2f} | {_verdict(ratio, cand.target)} |")
        print()


if __name__ == "__main__":
    main()
