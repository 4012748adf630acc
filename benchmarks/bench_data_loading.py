"""Loading the 16 real mammograms through the breast-density transforms: JPEG draft decoding vs full decoding.

Both rows run the same chain on ``../shared/data/breast_density_sample`` (16 JPEGs, 266 x 425 up to
3328 x 4096 px)::

    LoadImageOrArrayd(keys="image", channels=1[, draft_size=S]) -> MammogramIntensityd -> ResizeLongestPadd(S)

The baseline decodes every JPEG at full size (MONAI ``LoadImage`` + Pillow, as without ``draft_size``); the
candidate asks Pillow for a reduced-scale decode (1/2, 1/4, 1/8) of at least ``S`` px. Method: every
repetition loads all 16 images with each variant in a shuffled order; the ratio of a repetition is the
candidate's time over the baseline's time in that repetition; the table gives median times and the median
ratio after one warm-up repetition. The mean and maximum absolute differences of the two outputs (same
picture, values in [0, 1]) are printed as well: draft decoding (DCT scaling) approximates full decoding followed
by area resizing; they differ mostly at sharp edges.

Run::

    .venv/bin/python benchmarks/bench_data_loading.py          # --size 256 --reps 5 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path

import monai
import torch
from monai.transforms import Compose

from monai_imbalance.transforms import LoadImageOrArrayd, MammogramIntensityd, ResizeLongestPadd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "breast_density_sample"


def chain(size: int, draft: bool) -> Compose:
    return Compose(
        [
            LoadImageOrArrayd(keys="image", channels=1, draft_size=size if draft else None),
            MammogramIntensityd(keys="image"),
            ResizeLongestPadd(keys="image", spatial_size=size),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(DATA.glob("*/*.jpg"))
    if len(paths) != 16:
        raise SystemExit(f"expected the 16 mammograms in {DATA}, found {len(paths)}")
    variants = {"full decode (baseline)": chain(args.size, False), "JPEG draft decode": chain(args.size, True)}

    def run(transform: Compose) -> float:
        start = time.perf_counter()
        for path in paths:
            transform({"image": str(path)})
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in variants}
    ratios: list[float] = []
    for rep in range(args.reps + 1):
        order = list(variants)
        random.Random(rep).shuffle(order)
        measured = {name: run(variants[name]) for name in order}
        if rep == 0:
            continue  # warm-up
        for name, t in measured.items():
            times[name].append(t)
        ratios.append(measured["JPEG draft decode"] / measured["full decode (baseline)"])

    full, draft = variants["full decode (baseline)"], variants["JPEG draft decode"]
    diffs = [(full({"image": str(p)})["image"] - draft({"image": str(p)})["image"]).abs() for p in paths]
    mean_diff = statistics.mean(float(d.mean()) for d in diffs)
    max_diff = max(float(d.max()) for d in diffs)
    print(
        f"monai {monai.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), output {args.size} px, {args.reps} repetitions after 1 warm-up"
    )
    print()
    print("| variant | median time for 16 images (s) | median ratio to baseline |")
    print("|---|---|---|")
    print(f"| full decode (baseline) | {statistics.median(times['full decode (baseline)']):.3f} | 1.00 |")
    print(
        f"| JPEG draft decode | {statistics.median(times['JPEG draft decode']):.3f} | {statistics.median(ratios):.3f} |"
    )
    print()
    print(f"|full - draft| over the 16 outputs (values in [0, 1]): mean {mean_diff:.4f}, max {max_diff:.3f}")


if __name__ == "__main__":
    main()
