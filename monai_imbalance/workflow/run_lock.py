"""One run per folder at a time: a lock file holding its owner's pid, host and start time.

Two training commands started into the same ``ckpt_dir`` (or two evaluations into the same output folder)
would both write: ``model.pt`` from one run, the checkpoints from the other, two TensorBoard event files. A
bundle therefore takes a lock before it writes anything::

    run_lock: "$monai_imbalance.workflow.acquire_run_lock(@ckpt_dir, command='train') if @rank == 0 else None"
    initialize:
    - $@run_lock                                   # a second run is refused here, in one line
    finalize:
    - '$@run_lock is not None and @run_lock.release()'

The lock is the file ``<folder>/run.lock`` (or another ``name``), created with ``O_CREAT | O_EXCL`` so that of
two runs starting together exactly one gets it; it holds ``{"pid", "host", "started", "command", "token"}`` as JSON.

- Held by a live process: :class:`RunLockedError` names the owner (pid, host, start time, command).
- Held by a process of this host that no longer exists (a run killed by SIGKILL or SIGTERM, a power cut): the
  lock is *stale*; it is taken over and a warning says so.
- Held by a process of another host: it cannot be checked from here, so the run is refused; the message says
  which file to remove once that run has ended.
- Left by an earlier run in this same process that ended without ``release`` (a failed in-process run, e.g.
  :func:`monai_imbalance.compare.runner.run_bundle_config`): taken over quietly.

Released by the bundle's ``finalize`` step, and at interpreter exit (``atexit``: errors, Ctrl-C) for runs that
never reach it. A run killed without a chance to clean up leaves a stale lock, which the next run takes over.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from monai_imbalance.errors import UserError

__all__ = ["RUN_LOCK_NAME", "RunLock", "RunLockedError", "acquire_run_lock"]

RUN_LOCK_NAME = "run.lock"
"""File name of a run folder's lock."""

logger = logging.getLogger(__name__)

_HELD: dict[Path, RunLock] = {}  # the locks this process holds, released at exit


class RunLockedError(UserError, RuntimeError):
    """Another run holds the folder's lock."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The owner recorded in a lock file; ``None`` when it is gone; ``{}`` when it is unreadable (being written)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "a run that is starting (its lock file is still empty)"
    return f"{owner.get('command', 'a run')} pid {owner.get('pid')} on {owner.get('host')} since {owner.get('started')}"


class RunLock:
    """A held lock (see the module docstring); :meth:`release` removes its file. Built by :func:`acquire_run_lock`."""

    def __init__(self, path: Path, owner: dict[str, Any], created_folder: bool) -> None:
        self.path = path
        self.owner = owner
        self._created_folder = created_folder

    @property
    def held(self) -> bool:
        """Whether the lock file still holds this lock."""
        return _read_owner(self.path) == self.owner

    def release(self) -> bool:
        """Remove the lock file if it still holds this lock (and the folder, when the run created it and left it
        empty). Returns whether a file was removed; calling it again does nothing."""
        _HELD.pop(self.path, None)
        if not self.held:
            return False
        self.path.unlink(missing_ok=True)
        if self._created_folder:
            with contextlib.suppress(OSError):  # only if empty: a refused run leaves no folder behind
                self.path.parent.rmdir()
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {_describe(self.owner)})"


def _create(path: Path, owner: dict[str, Any]) -> bool:
    """Create the lock file holding ``owner``; ``False`` if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


def _take_over(path: Path, seen: dict[str, Any]) -> bool:
    """Remove the stale lock ``seen`` if the file still holds it; ``False`` if another run replaced it meanwhile."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.replace(path, aside)  # one of several runs taking over wins; the others find the file gone
    except FileNotFoundError:
        return True
    if _read_owner(aside) != seen:  # a live run's fresh lock: put it back (never over another one)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


def acquire_run_lock(folder: str | os.PathLike, *, command: str = "train", name: str = RUN_LOCK_NAME) -> RunLock:
    """Take the lock of ``folder`` (created if missing) before a run writes into it; see the module docstring.

    Args:
        folder: the run folder (a bundle's ``ckpt_dir``, or an evaluation's output folder).
        command: what the run does, recorded for the message a refused run prints (``train``, ``evaluate``).
        name: the lock file's name in ``folder``.

    Returns:
        the held :class:`RunLock`; release it when the run ends (it is also released at interpreter exit).

    Raises:
        RunLockedError: a live run (or a run on another host) holds the lock.
    """
    folder = Path(folder).absolute()
    created_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    host = socket.gethostname()
    owner = {
        "pid": os.getpid(),
        "host": host,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "token": uuid.uuid4().hex,  # tells two locks of one process apart
    }
    for _ in range(5):  # a lost race with another run taking over a stale lock: look again
        if _create(path, owner):
            lock = RunLock(path, owner, created_folder)
            _HELD[path] = lock
            return lock
        seen = _read_owner(path)
        if seen is None:
            continue  # released meanwhile
        earlier = _HELD.get(path)
        if earlier is not None and seen == earlier.owner:
            logger.info(f"{path}: taking over the lock an earlier run in this process did not release")
        elif seen.get("host") == host and isinstance(seen.get("pid"), int) and not _alive(seen["pid"]):
            logger.warning(f"{path}: taking over the stale lock of {_describe(seen)}, a process that no longer exists")
        elif seen.get("host") not in (None, host):
            raise RunLockedError(
                f"{folder} is in use by {_describe(seen)} ({path}); this host cannot check that run: wait for it to "
                f"end, or remove {path} if it has ended, or choose another folder"
            )
        else:
            raise RunLockedError(
                f"{folder} is in use by {_describe(seen)} ({path}); wait for that run to end or choose another folder"
            )
        _take_over(path, seen)
    raise RunLockedError(f"could not take the lock {path}: other runs keep replacing it")


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        with contextlib.suppress(OSError):
            lock.release()
