"""Checkpoints that a signal cannot leave half-written.

MONAI's ``CheckpointSaver`` writes with ignite's ``DiskSaver(atomic=False)``: ``torch.save`` straight into
``last_checkpoint_epoch=N.pt`` or ``model.pt``. A run stopped by SIGINT / SIGTERM (Ctrl-C, a job scheduler) while
it writes leaves a truncated file; for the fixed name ``model.pt`` the previous best model is even removed before
the new one is written. :class:`AtomicCheckpointSaver` is the same handler with every file written to a temporary
file in the same folder and then renamed over the target (``os.replace``, atomic on one file system), so a
checkpoint is either the old one or the new one, never a part. A fixed file name (``key_metric_filename``) is
not removed before the next save replaces it, so ``model.pt`` always holds a complete model.

ignite gives the renamed file group and others read permission (MONAI chose ``atomic=False`` because older
ignite versions did not). A process killed by SIGTERM while writing may leave its temporary file
(``tmp<random>``, without the ``.pt`` suffix) in the folder; nothing reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver

__all__ = ["AtomicCheckpointSaver"]


class _AtomicDiskSaver(DiskSaver):
    """``DiskSaver(atomic=True)`` with MONAI's optional fixed file name, which is replaced, never removed."""

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)

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
