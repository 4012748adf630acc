"""The run's own command in its model folder, so that a resume reads the run instead of re-deriving it.

MONAI applies a run's overrides when it builds the workflow, before any code of a bundle runs, so a bundle cannot
take the interrupted run's settings into a later ``--resume true`` command by itself. MONAI's ``--args_file``
can: it supplies a run's arguments from a file, and the command line replaces any of them. Training therefore
writes, beside ``model_settings.json``::

    <ckpt_dir>/run_args.json    {"config_file": [absolute paths], "<override>": value, ...}

(not ``--resume`` / ``--overwrite``: the file never asks to replace a run; ``bundle_root`` absolute, given or not),
and

    python -m monai.bundle run --args_file <ckpt_dir>/run_args.json --resume true [--num_epochs 80]

resumes with exactly the settings the run was started with, however many overrides that took; a resumed run
writes the file anew, so ``--num_epochs 80`` holds for the next resume too.

A ``--resume true`` command without the file's overrides would build another run from the config's defaults
(another data folder, the default loss) and fail later at its data or its settings. :func:`check_resume_command`
refuses it at once, naming the first override the run had and the command lacks, and the command to use; the
full comparison of the settings (``model_settings.check_resume``) still follows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from monai_imbalance.atomic_files import atomic_write
from monai_imbalance.errors import UserError
from monai_imbalance.reporting import to_jsonable
from monai_imbalance.workflow.distributed import global_rank
from monai_imbalance.workflow.overrides import RUN_SWITCHES, bundle_command

__all__ = ["RUN_ARGS_FILE", "ResumeCommandError", "check_resume_command", "resume_command_hint", "write_run_args"]

RUN_ARGS_FILE = "run_args.json"
"""The run's config files and overrides in its checkpoint folder, in the form of MONAI's ``--args_file``."""

_BUNDLE_ROOT = "bundle_root"  # the bundles' root of their default folders (``.`` in their configs)


class ResumeCommandError(UserError, ValueError):
    """A ``--resume true`` command leaves out an override that the run it resumes was started with."""


def _plain_value(config: ConfigParser, key: str) -> Any:
    """The config's own value of ``key`` (``a#b`` for nested ones), or ``None`` when it has none or it is an
    expression or a reference, whose value depends on other settings."""
    value = config.get(key.replace("#", "::"), default=None)
    return None if isinstance(value, str) and value.startswith(("$", "@", "%")) else value


def _run_args(config_file: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The content of :data:`RUN_ARGS_FILE` for a run of ``config_file`` with ``overrides``: the config files as
    absolute paths (the resume may start in another folder), the overrides as MONAI received them (Fire's parsing:
    ``'true'`` stays a string, the bundles read it alike), the run-folder switches left out. ``bundle_root`` (the
    override, else the config's ``.``: the folder training ran in) is recorded as an absolute path, so that the
    default output and data folders it roots stay the same wherever the resume starts."""
    files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file or ())
    kept = {str(key): value for key, value in overrides.items() if key not in RUN_SWITCHES}
    content = {"config_file": [os.path.abspath(f) for f in files], **to_jsonable(kept)}
    root = content.get(_BUNDLE_ROOT)
    if root is None and files:
        root = _plain_value(ConfigParser(ConfigParser.load_config_files(files)), _BUNDLE_ROOT)
    if isinstance(root, str) and not root.startswith(("$", "@", "%")):
        content[_BUNDLE_ROOT] = os.path.abspath(root)
    return content


def write_run_args(ckpt_dir: str | os.PathLike) -> Path | None:
    """Write the running bundle command's :data:`RUN_ARGS_FILE` into ``ckpt_dir`` (rank 0, whole file).

    Returns:
        its path, or ``None`` outside a bundle run (a call from Python code has no command) and on other ranks.
    """
    command = bundle_command()
    if command is None or global_rank() != 0:
        return None
    path = Path(ckpt_dir) / RUN_ARGS_FILE
    with atomic_write(path) as f:
        f.write(json.dumps(_run_args(*command), indent=2) + "\n")
    return path


def resume_command_hint(ckpt_dir: str | os.PathLike) -> str:
    """`` (python -m monai.bundle run --args_file <ckpt_dir>/run_args.json --resume true)`` when the folder has
    the file, else ``""``: the end of a message refusing a resume."""
    path = Path(ckpt_dir) / RUN_ARGS_FILE
    return f" (python -m monai.bundle run --args_file {path} --resume true)" if path.is_file() else ""


def _same_value(a: Any, b: Any) -> bool:
    return json.dumps(to_jsonable(a), sort_keys=True) == json.dumps(to_jsonable(b), sort_keys=True)


def check_resume_command(ckpt_dir: str | os.PathLike) -> None:
    """Refuse a ``--resume true`` command that leaves out an override of the run it resumes (see the module
    docstring); nothing to check without a :data:`RUN_ARGS_FILE` (a run of 0.2) or outside a bundle run.

    An override the command leaves out counts only where the config's own value differs from the recorded one
    (or is an expression, whose value is not known yet): ``--loss_name lmf`` given to a run whose default is
    ``lmf`` may be left out.

    Raises:
        ResumeCommandError: naming the override, its value in the run, and the ``--args_file`` command.
    """
    path = Path(ckpt_dir) / RUN_ARGS_FILE
    command = bundle_command()
    if command is None or not path.is_file():
        return
    recorded = json.loads(path.read_text())
    recorded_files = recorded.pop("config_file", None)
    config_file, overrides = command
    config = ConfigParser(ConfigParser.load_config_files(config_file or recorded_files))
    for key, value in recorded.items():
        if key in overrides:
            continue
        default = _plain_value(config, key)
        if key == _BUNDLE_ROOT and isinstance(default, str):
            default = os.path.abspath(default)  # recorded absolute (see _run_args)
        if default is not None and _same_value(default, value):
            continue
        raise ResumeCommandError(
            f"cannot resume the run in {ckpt_dir}: it was started with --{key} {json.dumps(value)}, and this "
            f"command does not give it; resume with the run's own settings: python -m monai.bundle run --args_file "
            f"{path} --resume true (a key given beside it replaces the file's, e.g. --num_epochs to train longer)"
        )
