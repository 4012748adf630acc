"""Running a bundle's configs in this process, as ``python -m monai.bundle run`` does, for the comparison tables.

One training run and one evaluation run of a bundle are the building blocks of every table in
:mod:`monai_imbalance.compare`:

- :func:`train_run` trains with ``configs/train.yaml`` into ``<run_dir>/{models,logs}`` (``output_dir`` is
  ``<run_dir>/eval``);
- :func:`evaluate_run` evaluates a checkpoint with ``configs/train.yaml`` + ``configs/evaluate.yaml``; the bundle
  writes ``<output_dir>/<evaluation name>/metrics.json`` (e.g. ``test-model``, ``test-model-mc50``), which
  :func:`evaluation_metrics_file` returns.

Overrides are the bundle's command-line switches as a mapping (``{"loss_name": "focal"}`` for
``--loss_name focal``); :func:`parse_overrides` reads them from command-line words.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_imbalance.workflow import bundle_run_in_process, parse_override_value

__all__ = [
    "bundle_folder",
    "checkpoint_file",
    "evaluate_run",
    "evaluation_metrics_file",
    "format_overrides",
    "parse_overrides",
    "run_bundle_config",
    "train_run",
]


def parse_overrides(args: Sequence[str] | str) -> dict[str, Any]:
    """``["--key", "value", "--other=1"]`` -> ``{"key": "value", "other": 1}``, as ``monai.bundle run`` reads them.

    A single string is split as a shell does first (``"--loss_name ce --loss_kwargs '{\\"gamma\\": 2}'"``).
    Values are read as Fire reads them for ``monai.bundle run``
    (:func:`~monai_imbalance.workflow.parse_override_value`): Python literals and YAML-like ``{train: 0.6}`` are
    converted; other words, ``true``/``false`` included, stay strings (the bundles read switches with ``as_bool``).

    Raises:
        ValueError: an argument that is not ``--key``, a key without a value, or a string a shell cannot split.
    """
    if isinstance(args, str):
        try:
            args = shlex.split(args)
        except ValueError as e:
            raise ValueError(f"cannot split the bundle overrides {args!r}: {e}") from e
    out: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(f"expected a bundle override '--key value', got {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(items):
                raise ValueError(f"bundle override {arg!r} has no value")
            key, value = arg[2:], items[i + 1]
            i += 2
        out[key] = parse_override_value(value)
    return out


def format_overrides(overrides: Mapping[str, Any]) -> str:
    """The command-line spelling of ``overrides``, read back by :func:`parse_overrides` (``--key value ...``).

    Booleans are written ``true``/``false`` (as a user types them), other non-strings as Python literals.
    """
    words = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, str):
            text = value
        else:
            text = repr(value)
        words.append(f"--{key} {_quote(text)}")
    return " ".join(words)


def _quote(text: str) -> str:
    """Shell quoting that stays readable: ``"{'a': 1}"`` rather than ``shlex.quote``'s ``'{'"'"'a'"'"': 1}'``."""
    if "'" in text and not any(c in text for c in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def _config_files(bundle: Path, configs: Sequence[str]) -> list[str]:
    files = [bundle / "configs" / (name if name.endswith((".yaml", ".json")) else f"{name}.yaml") for name in configs]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"bundle config(s) not found: {missing}")
    return [str(f) for f in files]


def bundle_folder(bundle: str | Path) -> Path:
    """The bundle's absolute folder.

    Raises:
        FileNotFoundError: ``bundle`` has no ``configs/`` folder.
    """
    path = Path(bundle).expanduser().resolve()
    if not (path / "configs").is_dir():
        raise FileNotFoundError(f"{bundle} is not a bundle folder (no configs/ in {path})")
    return path


