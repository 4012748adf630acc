"""Run a bundle of ``bundles/`` as a user does: ``python -m monai.bundle run`` (or ``torchrun``) in a subprocess,
or the same command in this process (:func:`run_bundle_in_process`, no interpreter start-up and MONAI import)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLES = REPO_ROOT / "bundles"


def _config_files(configs: Sequence[str]) -> str:
    files = [f"configs/{name}.yaml" for name in configs]
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def _override_args(overrides: Mapping[str, Any]) -> list[str]:
    args = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            value = str(value).lower()  # the spelling a user types: --resume true
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        args += [f"--{key}", str(value)]
    return args


def _bundle_args(bundle: str, configs: Sequence[str], overrides: Mapping[str, Any] | None) -> tuple[Path, list[str]]:
    """The bundle folder and the arguments after ``python -m monai.bundle``: ``run --config_file ... --key value``."""
    root = BUNDLES / bundle
    overrides = {"bundle_root": str(root), **(overrides or {})}
    return root, ["run", "--config_file", _config_files(configs), *_override_args(overrides)]


def _check_status(result: subprocess.CompletedProcess, expect_failure: bool) -> None:
    output = f"$ {' '.join(result.args)}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    if expect_failure:
        assert result.returncode != 0, f"expected the run to fail:\n{output}"
    else:
        assert result.returncode == 0, f"bundle run failed:\n{output}"


def run_bundle(
    bundle: str,
    configs: Sequence[str] = ("train",),
    overrides: Mapping[str, Any] | None = None,
    expect_failure: bool = False,
    nproc: int | None = None,
    timeout: float = 600,
    command_module: str = "monai.bundle",
) -> subprocess.CompletedProcess:
    """Run ``configs`` of ``bundles/<bundle>`` with ``--key value`` overrides in a new interpreter; check the exit
    status. Use it where the command line itself is under test (one such run per bundle, and ``torchrun``);
    :func:`run_bundle_in_process` runs the same command several seconds sooner.

    Args:
        bundle: folder name under ``bundles/``.
        configs: config names layered in order, e.g. ``("train", "evaluate")``.
        overrides: command-line overrides (``bundle_root`` defaults to the bundle folder).
        expect_failure: assert a non-zero exit instead of success.
        nproc: run under ``torchrun --nproc_per_node=nproc`` (Gloo on the CPU).
        timeout: seconds before the run is killed.
        command_module: the module run with ``python -m``: MONAI's command line, or ``monai_imbalance.bundles``
            (the same arguments, with one-line errors).
    """
    root, args = _bundle_args(bundle, configs, overrides)
    module = ["-m", command_module, *args]
    if nproc:  # torchrun, spelled so that it uses this interpreter
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *module]
    else:
        command = [sys.executable, *module]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    _check_status(result, expect_failure)
    return result


class InProcessRun(subprocess.CompletedProcess):
    """What :func:`run_bundle_in_process` returns: a ``CompletedProcess`` (``args``, ``returncode``, ``stdout``,
    ``stderr``) plus ``workflow``, the ``monai.bundle.ConfigWorkflow`` that ran (``None`` when it failed), whose
    ``workflow.parser.get_parsed_content(id)`` gives the very objects the run used."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str, workflow: Any = None) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.workflow = workflow


