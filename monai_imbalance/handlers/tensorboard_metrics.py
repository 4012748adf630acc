"""Ignite handler that writes an evaluator's metrics to TensorBoard under one namespace per phase.

The bundles' TensorBoard runs use one namespace (the tag's first ``/``-separated part) per phase: ``train/``
(loss, learning rate), ``val/`` (validation during training), ``test/`` (or the evaluated split's name, from
``evaluate.yaml``) and ``repeatability/``. MONAI's ``TensorBoardStatsHandler`` writes ``engine.state.metrics``
under the metric names themselves (``val_f1_macro``, ``jaccard``), so the same score could appear under two tags
and the segmentation scores under none. This handler writes every scalar of ``engine.state.metrics`` as
``"{phase}/{name}"`` at step ``engine.state.epoch`` (the trainer's epoch when MONAI's ``ValidationHandler`` runs
the evaluator), with the phase's own prefix dropped from the name (``val_f1_macro`` becomes ``val/f1_macro``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["TensorBoardMetrics", "phase_tag"]


def phase_tag(phase: str, name: str) -> str:
    """``"{phase}/{name}"`` with a leading ``"{phase}_"`` or ``"{phase}/"`` of ``name`` dropped."""
    for prefix in (f"{phase}_", f"{phase}/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    return f"{phase}/{name}"


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class TensorBoardMetrics:
    """Write the scalar metrics of every evaluator run as ``"{phase}/{name}"`` (see the module docstring).

    Args:
        summary_writer: a ``SummaryWriter`` or :class:`monai_imbalance.handlers.LazySummaryWriter`.
        phase: the namespace, e.g. ``"val"`` or ``"test"`` (no ``/``).
        metric_names: the names in ``engine.state.metrics`` to write (``None``: every scalar one). Non-scalar and
            non-finite values are skipped (TensorBoard draws NaN as a gap anyway).
    """

    def __init__(self, summary_writer: Any, phase: str, metric_names: Sequence[str] | None = None) -> None:
        if summary_writer is None:
            raise ValueError("summary_writer is None; give a SummaryWriter (or disable the handler with _disabled_)")
        if not isinstance(phase, str) or not phase or "/" in phase:
            raise ValueError(f"phase must be a non-empty name without '/', e.g. 'val' or 'test'; got {phase!r}")
        self.summary_writer = summary_writer
        self.phase = phase
        self.metric_names = None if metric_names is None else [str(n) for n in metric_names]

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        metrics = engine.state.metrics
        names = list(metrics) if self.metric_names is None else self.metric_names
        missing = [n for n in names if n not in metrics]
        if missing:
            raise ValueError(f"metric(s) {missing} not computed by the evaluator; it has {sorted(metrics)}")
        step = int(engine.state.epoch)
        for name in names:
            value = _scalar(metrics[name])
            if value is not None:
                self.summary_writer.add_scalar(phase_tag(self.phase, name), value, step)
        self.summary_writer.flush()