def checkpoint_file(checkpoint: str | Path) -> Path:
    """``checkpoint`` itself, or ``<checkpoint>/model.pt`` for a folder.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (give a .pt file or a folder holding model.pt)")
    return path


def run_bundle_config(
    bundle: str | Path,
    configs: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    before_run: Callable[[Any], None] | None = None,
) -> Any:
    """Run ``configs`` of a bundle in this process, as ``python -m monai.bundle run --config_file [...]`` does.

    Args:
        bundle: the bundle folder (holding ``configs/``).
        configs: config names layered in order, e.g. ``["train", "evaluate"]``.
        overrides: ``--key value`` overrides (``bundle_root`` defaults to the bundle folder).
        before_run: optional ``callable(parser)`` called after ``initialize`` and before ``run``, e.g. to attach
            a handler to a parsed engine (parsed objects are cached, so ``run`` uses the same ones).

    Returns:
        the finished ``monai.bundle.ConfigWorkflow``.
    """
    from monai.bundle import ConfigWorkflow

    import monai_imbalance  # noqa: F401  (short names in the configs)

    root = bundle_folder(bundle)
    settings = {"bundle_root": str(root), **dict(overrides or {})}
    files = _config_files(root, configs)
    # the bundles' initialize checks these overrides against the configs and records them, as on the command line
    with bundle_run_in_process(files, settings):
        workflow = ConfigWorkflow(config_file=files, workflow_type=None, **settings)
        workflow.initialize()
        if before_run is not None:
            before_run(workflow.parser)
        workflow.run()
        workflow.finalize()
    return workflow


def train_run(
    bundle: str | Path, run_dir: str | Path, seed: int = 0, overrides: Mapping[str, Any] | None = None
) -> Path:
    """Train the bundle (``configs/train.yaml``) with ``seed`` into ``run_dir``; return the checkpoint folder.

    The run writes ``<run_dir>/models`` (``ckpt_dir``) and ``<run_dir>/logs`` (``log_dir``); its ``output_dir``
    is ``<run_dir>/eval``. The bundle refuses to overwrite an earlier run's checkpoints there unless
    ``overrides`` holds ``overwrite=True`` (start afresh) or ``resume=True`` (continue it).
    """
    run_dir = Path(run_dir)
    settings = {
        **dict(overrides or {}),
        "seed": int(seed),
        "ckpt_dir": str(run_dir / "models"),
        "log_dir": str(run_dir / "logs"),
        "output_dir": str(run_dir / "eval"),
    }
    run_bundle_config(bundle, ["train"], settings)
    return run_dir / "models"


def evaluate_run(
    bundle: str | Path,
    checkpoint: str | Path,
    output_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    log_dir: str | Path | None = None,
    before_run: Callable[[Any], None] | None = None,
) -> Any:
    """Evaluate ``checkpoint`` with the bundle's ``configs/train.yaml`` + ``configs/evaluate.yaml``.

    Args:
        bundle: the bundle folder.
        checkpoint: ``model.pt`` or the folder holding it; that folder is the run's ``ckpt_dir`` (where
            ``--use_threshold true`` finds the decision rule chosen in training).
        output_dir: the bundle writes ``metrics.json`` and its figures into ``<output_dir>/<evaluation name>``
            (:func:`evaluation_metrics_file`).
        overrides: further bundle overrides (data, network, ``seed``, ``mc_dropout``, ``use_threshold``,
            ``overwrite`` to replace an earlier evaluation of the same name, ...).
        log_dir: TensorBoard folder (the bundle writes under ``<log_dir>/evaluate/<evaluation name>``); default
            ``<output_dir>/logs``.
        before_run: see :func:`run_bundle_config`.

    Returns:
        the finished ``monai.bundle.ConfigWorkflow`` (e.g. ``workflow.parser.get_parsed_content("eval_split")``).

    Raises:
        FileNotFoundError: no checkpoint.
    """
    ckpt = checkpoint_file(checkpoint)
    out = Path(output_dir)
    settings = {
        **dict(overrides or {}),
        "ckpt_dir": str(ckpt.parent),
        "ckpt_path": str(ckpt),
        "output_dir": str(out),
        "log_dir": str(out / "logs" if log_dir is None else log_dir),
    }
    return run_bundle_config(bundle, ["train", "evaluate"], settings, before_run=before_run)


def evaluation_metrics_file(workflow: Any) -> Path:
    """The ``metrics.json`` a finished :func:`evaluate_run` wrote: ``<output_dir>/<evaluation name>/metrics.json``."""
    return Path(workflow.parser.get_parsed_content("eval_dir")) / "metrics.json"
