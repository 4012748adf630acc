"""Command line of ``python -m monai_imbalance.compare``: ``train`` and ``table`` (Table 1), ``grid`` (any bundle).

See the package docstring (:mod:`monai_imbalance.compare`) for the commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .grid import PRESETS, get_preset, grid_variants, parse_variant, run_grid
from .runner import parse_overrides
from .table1 import LOSSES, run_table1, train_variants

__all__ = ["main"]

_GRID_EXAMPLES = """\
examples (from the repository root; bundle overrides shared by every run follow '--'):
  python -m monai_imbalance.compare grid --bundle bundles/rnfld_classification --preset bbfl \\
      --seeds 0 1 2 --output_dir runs/bbfl -- --dataset_dir /data/rnfld
  python -m monai_imbalance.compare grid --bundle bundles/skin_lesion_classification --output_dir runs/heads \\
      --variant lmf_linear "--loss_name lmf" --variant lmf_cosine "--loss_name lmf --head cosine" \\
      --variant lmf_mc "--loss_name lmf" "--mc_dropout true" \\
      -- --dataset_dir /data/ISIC2018 --data_format isic2018_task3

presets:
"""


def _presets_text() -> str:
    lines = []
    for preset in PRESETS.values():
        lines.append(f"  {preset.name}: {preset.title} ({', '.join(preset.bundles)})")
        variants, metrics = ", ".join(v.name for v in preset.variants), ", ".join(preset.metric_names)
        lines.append(f"      variants {variants}; metrics {metrics}")
    return "\n".join(lines)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_imbalance.compare",
        description="Paper-style comparison tables from a bundle. 'train' and 'table': Table 1 of the focal-loss "
        "repeatability paper (cross-entropy vs focal loss, with and without MC dropout); 'grid': any bundle, "
        "named variants x seeds (presets for the LMF, BBFL and ALL papers). Bundle overrides (data, network, ...) "
        "follow '--'.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train cross-entropy and focal models for the given seeds")
    train.add_argument("--bundle", required=True, help="bundle folder, e.g. bundles/knee_oa_grading")
    train.add_argument("--output_dir", required=True, help="runs go to <output_dir>/<loss>/seed<s>/")
    train.add_argument("--seeds", type=int, nargs="+", default=[0])
    train.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    table = sub.add_parser("table", help="evaluate the four variants from checkpoints and write Table 1")
    table.add_argument("--bundle", required=True, help="bundle folder, e.g. bundles/knee_oa_grading")
    table.add_argument("--ce", nargs="+", required=True, help="cross-entropy checkpoints (model.pt or folders)")
    table.add_argument("--focal", nargs="+", required=True, help="focal-loss checkpoints, paired with --ce")
    table.add_argument("--output_dir", required=True, help="evaluation outputs, table1.md and table1.json")
    table.add_argument("--seeds", type=int, nargs="+", default=None, help="labels of the pairs (default 0..n-1)")
    table.add_argument("--mc_samples", type=int, default=None, help="MC-dropout passes (default: the bundle's 50)")
    table.add_argument("--n_boot", type=int, default=500, help="bootstrap replicates of the CIs")
    table.add_argument("--n_boot_paired", type=int, default=2000, help="bootstrap replicates of the paired tests")
    table.add_argument("--overwrite", action="store_true", help="write into an output_dir that holds results")
    table.add_argument(
        "--reporting",
        choices=("paper", "plugin"),
        default="paper",
        help="LoA and ICC as the paper's authors report them (bootstrap-mean LoA, ICC(2,k); default) or plug-in "
        "(LoA of the observed differences, ICC(2,1))",
    )

    grid = sub.add_parser(
        "grid",
        help="train and evaluate named variants of any bundle over seeds: grid.md (mean ± SD) and grid.json",
        description="Train (train.yaml) and evaluate (evaluate.yaml) every variant for every seed, then tabulate "
        "the test metrics: one row per variant, mean ± SD over seeds.",
        epilog=_GRID_EXAMPLES + _presets_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    grid.add_argument("--bundle", required=True, help="bundle folder, e.g. bundles/rnfld_classification")
    grid.add_argument("--output_dir", required=True, help="runs go to <output_dir>/<variant>/seed<s>/")
    grid.add_argument("--preset", choices=list(PRESETS), default=None, help="a paper's variants and metrics")
    grid.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDES"),
        help='a row: NAME "--key value ..." ["--key value ..." for the evaluation only]; each override string '
        "is one quoted argument holding a space (repeat --variant for more rows; added after the preset's)",
    )
    grid.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0)")
    grid.add_argument(
        "--metrics", nargs="+", default=None, help="columns: names in the report (default: the preset's, else all)"
    )
    grid.add_argument(
        "--metrics_key",
        default=None,
        help="entry of eval/<name>/metrics.json to read (default: the bundle's eval_split)",
    )
    grid.add_argument(
        "--evaluate_overrides",
        default="",
        metavar="OVERRIDES",
        help='overrides of every evaluation only, one quoted argument, e.g. "--mc_dropout true"',
    )
    grid.add_argument("--title", default=None, help="title of grid.md (default: the preset's)")
    mode = grid.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="retrain everything in an output_dir with results")
    mode.add_argument("--resume", action="store_true", help="continue the grid in output_dir, skip finished runs")
    return parser


def _grid(args: argparse.Namespace, overrides: dict) -> int:
    variants = grid_variants(args.preset, [parse_variant(spec) for spec in args.variant])
    preset = get_preset(args.preset) if args.preset else None
    table = run_grid(
        args.bundle,
        variants,
        args.seeds,
        args.output_dir,
        overrides,
        parse_overrides(args.evaluate_overrides),
        metrics_key=args.metrics_key,
        metric_names=args.metrics or (preset.metric_names if preset else None),
        overwrite=args.overwrite,
        resume=args.resume,
        title=args.title or (preset.title if preset else None),
    )
    print(table["markdown"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the package docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = _argument_parser().parse_args(own)
    overrides = parse_overrides(extra)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    if args.command == "grid":
        return _grid(args, overrides)
    if args.command == "train":
        runs = train_variants(args.bundle, args.output_dir, args.seeds, args.losses, overrides)
        for (loss, seed), path in runs.items():
            print(f"{loss} seed {seed}: {path}")
        return 0
    if args.mc_samples is not None:
        overrides["mc_samples"] = args.mc_samples
    table = run_table1(
        args.bundle,
        args.ce,
        args.focal,
        args.output_dir,
        overrides,
        seeds=args.seeds,
        n_boot=args.n_boot,
        n_boot_paired=args.n_boot_paired,
        overwrite=args.overwrite,
        reporting=args.reporting,
    )
    print(table["markdown"])
    return 0
