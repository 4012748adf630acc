"""Command line: ``python -m monai_imbalance.bundles list | export NAME DIR [--overwrite] | sync [--check] | run ...``.

``run ...`` (and ``run_workflow ...``) is ``python -m monai.bundle run ...`` with the same arguments, except that every
mistake the user can fix ends in one line (:func:`monai_imbalance.workflow.run_monai_bundle_command`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from monai_imbalance.bundles.export import export_bundle, stale_files, sync_bundles
from monai_imbalance.bundles.render import bundle_names
from monai_imbalance.workflow import run_monai_bundle_command

_MONAI_COMMANDS = ("run", "run_workflow")


_RUN_USAGE = """usage: python -m monai_imbalance.bundles run --config_file FILE [--key value ...]
       python -m monai_imbalance.bundles run --args_file <ckpt_dir>/run_args.json --resume true

The arguments of `python -m monai.bundle run` (MONAI's docs), run by MONAI unchanged; a mistake you can fix,
including a misspelt parent of a nested override (--los_kwargs#gamma 3), ends in one line `error: ...`.
"""


def _run_monai_command(argv: list[str]) -> int:
    names = {arg.split("=")[0] for arg in argv[1:]}
    if names & {"-h", "--help"}:
        print(_RUN_USAGE)
        return 0
    if argv[0] == "run" and not names & {"--config_file", "--args_file"}:
        sys.stderr.write("error: run needs --config_file (e.g. configs/train.yaml) or --args_file\n")
        return 2
    run_monai_bundle_command(argv)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in _MONAI_COMMANDS:
        return _run_monai_command(argv)
    parser = argparse.ArgumentParser(
        prog="python -m monai_imbalance.bundles", description="The MONAI Bundles of monai-imbalance."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the bundle names")
    for name in _MONAI_COMMANDS:
        commands.add_parser(name, help=f"python -m monai.bundle {name} ..., with one-line errors", add_help=False)
    export = commands.add_parser("export", help="write one bundle into a folder, ready to run")
    export.add_argument("name", help="the bundle name (see `list`)")
    export.add_argument("directory", type=Path, help="the bundle folder to write (new or empty)")
    export.add_argument("--overwrite", action="store_true", help="replace the bundle's files in a non-empty folder")
    sync = commands.add_parser("sync", help="maintainers: regenerate the repository's bundles/ from the sources")
    sync.add_argument("--bundles-dir", type=Path, default=Path("bundles"), help="default: ./bundles")
    sync.add_argument("--check", action="store_true", help="only list the out-of-date files; exit 1 if any")
    args = parser.parse_args(argv)

    if args.command == "list":
        print("\n".join(bundle_names()))
        return 0
    if args.command == "export":
        try:
            root = export_bundle(args.name, args.directory, overwrite=args.overwrite)
        except (ValueError, FileExistsError, NotADirectoryError) as error:
            parser.exit(2, f"error: {error}\n")
        print(f"wrote bundle {args.name!r} to {root}; run it from there with python -m monai.bundle run ...")
        return 0
    if args.check:
        stale = stale_files(args.bundles_dir)
        for path in stale:
            print(f"out of date: {path}")
        return 1 if stale else 0
    for path in sync_bundles(args.bundles_dir):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
