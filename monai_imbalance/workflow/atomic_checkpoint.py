"""Checkpoints that a signal cannot leave half-written.

MONAI's ``CheckpointSaver`` writes with ignite's ``DiskSaver(atomic=False)``: ``torch.save`` straight into
``last_checkpoint_epoch=N.pt`` or ``model.pt``. A run stopped by SIGINT / SIGTERM (Ctrl-C, a job scheduler) while
it writes leaves a truncated file; for the fixed name ``model.pt`` the previous best model is even removed before
the new one is written. :class:`AtomicCheckpointSaver` is the same handler with every file written to a temporary
file in the same folder and then renamed over the target (``os.replace``, atomic on one file system), so a
checkpoint is either the old one or the new one, never a part. A fixed file name (``key_metric_filename``) is
not removed before the next save replaces it, so ``model.pt`` always holds a complete model.

The files are written by :func:`~monai_imbalance.atomic_files.atomic_write`, which gives them the mode a plain
``open()`` would (the umask's; ignite's own atomic writer gives ``0644`` whatever the umask, and MONAI chose
``atomic=False`` because older ignite versions left ``0600``). A process killed by SIGKILL while writing may
leave its temporary file (``.<name>.<random>.tmp``) in the folder; nothing reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver

from monai_imbalance.atomic_files import atomic_write

__all__ = ["AtomicCheckpointSaver"]


class _AtomicDiskSaver(DiskSaver):
    """``DiskSaver(atomic=True)`` with MONAI's optional fixed file name, which is replaced, never removed."""

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        with atomic_write(path, "wb") as file:
            func(checkpoint, file, **self.kwargs)

    def remove(self, filename: str) -> None:
        # ignite removes the oldest file before it saves the new one; a fixed name is replaced by that save
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` (same arguments) whose files are written atomically; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                fixed_name = getattr(checkpoint.save_handler, "filename", None)
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, fixed_name)
