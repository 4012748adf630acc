"""Ignite handler: an evaluation run's repeatability report, to metrics JSON, TensorBoard and a Bland-Altman PNG."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import CommonKeys, IgniteInfo, min_version, optional_import

from monai_imbalance.metrics.bland_altman import bland_altman_plot
from monai_imbalance.metrics.repeatability import RepeatabilityMetric
from monai_imbalance.reporting import save_figure, update_metrics_json

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["IMAGE_KEYS", "SCALAR_ENTRIES", "RepeatabilityHandler", "image_ids_from_batch"]

#: report entries logged as TensorBoard scalars (``<tag_prefix>/<entry>``) when they are numbers: the plug-in
#: forms, then the paper's (bootstrap mean of LoA, ICC(2,k) of two-image units)
SCALAR_ENTRIES = (
    "loa",
    "loa_sd",
    "loa_rel",
    "icc",
    "mean_abs_diff",
    "disagreement_rate",
    "loa_boot_mean",
    "icc_2k",
)

#: batch keys whose values, joined by ``/``, identify an image: the datalist id and, for simulated copies,
#: the repeat index
IMAGE_KEYS = ("id", "repeat_index")


def _ids_from_batch(batch: Any, key: str, required: bool) -> list[Any] | None:
    """Ids under ``key`` from ``engine.state.batch``: a decollated list of dicts or one collated dict."""
    if isinstance(batch, dict):
        if key in batch:
            value = batch[key]
            return value.tolist() if hasattr(value, "tolist") else list(value)
    elif isinstance(batch, (list, tuple)) and batch and all(isinstance(b, dict) for b in batch):
        if all(key in b for b in batch):
            return [b[key] for b in batch]
    else:
        raise TypeError(
            "RepeatabilityHandler reads ids from dictionary batches, "
            f"got engine.state.batch of type {type(batch).__name__}"
        )
    if required:
        raise ValueError(
            f"the evaluation batch has no {key!r} entry: give every item a patient id (a datalist column, or "
            "monai_imbalance.data.RepeatAcquisitions for simulated repeats) or set patient_key"
        )
    return None


def _image_file_names(batch: Any) -> list[Any] | None:
    """``filename_or_obj`` of the batch's ``image`` MetaTensors (collated or decollated), if every item has one."""
    items = [batch] if isinstance(batch, dict) else list(batch)
    names: list[Any] = []
    for item in items:
        meta = getattr(item.get("image"), "meta", None) if isinstance(item, dict) else None
        value = None if meta is None else meta.get("filename_or_obj")
        if value is None:
            return None
        names.extend(value if isinstance(value, (list, tuple)) else [value])
    return names


def image_ids_from_batch(batch: Any, keys: Sequence[str]) -> list[str] | None:
    """One id per image of ``engine.state.batch``: the values of the ``keys`` it carries, joined by ``/``.

    Falls back to the images' file names (``image.meta["filename_or_obj"]``) when the batch carries none of
    ``keys``; ``None`` when it has neither (the report then keeps the input order).
    """
    columns = [values for key in keys if (values := _ids_from_batch(batch, key, required=False)) is not None]
    if not columns:
        names = _image_file_names(batch)
        return None if names is None else [str(n) for n in names]
    return ["/".join(str(v.item() if hasattr(v, "item") else v) for v in parts) for parts in zip(*columns, strict=True)]


