"""Ignite handler that writes an evaluator's metrics (``engine.state.metrics``) into the run's ``metrics.json``.

MONAI's metric handlers (``IgniteMetricHandler`` and its subclasses, here the segmentation metrics of
:mod:`monai_imbalance.metrics.segmentation`) leave their results in ``engine.state.metrics``;
MONAI's ``MetricsSaver`` writes them as CSV files. The bundles keep every result of a run in one
``metrics.json`` (:func:`monai_imbalance.reporting.update_metrics_json` merges the entries of several
handlers), so this handler, when an evaluator run completes, merges::

    {key: {<metric name>: value, ..., "epoch": N, "num_samples": M, **extra}}

into ``metrics_file`` (other keys of the file are kept). ``num_samples`` counts the samples the run
evaluated (summed over processes). Non-finite values are stored as ``null`` (JSON has no NaN).

Segmentation: with ``foreground_transform`` (the metrics' ``(y_pred, y)``) the handler also counts predicted and
labelled foreground pixels and adds ``foreground_share_predicted``, ``foreground_share_labels`` and a
``warnings`` list: masks that are (almost) all background or all foreground
(:func:`monai_imbalance.metrics.mask_share_warnings`), also logged as warnings when the report is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.metrics.degenerate import foreground_counts, mask_share_warnings
from monai_imbalance.reporting import update_metrics_json

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["MetricsReportHandler"]

_RESERVED = ("epoch", "num_samples", "warnings", "foreground_share_predicted", "foreground_share_labels")


class MetricsReportHandler(EpochHandler):
    """Merge the metrics of every evaluator run into ``metrics_file`` under ``key`` (see the module docstring).

    Args:
        metrics_file: the run's ``metrics.json`` (created with its folder if missing; other keys kept).
        key: top-level key of the entry, e.g. ``"validation"`` or ``"test"``.
        metric_names: names in ``engine.state.metrics`` to write (``None``: all of them). A missing name is an
            error when the run completes.
        extra: constant entries added to the report (e.g. ``{"threshold": 0.5, "mc_dropout": True}``).
        save_best_only: write only when the run's key metric is the best so far
            (``engine.state.best_metric_epoch == engine.state.epoch``), so that the entry describes the best
            checkpoint of a training run; needs a key metric on the evaluator.
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).
        foreground_transform: segmentation: extracts ``(y_pred, y)`` (foreground probabilities and masks, as the
            metrics get them) from ``engine.state.output``, to warn about degenerate masks (see the module
            docstring); ``None`` for no check.
        threshold: the foreground threshold of ``y_pred`` (one channel).
        ignore_index: label value of pixels that do not count (e.g. outside the field of view).

    Raises:
        ValueError: an empty ``key``, or ``extra`` / ``metric_names`` using the names the handler writes itself
            (``epoch``, ``num_samples``, ``warnings``, ``foreground_share_predicted``, ``foreground_share_labels``).
    """

    def __init__(
        self,
        metrics_file: str | os.PathLike,
        key: str,
        metric_names: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        save_best_only: bool = False,
        save_rank: int = 0,
        name: str | None = None,
        foreground_transform: Callable[[Any], tuple[Any, Any]] | None = None,
        threshold: float = 0.5,
        ignore_index: int | None = None,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if isinstance(metric_names, str):
            metric_names = [metric_names]
        clash = sorted(set(_RESERVED) & (set(metric_names or ()) | set(extra or {})))
        if clash:
            raise ValueError(f"{clash} are written by the handler itself; rename those metrics / extra entries")
        self.metrics_file = Path(metrics_file)
        self.key = key
        self.metric_names = None if metric_names is None else [str(n) for n in metric_names]
        self.extra = dict(extra or {})
        self.save_best_only = bool(save_best_only)
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self._num_samples = 0
        self.foreground_transform = foreground_transform
        self.threshold = float(threshold)
        self.ignore_index = ignore_index
        self._foreground: torch.Tensor | None = None
        self.last_report: dict[str, Any] | None = None

    def epoch_started(self, engine: Engine) -> None:
        self._num_samples = 0
        self._foreground = None

    def iteration_completed(self, engine: Engine) -> None:
        self._num_samples += _batch_size(engine.state.batch)
        if self.foreground_transform is not None:
            y_pred, y = self.foreground_transform(engine.state.output)
            counts = foreground_counts(y_pred, y, threshold=self.threshold, ignore_index=self.ignore_index)
            self._foreground = counts if self._foreground is None else self._foreground + counts.to(self._foreground)

    def epoch_completed(self, engine: Engine) -> None:
        """Collect the metrics (the sample count is summed over ranks, collectively) and write on ``save_rank``."""
        world_size = idist.get_world_size()
        if self.save_rank >= world_size:
            raise ValueError(f"save_rank={self.save_rank} but the run has only {world_size} processes")
        num_samples = int(idist.all_reduce(self._num_samples)) if world_size > 1 else self._num_samples
        if self.save_best_only and getattr(engine.state, "key_metric_name", None) is None:
            raise ValueError("save_best_only=True needs a key metric on the evaluator (key_val_metric / key_metric)")
        metrics = dict(engine.state.metrics)
        names = list(metrics) if self.metric_names is None else self.metric_names
        missing = [n for n in names if n not in metrics]
        if missing:
            raise ValueError(f"metric(s) {missing} not computed by the evaluator; it has {sorted(metrics)}")
        epoch = int(engine.state.epoch)
        report = {name: _scalar(metrics[name]) for name in names}
        report.update(self.extra)
        report.update(epoch=epoch, num_samples=num_samples)
        if self.foreground_transform is not None:
            report.update(self._mask_check(world_size))
        self.last_report = report
        if idist.get_rank() != self.save_rank:
            return
        if self.save_best_only and engine.state.best_metric_epoch != epoch:
            return
        update_metrics_json(self.metrics_file, {self.key: report})
        for message in report.get("warnings", []):
            self.logger.warning(f"{self.key} (epoch {epoch}): {message}")
        scores = ", ".join(f"{n} {v:.4f}" for n, v in report.items() if n in names and isinstance(v, float))
        self.logger.info(
            f"{self.key} metrics (epoch {epoch}, {num_samples} samples) written to {self.metrics_file}: {scores}"
        )

    def _mask_check(self, world_size: int) -> dict[str, Any]:
        """The foreground shares and the degenerate-mask warnings of this run (counts summed over ranks)."""
        counts = (
            self._foreground
            if self._foreground is not None
            else torch.zeros(3, dtype=torch.int64, device=idist.device())
        )
        if world_size > 1:
            counts = idist.all_reduce(counts)
        predicted, labelled, pixels = (int(v) for v in counts.tolist())
        return {
            "foreground_share_predicted": predicted / pixels if pixels else None,
            "foreground_share_labels": labelled / pixels if pixels else None,
            "warnings": mask_share_warnings(predicted, labelled, pixels),
        }


def _batch_size(batch: Any) -> int:
    """Samples in an engine batch: a decollated list, or a collated dict / tensor (first dimension)."""
    if isinstance(batch, (list, tuple)):
        return len(batch)
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
            if isinstance(value, (list, tuple)):
                return len(value)
        return 0
    if isinstance(batch, torch.Tensor) and batch.ndim > 0:
        return int(batch.shape[0])
    return 0


def _scalar(value: Any) -> Any:
    """A metric value as a plain float (numbers, one-element tensors) or a list (larger tensors)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return float(value.item()) if value.numel() == 1 else value.tolist()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
