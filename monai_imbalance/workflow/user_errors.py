"""Short endings for failed bundle runs: ``error: <message>`` instead of a chain of tracebacks.

MONAI's config parser re-raises every failure of a ``$expression`` as ``RuntimeError: Failed to evaluate
ConfigExpression``, chained (``__cause__``) to the original one; components nest this several times. A wrong
override or a damaged file thus ends in 75-460 lines with the useful sentence in the middle.

:func:`install_excepthook` replaces ``sys.excepthook``: when the uncaught exception, or any exception in
its ``__cause__`` / ``__context__`` chain, is a :class:`~monai_imbalance.errors.UserError` (the user can
fix it: data, overrides, files, checkpoints), only ``error: <message>`` is printed and the process exits
with status 1. Any other exception (a bug) keeps the full traceback. Importing :mod:`monai_imbalance`
installs it for ``python -m monai.bundle run`` commands (see :func:`install_for_bundle_runs`); ``torchrun``
starts each worker that way too.

One mistake fails before any code of this package runs: MONAI applies a run's overrides in
``ConfigWorkflow.__init__``, before the config's ``imports`` are evaluated, so an override under a parent key
that does not exist (``--format_kwargs#knee_foldr#x 1``) ends a ``python -m monai.bundle run`` command in MONAI's
own 46-line traceback (its middle names the closest key: ``By 'knee_foldr', did you mean 'knee_folders'?``).
:func:`run_monai_bundle_command` (``python -m monai_imbalance.bundles run ...``, the same arguments) installs the
hook first and then runs MONAI's command line unchanged, so that mistake ends in one line too.

Set ``MONAI_IMBALANCE_TRACEBACK=1`` to see the full traceback of a user error anyway.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from monai_imbalance.errors import UserError
from monai_imbalance.workflow.overrides import bundle_command, command_line_flags, explain_override_failure
from monai_imbalance.workflow.run_folder import RunFileNotFoundError

__all__ = [
    "find_user_error",
    "format_user_error",
    "install_excepthook",
    "install_for_bundle_runs",
    "run_monai_bundle_command",
]


def find_user_error(error: BaseException | None) -> UserError | None:
    """The first :class:`UserError` in ``error`` and its ``__cause__`` / ``__context__`` chain, or ``None``.

    A user error raised in a ``DataLoader`` worker process reaches the main process only as text: PyTorch
    re-raises the worker's outermost exception type (MONAI's ``RuntimeError: applying transform``) with the
    worker's formatted traceback as its message. That text is searched for a line ``<module>.<Class>: <message>``
    whose class (looked up among the modules already imported, nothing is imported) is a ``UserError``; its
    message comes back as a ``UserError``.

    MONAI's own failure to apply an override under a missing parent key (``KeyError: 'query key: ...'`` from the
    workflow's constructor) counts as the :class:`~monai_imbalance.workflow.UnknownOverrideError` it stands for
    (:func:`~monai_imbalance.workflow.explain_override_failure`).
    """
    first = error
    seen: set[int] = set()
    chain = []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserError):
            return error
        chain.append(error)
        error = error.__cause__ or error.__context__
    for link in chain:
        found = _user_error_from_worker_text(str(link))
        if found is not None:
            return found
    return explain_override_failure(first) if first is not None else None


_WORKER_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*)\.([A-Za-z_]\w*): (.*)$")


def _user_error_from_worker_text(text: str) -> UserError | None:
    if "DataLoader worker process" not in text:
        return None
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _WORKER_ERROR_LINE.match(line)
        if match is None:
            continue
        module, name, first = match.groups()
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and issubclass(kind, UserError):
            rest = []
            for more in lines[index + 1 :]:  # a message of several lines ends at the next blank line
                if not more.strip():
                    break
                rest.append(more)
            return UserError("\n".join([first, *rest]))
    return None


def format_user_error(error: UserError) -> str:
    """``error: <message>`` (the message's own lines kept)."""
    message = str(error).strip() or type(error).__name__
    return f"error: {message}\n"


def _excepthook(previous, kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    user_error = find_user_error(error)
    if user_error is None or os.environ.get("MONAI_IMBALANCE_TRACEBACK", "") not in ("", "0"):
        previous(kind, error, traceback)
        return
    sys.stderr.write(format_user_error(user_error))
    sys.stderr.flush()


def install_excepthook() -> None:
    """Replace ``sys.excepthook`` so that an uncaught user error prints ``error: <message>`` only (exit status 1).

    Idempotent; other exceptions go to the hook that was installed before.
    """
    if getattr(sys.excepthook, "_monai_imbalance", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        _excepthook(previous, kind, error, traceback)

    hook._monai_imbalance = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def install_for_bundle_runs() -> bool:
    """Install the hook when this process is a ``python -m monai.bundle run`` command; say whether it did."""
    if bundle_command(sys.argv) is None:  # the command line only: a Python session's hook stays as it is
        return False
    install_excepthook()
    return True


def run_monai_bundle_command(args: Sequence[str]) -> None:
    """Run ``python -m monai.bundle <args>`` in this process with :func:`install_excepthook` installed first.

    The arguments reach MONAI's command line (Fire) unchanged, ``sys.argv`` included, so the run is the one
    ``python -m monai.bundle <args>`` would make (``torchrun -m monai_imbalance.bundles run ...`` too); only an
    uncaught user error, including an override MONAI cannot apply, ends in ``error: <message>``.

    Args:
        args: the command's arguments after ``python -m monai.bundle``, e.g. ``["run", "--config_file",
            "configs/train.yaml", "--loss_name", "focal"]``.

    Raises:
        RunFileNotFoundError: ``--config_file``, ``--args_file``, ``--meta_file`` or ``--logging_file`` names no
            file (MONAI ends that in a ``FileNotFoundError`` traceback); one line through the hook.
    """
    install_excepthook()
    _check_run_files(args[1:])
    sys.argv = ["monai.bundle", *args]  # runpy replaces argv[0] with MONAI's __main__.py, as ``python -m`` does
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


def _check_run_files(args: Sequence[str]) -> None:
    flags = command_line_flags(args)
    for key in ("config_file", "args_file", "meta_file", "logging_file"):
        value = flags.get(key)
        for file in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(file, str) and not Path(file).is_file():
                raise RunFileNotFoundError(f"--{key} {file}: no such file (relative paths start in {Path.cwd()})")