class RepeatabilityHandler(IgniteMetricHandler):
    """Repeatability of an evaluator's continuous scores, as an ignite metric with report, plot and logging.

    Attach it to a ``SupervisedEvaluator`` like MONAI's metric handlers (as ``key_val_metric`` or
    in ``additional_metrics``, or with ``handler.attach(evaluator, "repeatability")``). Every
    iteration it reads

    - the probabilities through ``output_transform`` (default ``from_engine(["pred"])``; these must
      be probabilities, e.g. from ``MCDropoutInferer`` or after ``Activationsd``, and taken before
      any ``AsDiscreted``),
    - the ids from ``engine.state.batch`` under ``patient_key`` and ``visit_key`` (decollated or
      not). A missing ``visit_key`` means one visit per patient,
    - the image ids under ``image_keys`` (default :data:`IMAGE_KEYS`: the datalist ``id`` and the
      ``repeat_index`` of simulated copies, joined by ``/``; else the images' file names): the canonical
      order of a unit's images, so that the report does not depend on the order of the datalist,

    and feeds :class:`~monai_imbalance.metrics.RepeatabilityMetric`. When the evaluator's epoch
    completes it aggregates over all ranks and, on rank 0:

    - merges the report into ``metrics_file`` under ``json_key`` (default: the attach name) with
      :func:`monai_imbalance.reporting.update_metrics_json` (other entries are kept),
    - logs the numeric entries of :data:`SCALAR_ENTRIES` to ``summary_writer`` as
      ``<tag_prefix>/<entry>`` at step ``engine.state.epoch`` (the trainer's epoch when run by
      ``ValidationHandler``),
    - saves the Bland-Altman figure (:func:`~monai_imbalance.metrics.bland_altman_plot`) to
      ``figure_file`` and as TensorBoard image ``<tag_prefix>/bland_altman``; the PNG is replaced
      at every evaluation.

    The value of the metric in ``engine.state.metrics`` is ``loa`` (lower is better: use
    ``metric_cmp_fn=lambda current, best: current < best`` if it is the key metric); the full
    report of the last evaluation is :attr:`report`.

    Args:
        num_classes: ``K``; ``None`` infers it from the number of output channels.
        threshold: decision threshold of one-channel outputs (predicted class for disagreement).
        n_boot: bootstrap replicates over patients.
        seed: bootstrap seed.
        output_transform: ``engine.state.output`` -> probabilities (batch-first tensor or list of ``(K,)``);
            default ``from_engine(["pred"])``.
        patient_key: batch key of the patient ids.
        visit_key: batch key of the visit ids (``None``: ignore visits).
        image_keys: batch keys identifying an image (see above); ``None`` or ``()``: keep the loader's order.
        metrics_file: the run's metrics JSON (``None``: don't write).
        figure_file: PNG path of the Bland-Altman plot (``None``: no PNG).
        summary_writer: TensorBoard ``SummaryWriter`` (e.g. the one given to MONAI's
            ``TensorBoardStatsHandler``); ``None``: no TensorBoard logging.
        json_key: key of the report in ``metrics_file``; default the name the handler is attached under.
        tag_prefix: TensorBoard tag prefix; default the attach name.
        report_info: entries added to the report (JSON and :attr:`report`), e.g. ``{"repeats": ...}``: where
            the repeat images came from (:attr:`monai_imbalance.data.RepeatEvaluationDataset.info`). They must
            not clash with the report's own entries.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        threshold: float = 0.5,
        n_boot: int = 500,
        seed: int = 0,
        output_transform: Callable | None = None,
        patient_key: str = "patient_id",
        visit_key: str | None = "visit_id",
        image_keys: Sequence[str] | None = IMAGE_KEYS,
        metrics_file: str | os.PathLike | None = None,
        figure_file: str | os.PathLike | None = None,
        summary_writer: SummaryWriter | None = None,
        json_key: str | None = None,
        tag_prefix: str | None = None,
        report_info: Mapping[str, Any] | None = None,
    ) -> None:
        metric = RepeatabilityMetric(num_classes=num_classes, threshold=threshold, n_boot=n_boot, seed=seed)
        if output_transform is None:
            output_transform = from_engine([CommonKeys.PRED])
        super().__init__(metric_fn=metric, output_transform=output_transform, save_details=False)
        self.patient_key = patient_key
        self.visit_key = visit_key
        self.image_keys = tuple(image_keys or ())
        self.metrics_file = None if metrics_file is None else Path(metrics_file)
        self.figure_file = None if figure_file is None else Path(figure_file)
        self.summary_writer = summary_writer
        self.json_key = json_key
        self.tag_prefix = tag_prefix
        self.report_info = dict(report_info or {})
        self.report: dict[str, Any] | None = None

    def iteration_completed(self, engine: Engine) -> None:
        """Feed this iteration's probabilities and ids to the metric."""
        y_pred = self._output_transform(engine.state.output)
        if isinstance(y_pred, tuple):  # output_transform returning (y_pred, y), as for MONAI's metrics
            y_pred = y_pred[0]
        patient_ids = _ids_from_batch(engine.state.batch, self.patient_key, required=True)
        visit_ids = (
            None if self.visit_key is None else _ids_from_batch(engine.state.batch, self.visit_key, required=False)
        )
        image_ids = image_ids_from_batch(engine.state.batch, self.image_keys) if self.image_keys else None
        self.metric_fn(y_pred, patient_ids=patient_ids, visit_ids=visit_ids, image_ids=image_ids)

    def update(self, output: Sequence[Any]) -> None:
        """Not used: the ids come from ``engine.state.batch``, see :meth:`iteration_completed`."""
        raise NotImplementedError("RepeatabilityHandler is updated by iteration_completed(engine)")

    def compute(self) -> float:
        """Aggregate (all ranks), write report / scalars / figure (rank 0), return ``loa``."""
        report = self.metric_fn.aggregate()
        clash = sorted(set(report) & set(self.report_info))
        if clash:
            raise ValueError(f"report_info entries {clash} clash with the repeatability report's own entries")
        report.update(self.report_info)
        self.report = report
        self._is_reduced = True
        if idist.get_rank() == 0:
            self._publish(report)
        return float(report["loa"])

    def _publish(self, report: dict[str, Any]) -> None:
        name = self._name or "repeatability"
        step = int(self._engine.state.epoch) if self._engine is not None else 0
        if self.metrics_file is not None:
            update_metrics_json(self.metrics_file, {self.json_key or name: report})
        prefix = self.tag_prefix or name
        if self.summary_writer is not None:
            for entry in SCALAR_ENTRIES:
                value = report.get(entry)
                if isinstance(value, (int, float)):
                    self.summary_writer.add_scalar(f"{prefix}/{entry}", value, step)
        if self.figure_file is not None or self.summary_writer is not None:
            save_figure(
                bland_altman_plot(report),
                self.figure_file,
                summary_writer=self.summary_writer,
                tag=f"{prefix}/bland_altman",
                global_step=step,
            )
