"""The bundles' TensorBoard writer: created at its first write, and the run's settings as HParams.

**Lazy creation.** ``torch.utils.tensorboard.SummaryWriter`` opens its event file when it is constructed. A
bundle defines its writer as a config item, and every parse that instantiates the item would leave an empty
event file behind, which TensorBoard then lists as a run: a run refused because its folder holds an earlier run
(``--resume`` / ``--overwrite`` missing), a misspelt override, ``ConfigWorkflow(...).check_properties()``.
:class:`LazySummaryWriter` keeps the arguments and builds the writer at the first call that writes (or needs
the writer): ``add_scalar``, ``add_figure``, ``_get_file_writer`` ... ``flush`` and ``close`` of a writer that
never wrote do nothing, and :func:`write_hparams` on a writer not yet created keeps the summary until the first
write: the settings a bundle records in its ``initialize`` step appear with the run's first scalar, and a workflow
that is initialised and checked but never run leaves no file.

**Settings as HParams.** :func:`write_hparams` writes a run's settings as the HParams plugin's *session start*
summary into the run's own folder, so that TensorBoard's HParams tab shows one row per run folder with its
settings beside the last value of every scalar of the run and of its sub-folders (``logs/evaluate`` appears as
the metric group ``evaluate``). It uses the plugin's own ``hparams_pb`` (``torch.utils.tensorboard.summary.hparams``
writes booleans as the numbers 0 and 1) and deliberately writes no *experiment* summary (the first of the three
summaries of ``torch.utils.tensorboard.summary.hparams``): TensorBoard uses the first experiment summary it
finds for *all* runs, so runs whose settings differ (the variants of ``python -m monai_imbalance.compare grid``)
would lose the columns of all but one run, and an experiment summary written before the metrics exist lists
no metric at all. Without one, TensorBoard builds the experiment from every run: the union of the settings and
every scalar tag. ``SummaryWriter.add_hparams`` is not used either: it writes into a new sub-folder per call,
one extra "run" each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["LazySummaryWriter", "write_hparams"]


class LazySummaryWriter:
    """A ``SummaryWriter`` whose event file is created at the first write (see the module docstring).

    Args:
        log_dir: the run's TensorBoard folder.
        kwargs: other ``torch.utils.tensorboard.SummaryWriter`` arguments (``comment``, ``flush_secs``, ...).

    Every attribute but ``log_dir``, ``created``, ``flush`` and ``close`` is the real writer's; reading one
    creates the writer (and its event file), which first writes the summaries kept by :func:`write_hparams`.
    Use it wherever a ``SummaryWriter`` is expected, e.g. as ``summary_writer`` of MONAI's
    ``TensorBoardStatsHandler``.
    """

    def __init__(self, log_dir: str | os.PathLike, **kwargs: Any) -> None:
        self.log_dir = os.fspath(log_dir)
        self._kwargs = kwargs
        self._writer: SummaryWriter | None = None
        self._pending: list[Any] = []  # summaries waiting for the first write

    @property
    def created(self) -> bool:
        """Whether the real writer (and so an event file) exists."""
        return self._writer is not None

    @property
    def writer(self) -> SummaryWriter:
        """The real writer, created now if need be."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
            for summary in self._pending:
                self._writer._get_file_writer().add_summary(summary)
            self._pending.clear()
        return self._writer

    def __getattr__(self, name: str) -> Any:
        # only reached for names this class does not define; dunder and own private names (looked up by copy,
        # pickle and during construction) must not create the writer
        if name.startswith("__") or name in ("_kwargs", "_pending", "_writer"):
            raise AttributeError(name)
        return getattr(self.writer, name)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(log_dir={self.log_dir!r}, created={self.created})"


def _hparam_value(value: Any) -> int | float | str | bool:
    """A value the HParams plugin accepts (bool, number, string); ``None`` and containers as JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    flat: dict[str, int | float | str | bool] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = _hparam_value(value)
    return flat


def write_hparams(summary_writer: Any, settings: Mapping[str, Any]) -> dict[str, int | float | str | bool]:
    """Write ``settings`` as the HParams of the run that ``summary_writer`` writes (its own folder, no sub-run).

    Nested mappings are flattened with ``/`` (``{"overrides": {"seed": 1}}`` gives ``overrides/seed``); values
    other than booleans, numbers and strings are written as JSON text (``None`` as ``"null"``). Only the session
    start summary is written, see the module docstring for why. A :class:`LazySummaryWriter` that has not written
    yet keeps it until its first write.

    Args:
        summary_writer: a ``SummaryWriter`` or :class:`LazySummaryWriter`.
        settings: ``{name: value}``, e.g. the dict that :func:`monai_imbalance.workflow.record_run_settings`
            returns.

    Returns:
        the flat ``{name: value}`` written.
    """
    from tensorboard.plugins.hparams.summary_v2 import hparams_pb

    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a mapping of names to values, got {type(settings).__name__}")
    flat = _flatten(settings)
    summary = hparams_pb(flat)
    if isinstance(summary_writer, LazySummaryWriter) and not summary_writer.created:
        summary_writer._pending.append(summary)
        return flat
    summary_writer._get_file_writer().add_summary(summary)
    summary_writer.flush()
    return flat