@contextlib.contextmanager
def _isolated_process_state(root: Path, argv: list[str]) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Run a block as if it were a fresh ``python -m monai.bundle`` process, and put this one back afterwards.

    Inside: working directory ``root``; ``sys.argv`` the command line (the bundles read it back to check and
    record the overrides); stdout and stderr into the yielded buffers (the bundle's ``logging.conf`` binds its
    handler to the stdout of that moment, and the handlers that loggers made earlier, MONAI's at import, are
    pointed there for the block, so the whole log lands there); one torch thread (``OMP_NUM_THREADS=1``);
    warnings ignored (``PYTHONWARNINGS=ignore``). Afterwards the working directory, ``sys.argv``, the root
    logger (``logging.conf`` replaces its handlers, pytest's ``caplog`` among them), the environment, the torch
    thread count, the determinism flags and MONAI's seed (``set_determinism``) and the Python, NumPy and torch
    random states are restored.
    """
    import monai.utils.misc

    root_logger = logging.getLogger()
    saved = {
        "cwd": os.getcwd(),
        "argv": sys.argv[:],
        "environ": dict(os.environ),
        "handlers": root_logger.handlers[:],
        "level": root_logger.level,
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
        "monai_seed": monai.utils.misc._seed,
        "rng": (random.getstate(), np.random.get_state(), torch.get_rng_state()),  # noqa: NPY002 (seeded globally)
    }
    stdout, stderr = io.StringIO(), io.StringIO()
    # loggers made before (MONAI's at import, handlers of earlier runs) print to the stdout / stderr of their
    # making, maybe a test's captured output long closed: send them here too (file handlers stay as they are)
    moved = [
        (handler, handler.stream)
        for logger in [root_logger, *logging.Logger.manager.loggerDict.values()]
        for handler in getattr(logger, "handlers", [])
        if type(handler) is logging.StreamHandler
    ]
    try:
        for handler, stream in moved:
            is_stderr = stream in (sys.stderr, sys.__stderr__) or getattr(stream, "name", None) == "<stderr>"
            _set_stream(handler, stderr if is_stderr else stdout)
        os.chdir(root)
        sys.argv = argv
        torch.set_num_threads(1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            warnings.simplefilter("ignore")
            yield stdout, stderr
    finally:
        for handler, stream in moved:
            _set_stream(handler, stream)
        os.chdir(saved["cwd"])
        sys.argv = saved["argv"]
        if dict(os.environ) != saved["environ"]:
            os.environ.clear()
            os.environ.update(saved["environ"])
        for handler in root_logger.handlers[:]:
            if handler not in saved["handlers"]:
                root_logger.removeHandler(handler)
                handler.close()
        for handler in saved["handlers"]:
            if handler not in root_logger.handlers:
                root_logger.addHandler(handler)
        root_logger.setLevel(saved["level"])
        torch.set_num_threads(saved["threads"])
        torch.use_deterministic_algorithms(saved["deterministic"])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved["cudnn"]
        monai.utils.misc._seed = saved["monai_seed"]
        python_rng, numpy_rng, torch_rng = saved["rng"]
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)  # noqa: NPY002
        torch.set_rng_state(torch_rng)


def _set_stream(handler: logging.StreamHandler, stream: Any) -> None:
    """``handler.setStream(stream)``, except that a closed current stream (the captured output of an earlier test,
    which such a handler may still hold) is not flushed: ``setStream`` would raise ``ValueError`` on it."""
    if getattr(handler.stream, "closed", False):
        handler.stream = stream
    else:
        handler.setStream(stream)


def _parse_run_args(args: Sequence[str]) -> dict[str, Any]:
    """``--key value`` pairs of a ``monai.bundle run`` command line, each value read as Fire reads it."""
    from fire.parser import DefaultParseValue

    if len(args) % 2 or not all(key.startswith("--") for key in args[::2]):
        raise ValueError(f"expected --key value pairs after `run`, got {list(args)}")
    return {key[2:]: DefaultParseValue(value) for key, value in zip(args[::2], args[1::2], strict=True)}


def _failure_text(error: BaseException) -> str:
    """What the failed command prints on stderr: ``error: <message>`` for a user error (the hook that importing
    ``monai_imbalance`` installs for bundle runs), else the traceback."""
    from monai_imbalance.workflow import find_user_error, format_user_error

    user_error = find_user_error(error)
    if user_error is not None and os.environ.get("MONAI_IMBALANCE_TRACEBACK", "") in ("", "0"):
        return format_user_error(user_error)
    return "".join(traceback.format_exception(error))


def run_bundle_in_process(
    bundle: str,
    configs: Sequence[str] = ("train",),
    overrides: Mapping[str, Any] | None = None,
    expect_failure: bool = False,
    before_run: Callable[[Any], None] | None = None,
) -> InProcessRun:
    """Run the command :func:`run_bundle` would run, ``python -m monai.bundle run --config_file ... --key value``,
    in this process (:func:`run_command_in_process`); check its outcome as :func:`run_bundle` checks the exit
    status.

    Args:
        bundle: folder name under ``bundles/`` (or a bundle folder's path).
        configs: config names layered in order, e.g. ``("train", "evaluate")``.
        overrides: command-line overrides (``bundle_root`` defaults to the bundle folder).
        expect_failure: assert that the run failed instead of succeeded.
        before_run: ``callable(parser)`` called after ``initialize`` and before ``run``, e.g. to attach a handler
            to a parsed engine (parsed objects are cached, so ``run`` uses the same ones).
    """
    root, args = _bundle_args(bundle, configs, overrides)
    result = run_command_in_process(args, cwd=root, before_run=before_run)
    _check_status(result, expect_failure)
    return result


def run_command_in_process(
    args: Sequence[str], *, cwd: str | os.PathLike, before_run: Callable[[Any], None] | None = None
) -> InProcessRun:
    """Run ``python -m monai.bundle <args>`` (``args``: ``run --config_file <files> --key value ...``) from ``cwd``
    in this process; return its outcome without judging it.

    The command line is read back as Fire reads it (``--resume true`` arrives as the string ``'true'``, a JSON
    dict's ``false`` as ``'false'``), then ``monai.bundle.scripts.create_workflow`` and the workflow's ``run`` and
    ``finalize`` run as in ``monai.bundle.scripts.run``, inside :func:`_isolated_process_state`: ``stdout`` holds
    the bundle's log, a failure becomes exit status 1 with what the command would print on ``stderr``. What
    differs from a new interpreter: modules stay imported (their module-level caches included) and nothing runs
    at interpreter exit but the release of the run folders' locks (:mod:`monai_imbalance.workflow.run_lock`).

    Args:
        args: the command's arguments after ``python -m monai.bundle``; only ``run`` with ``--key value`` pairs.
        cwd: the working directory of the command (relative config paths are read from there).
        before_run: as in :func:`run_bundle_in_process`.
    """
    from monai.bundle.scripts import create_workflow

    import monai_imbalance  # noqa: F401  (short names in the configs, as in a bundle run)

    args = [str(arg) for arg in args]
    if args[:1] != ["run"]:
        raise ValueError(f"only `python -m monai.bundle run ...` runs in process, not {args[:1]}")
    argv = [str(Path(sys.modules["monai.bundle"].__file__).with_name("__main__.py")), *args]
    command = [sys.executable, "-m", "monai.bundle", *args]
    workflow, returncode = None, 0
    with _isolated_process_state(Path(cwd), argv) as (stdout, stderr):
        try:
            workflow = create_workflow(**_parse_run_args(args[1:]))  # create_workflow initializes
            if before_run is not None:
                before_run(workflow.parser)
            workflow.run()
            workflow.finalize()
        except SystemExit as exit:
            returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except Exception as error:  # the uncaught exception of the command
            returncode = 1
            sys.stderr.write(_failure_text(error))
        finally:  # what the command does at interpreter exit: release the run folders' locks still held
            from monai_imbalance.workflow.run_lock import _release_all

            _release_all()
    return InProcessRun(command, returncode, stdout.getvalue(), stderr.getvalue(), workflow)


def parse_bundle(bundle: str, configs: Sequence[str] = ("train",), overrides: Mapping[str, Any] | None = None):
    """The bundle's configs, layered and overridden as ``monai.bundle run`` does, parsed in this process.

    Cheaper than :func:`run_bundle` (no new interpreter) for checks of single config items, e.g.
    ``parse_bundle(...).get_parsed_content("datalists")``.
    """
    from monai.bundle import ConfigParser

    import monai_imbalance  # noqa: F401  (short names in the configs)

    root = BUNDLES / bundle
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f"{name}.yaml") for name in configs])
    parser.update({"bundle_root": str(root), **(overrides or {})})
    return parser


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def quick_run_overrides(tmp_path: Path, dataset_dir: str | os.PathLike, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides for a seconds-long test run of any bundle: 2 epochs, no workers or progress bar, every output
    (checkpoints, logs, evaluation) under ``tmp_path``; ``settings`` adds or replaces entries (network, sizes)."""
    return {
        "dataset_dir": str(dataset_dir),
        "num_epochs": 2,
        "num_workers": 0,
        "progress_bar": False,
        "ckpt_dir": str(tmp_path / "models"),
        "log_dir": str(tmp_path / "logs"),
        "output_dir": str(tmp_path / "eval"),
        **settings,
    }


def tiny_dermamnist_overrides(tmp_path: Path, shared_data: Path, **settings: Any) -> dict[str, Any]:
    """:func:`quick_run_overrides` of a classification bundle on a DermaMNIST subset (28 images per split, small
    CNN at 32 px): seconds per run; ``settings`` adds or replaces entries."""
    return quick_run_overrides(
        tmp_path,
        shared_data / "medmnist",
        {
            "data_kwargs": {"flag": "dermamnist", "download": False},
            "max_items_per_split": 28,
            "network_name": "small_cnn",
            "image_size": 32,
            "batch_size": 14,
            **settings,
        },
    )
