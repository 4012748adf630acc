"""Whole-file writes: a reader sees the old file or the new one, never a part, with the permissions of any new file.

Results (``metrics.json``, ``predictions.csv``) and checkpoints are written to a temporary file in the target's
folder and then renamed over the target (``os.replace``, atomic on one file system), so a run stopped while it
writes (SIGINT, SIGTERM, a full disk) never leaves a truncated file. :func:`tempfile.mkstemp` creates that file
``0600`` whatever the umask, and a rename keeps the mode: the results of a run in a shared folder could not be
read by the colleagues the user's umask lets read every other file. :func:`atomic_write` gives the finished file
the mode ``open(path, "w")`` would have left it with: the replaced file's own mode, else ``0666 & ~umask``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "current_umask", "new_file_mode"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux ``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and restore (os.umask is the only portable reader)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666 & ~umask`` (e.g. ``0o644`` under umask ``022``)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Write ``path`` whole: yield a file in ``path``'s folder, then give it the mode ``open(path, "w")`` would
    leave (an existing file's mode, else :func:`new_file_mode`) and rename it over ``path``; on an error the
    temporary file is removed and ``path`` is left as it was.

    Args:
        path: the file to (re)place; its folder must exist.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        open_kwargs: further :func:`open` arguments, e.g. ``newline=""`` for :mod:`csv`.

    Example::

        with atomic_write(folder / "metrics.json") as f:
            json.dump(content, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as file:
            yield file
        try:
            file_mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            file_mode = new_file_mode()
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
