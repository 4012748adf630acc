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

With ``record_file`` (the run's ``metrics.json``), every save of the key-metric file (``model.pt``) also records
which epoch it holds: ``"best_checkpoint": {"file", "epoch", "sha256", "key_metric", "value"}``, so that an
evaluation of ``model.pt`` can say which epoch it evaluated (and, through the hash, that the file is the one
recorded).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver

from monai_imbalance.atomic_files import atomic_write
from monai_imbalance.reporting import update_metrics_json

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["BEST_CHECKPOINT_KEY", "AtomicCheckpointSaver", "file_sha256"]

BEST_CHECKPOINT_KEY = "best_checkpoint"
"""Entry of a run's ``metrics.json`` recording the key-metric checkpoint: file, epoch, SHA-256, metric."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _AtomicDiskSaver(DiskSaver):
    """``DiskSaver(atomic=True)`` with MONAI's optional fixed file name, which is replaced, never removed."""

    def __init__(
        self, dirname: str, filename: str | None = None, on_saved: Callable[[Path], None] | None = None
    ) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename
        self.on_saved = on_saved

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)
        if self.on_saved is not None:
            self.on_saved(Path(self.dirname) / (self.filename or filename))

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        with atomic_write(path, "wb") as file:
            func(checkpoint, file, **self.kwargs)

    def remove(self, filename: str) -> None:
        # ignite removes the oldest file before it saves the new one; a fixed name is replaced by that save
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` whose files are written atomically; see the module docstring.

    Args:
        args, kwargs: ``monai.handlers.CheckpointSaver``'s.
        record_file: a metrics JSON file in which every key-metric save records its epoch and SHA-256 under
            ``"best_checkpoint"`` (``None``: no record).
    """

    def __init__(self, *args: Any, record_file: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record_file = record_file
        self._engine: Engine | None = None
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                fixed_name = getattr(checkpoint.save_handler, "filename", None)
                on_saved = self._record if checkpoint is self._key_metric_checkpoint and record_file else None
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, fixed_name, on_saved)

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        super().attach(engine)

    def _record(self, path: Path) -> None:
        """Record the key-metric file just written: the epoch it holds (the evaluator runs as the trainer's epoch)."""
        state = self._engine.state if self._engine is not None else None
        name = getattr(state, "key_metric_name", None)
        record = {
            "file": path.name,
            "epoch": int(state.epoch) if state is not None else None,
            "sha256": file_sha256(path),
            "key_metric": name,
            "value": state.metrics.get(name) if state is not None and name is not None else None,
        }
        update_metrics_json(self.record_file, {BEST_CHECKPOINT_KEY: record})
