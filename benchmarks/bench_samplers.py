"""Build + one epoch of index batches: the class-balancing samplers against ``WeightedRandomSampler``.

Data: 1,000,000 labels in 10 classes, class 0 holds 99% (990,000) and classes 1-9 hold 0.1% each (1,000),
shuffled; given as an ``int64`` tensor (what ``torch.as_tensor([d["label"] for d in datalist])`` gives).

Each candidate is timed from the labels to the last batch: construct the sampler (for the baseline:
``w_i = 1 / n_{y_i}`` and ``WeightedRandomSampler(w, num_samples, replacement=True)``), then iterate
``torch.utils.data.BatchSampler(sampler, batch_size, drop_last=False)`` to the end, exactly as a
``DataLoader`` draws index batches. The baseline of each row draws the same number of indices as the
candidate's epoch, so the ratio compares equal work:

- ``BatchBalancedSampler``: epoch ``N // batch_size`` batches (~N indices), at batch size 32 (10 does not
  divide 32: the remainder path) and 100. Target: ratio <= 1.
- ``OverSampler``: ``10 * 990,000`` indices; ``UnderSampler``: ``10 * 1,000``.
- "next epoch" rows: a later epoch of samplers built beforehand (``set_epoch`` + iterate; the baseline just
  iterates again), the steady-state cost per epoch of training.

Method: every repetition runs each candidate and its baseline once, in a shuffled order; a repetition's ratio
is the candidate's time over its baseline's time in that repetition. The table gives the median ratio and the
median times over the repetitions after warm-up. Run::

    .venv/bin/python benchmarks/bench_samplers.py              # --reps N --threads T to change
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import BatchSampler, DistributedSampler, Sampler, WeightedRandomSampler

from monai_imbalance.data import BatchBalancedSampler, OverSampler, UnderSampler

NUM_LABELS = 1_000_000
MINORITY = 1_000
NUM_CLASSES = 10


def make_labels(seed: int = 0) -> torch.Tensor:
    majority = NUM_LABELS - (NUM_CLASSES - 1) * MINORITY
    counts = torch.tensor([majority] + [MINORITY] * (NUM_CLASSES - 1))
    labels = torch.repeat_interleave(torch.arange(NUM_CLASSES), counts)
    return labels[torch.randperm(NUM_LABELS, generator=torch.Generator().manual_seed(seed))]


def weighted_random_sampler(labels: torch.Tensor, num_samples: int) -> WeightedRandomSampler:
    weights = 1.0 / torch.bincount(labels).double()[labels]
    return WeightedRandomSampler(weights, num_samples=num_samples, replacement=True)


def draw_epoch(sampler: Sampler, batch_size: int) -> int:
    """Draw all index batches of one epoch as a ``DataLoader`` does; return the number of indices."""
    return sum(len(batch) for batch in BatchSampler(sampler, batch_size, drop_last=False))


@dataclass
class Row:
    """One comparison: ``ours`` and ``baseline`` each build a sampler; ``next_epoch`` times a later epoch only."""

    name: str
    ours: Callable[[], Sampler]
    batch_size: int
    target: float | None = None
    next_epoch: bool = False

    def __post_init__(self) -> None:
        self.num_indices = len(self.ours())
        self._built: dict[str, Sampler] = {}
        self._epoch = 0

    def baseline(self, labels: torch.Tensor) -> Callable[[], Sampler]:
        return lambda: weighted_random_sampler(labels, self.num_indices)

    def run(self, make: Callable[[], Sampler], kind: str) -> tuple[float, int]:
        """Seconds for build + one epoch (or, with ``next_epoch``, one more epoch of a built sampler)."""
        if not self.next_epoch:
            start = time.perf_counter()
            drawn = draw_epoch(make(), self.batch_size)
            return time.perf_counter() - start, drawn
        if kind not in self._built:
            self._built[kind] = make()
        sampler = self._built[kind]
        start = time.perf_counter()
        if isinstance(sampler, DistributedSampler):
            self._epoch += 1
            sampler.set_epoch(self._epoch)
        drawn = draw_epoch(sampler, self.batch_size)
        return time.perf_counter() - start, drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = make_labels()
    rows = [
        Row("BatchBalancedSampler, batch 32", lambda: BatchBalancedSampler(labels, 32), 32, target=1.0),
        Row("BatchBalancedSampler, batch 100", lambda: BatchBalancedSampler(labels, 100), 100, target=1.0),
        Row("OverSampler (ROS), batch 32", lambda: OverSampler(labels, 32), 32),
        Row("UnderSampler (RUS), batch 32", lambda: UnderSampler(labels, 32), 32),
        Row("BatchBalancedSampler, batch 32, next epoch", lambda: BatchBalancedSampler(labels, 32), 32, None, True),
        Row("UnderSampler (RUS), batch 32, next epoch", lambda: UnderSampler(labels, 32), 32, None, True),
    ]
    rng = random.Random(0)
    times: dict[str, list[tuple[float, float]]] = {row.name: [] for row in rows}
    for rep in range(args.reps + 1):
        jobs = [(row, kind) for row in rows for kind in ("ours", "baseline")]
        rng.shuffle(jobs)
        measured: dict[tuple[str, str], float] = {}
        for row, kind in jobs:
            seconds, drawn = row.run(row.ours if kind == "ours" else row.baseline(labels), kind)
            assert drawn == row.num_indices, (row.name, kind, drawn)
            measured[row.name, kind] = seconds
        if rep > 0:  # the first repetition is the warm-up
            for row in rows:
                times[row.name].append((measured[row.name, "ours"], measured[row.name, "baseline"]))

    print(f"torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}, ", end="")
    print(f"{args.threads} thread(s), {args.reps} repetitions after 1 warm-up")
    print(f"{NUM_LABELS:,} labels, {NUM_CLASSES} classes (99% / 0.1% x 9)\n")
    print("| sampler | indices per epoch | ours (s) | WeightedRandomSampler (s) | ratio | target |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        pairs = times[row.name]
        ratio = statistics.median(ours / base for ours, base in pairs)
        ours = statistics.median(o for o, _ in pairs)
        base = statistics.median(b for _, b in pairs)
        target = f"<= {row.target:.2f}" if row.target is not None else "-"
        print(f"| {row.name} | {row.num_indices:,} | {ours:.3f} | {base:.3f} | {ratio:.2f} | {target} |")


if __name__ == "__main__":
    main()
