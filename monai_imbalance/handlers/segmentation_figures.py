"""A figure of a few segmentations over their images (PNG and TensorBoard), and the ignite handler that draws it.

:func:`plot_segmentation_overlays` draws one row per image: the image, the image with the
prediction compared to the ground truth, and (when given) an uncertainty map. Overlay colours::

    yellow  true positive   (predicted and annotated)
    red     false positive  (predicted only)
    green   false negative  (annotated only)

Without ground truth the prediction is drawn in red. Pixels outside an optional mask (e.g. the
DRIVE field of view) are dimmed. Images are channel-first in MONAI's layout ``(C, W, H)`` (first spatial
axis = x, what ``LoadImaged`` + ``EnsureChannelFirstd`` and :class:`monai_imbalance.transforms.LoadImageOrArray`
give for a picture file) and are transposed for display; one channel is shown grey, three or four as RGB,
each image min-max scaled.

:class:`SegmentationFiguresHandler` collects the first ``max_images`` samples of an evaluator run
(``image``, ``pred``, ``label`` of MONAI's engine output; the uncertainty of
:class:`monai_imbalance.inferers.MCDropoutInferer` when that is the engine's inferer) and, when the
run's epoch completes, saves the figure through :func:`monai_imbalance.reporting.save_figure`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import CommonKeys, IgniteInfo, min_version, optional_import

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.reporting import save_figure

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["SegmentationFiguresHandler", "plot_segmentation_overlays"]

_TP, _FP, _FN = (1.0, 0.85, 0.0), (0.95, 0.1, 0.1), (0.1, 0.85, 0.2)
_OVERLAY_ALPHA = 0.55

ImageBatch = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


def _samples(name: str, batch: ImageBatch | None, count: int | None = None) -> list[np.ndarray] | None:
    """Channel-first 2D samples in display order ``(C, H, W)`` (float numpy) from MONAI's ``(C, W, H)`` layout."""
    if batch is None:
        return None
    out = []
    for item in list(batch):
        arr = item.detach().cpu().float().numpy() if isinstance(item, torch.Tensor) else np.asarray(item, np.float32)
        if arr.ndim != 3:
            raise ValueError(
                f"{name} samples must be channel-first 2D images (C, W, H), got shape {arr.shape}; "
                "for volumes, pass a slice"
            )
        out.append(np.ascontiguousarray(arr.swapaxes(-1, -2)))
    if count is not None and len(out) != count:
        raise ValueError(f"got {len(out)} {name} samples for {count} images")
    return out


def _foreground(sample: np.ndarray, threshold: float) -> np.ndarray:
    """Binary ``(H, W)``: one channel thresholded (values ``>= threshold``), several channels argmax != 0."""
    if sample.shape[0] == 1:
        return sample[0] >= threshold
    return sample.argmax(axis=0) != 0


def _display(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB in ``[0, 1]`` (min-max scaled)."""
    shown = image[0] if image.shape[0] not in (3, 4) else np.moveaxis(image[:3], 0, -1)
    lo, hi = float(np.nanmin(shown)), float(np.nanmax(shown))
    return np.clip((shown - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(shown)


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    shown = _display(image)
    return np.repeat(shown[..., None], 3, axis=-1) if shown.ndim == 2 else shown


def plot_segmentation_overlays(
    images: ImageBatch,
    predictions: ImageBatch,
    labels: ImageBatch | None = None,
    uncertainty: ImageBatch | None = None,
    masks: ImageBatch | None = None,
    ids: Sequence[str] | None = None,
    max_images: int = 4,
    threshold: float = 0.5,
    title: str = "",
) -> Figure:
    """Figure of up to ``max_images`` predictions over their images (see the module docstring).

    Args:
        images: ``(N, C, H, W)`` or a list of ``(C, H, W)``.
        predictions: binary masks, probabilities (one channel, foreground ``>= threshold``) or one-hot /
            probabilities over several channels (foreground ``argmax != 0``); same layout.
        labels: ground truth, same layout (``None`` to draw the prediction alone); label values other than
            1 (e.g. ``-1`` written by :func:`monai_imbalance.metrics.field_of_view_label`) are background.
        uncertainty: maps ``(N, K, H, W)`` drawn in a third column (the maximum over ``K``).
        masks: regions where pixels count, e.g. the field of view; outside is dimmed.
        ids: a title per image (e.g. the datalist ``id``).
        max_images: number of rows.
        threshold: foreground threshold of one-channel predictions and labels.
        title: figure title.

    Each row's overlay title carries the image's Dice score when labels are given.
    """
    from matplotlib.figure import Figure

    if not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive int, got {max_images!r}")
    image_list = _samples("image", images)
    if not image_list:
        raise ValueError("no images to draw")
    count = min(len(image_list), max_images)
    image_list = image_list[:count]
    pred_list = _samples("prediction", list(predictions)[:count], count)
    label_list = _samples("label", list(labels)[:count], count) if labels is not None else None
    unc_list = _samples("uncertainty", list(uncertainty)[:count], count) if uncertainty is not None else None
    mask_list = _samples("mask", list(masks)[:count], count) if masks is not None else None
    if ids is not None and len(ids) < count:
        raise ValueError(f"got {len(ids)} ids for {count} images")

    columns = 3 if unc_list is not None else 2
    fig = Figure(figsize=(3.2 * columns, 3.0 * count + (0.4 if title else 0.0)))
    axes = fig.subplots(count, columns, squeeze=False)
    for row in range(count):
        image = image_list[row]
        size = image.shape[1:]
        for name, other in (("prediction", pred_list), ("label", label_list), ("uncertainty", unc_list)):
            if other is not None and other[row].shape[1:] != size:
                raise ValueError(f"{name} {row} has size {other[row].shape[1:]}, its image {size}")
        shown = _display(image)
        inside = mask_list[row][0] != 0 if mask_list is not None else np.ones(size, dtype=bool)
        name = str(ids[row]) if ids is not None else f"image {row}"

        ax = axes[row, 0]
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)

        pred = _foreground(pred_list[row], threshold) & inside
        rgb = _grey_rgb(image) * np.where(inside, 1.0, 0.35)[..., None]
        overlay = np.zeros((*size, 4))
        if label_list is not None:
            truth = (label_list[row][0] == 1) if label_list[row].shape[0] == 1 else _foreground(label_list[row], 0.5)
            truth &= inside
            for region, colour in ((pred & truth, _TP), (pred & ~truth, _FP), (~pred & truth, _FN)):
                overlay[region] = (*colour, _OVERLAY_ALPHA)
            denominator = pred.sum() + truth.sum()
            dice = 2.0 * (pred & truth).sum() / denominator if denominator else float("nan")
            caption = f"Dice {dice:.3f} (yellow TP, red FP, green FN)"
        else:
            overlay[pred] = (*_FP, _OVERLAY_ALPHA)
            caption = "prediction (red)"
        ax = axes[row, 1]
        ax.imshow(rgb, vmin=0, vmax=1)
        ax.imshow(overlay)
        ax.set_title(caption, fontsize=8)

        if unc_list is not None:
            ax = axes[row, 2]
            shown_unc = unc_list[row].max(axis=0)
            im = ax.imshow(np.where(inside, shown_unc, np.nan), cmap="magma")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title("uncertainty", fontsize=8)
        for ax in axes[row]:
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _default_output(output: Any) -> tuple[Any, Any, Any]:
    """``(images, predictions, labels or None)`` from MONAI's engine output (a dict or a decollated list)."""
    keys = (CommonKeys.IMAGE, CommonKeys.PRED, CommonKeys.LABEL)
    if isinstance(output, dict):
        return output[keys[0]], output[keys[1]], output.get(keys[2])
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
        labels = [item.get(keys[2]) for item in output]
        return (
            [item[keys[0]] for item in output],
            [item[keys[1]] for item in output],
            labels if all(label is not None for label in labels) else None,
        )
    raise TypeError(f"cannot read image/pred/label from an engine output of type {type(output).__name__}")


class SegmentationFiguresHandler(EpochHandler):
    """Save a figure of the first ``max_images`` segmentations of every evaluator run (PNG and TensorBoard).

    Attach it to a ``SupervisedEvaluator`` (``validate#handlers`` / ``evaluate#handlers``), after the
    post-transforms: ``pred`` may be probabilities or a binary mask, ``label`` is optional (inference).

    Args:
        figure_file: PNG to write; may contain ``{epoch}`` (e.g. ``"figures/overlays_{epoch:03d}.png"``);
            ``None`` for TensorBoard only. Each run replaces the file (it is an output of the run).
        summary_writer: optional TensorBoard ``SummaryWriter``; the figure becomes image ``tag``.
        tag: TensorBoard tag.
        max_images: number of images shown.
        output_transform: ``engine.state.output -> (images, predictions, labels or None)``; the default
            reads ``image``, ``pred`` and ``label`` of MONAI's engine output.
        mask_transform: optional ``engine.state.output -> masks`` (e.g. the field of view
            ``from_engine(["mask"])``), dimmed outside.
        uncertainty_key: entry of the engine's MC-dropout inferer ``last_output`` to draw as uncertainty
            (``"entropy"``, ``"mutual_information"``, ``"variance"``); ``None`` never draws one. Ignored when
            the inferer keeps no such output or its size differs from the images.
        threshold: foreground threshold of one-channel predictions.
        save_best_only: write only when the run's key metric is the best so far.
        save_rank: the rank that writes in a multi-process run (it draws its own samples).
        name: logger name (default the engine's logger).
    """

    def __init__(
        self,
        figure_file: str | os.PathLike | None = "segmentation_overlays.png",
        summary_writer: SummaryWriter | None = None,
        tag: str = "segmentation/overlays",
        max_images: int = 4,
        output_transform: Callable[[Any], tuple[Any, Any, Any]] | None = None,
        mask_transform: Callable[[Any], Any] | None = None,
        uncertainty_key: str | None = "entropy",
        threshold: float = 0.5,
        save_best_only: bool = False,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        if not isinstance(max_images, int) or max_images < 1:
            raise ValueError(f"max_images must be a positive int, got {max_images!r}")
        if figure_file is None and summary_writer is None:
            raise ValueError("give a figure_file, a summary_writer or both: otherwise nothing is saved")
        self.figure_file = str(figure_file) if figure_file is not None else None
        self.summary_writer = summary_writer
        self.tag = tag
        self.max_images = max_images
        self.output_transform = output_transform or _default_output
        self.mask_transform = mask_transform
        self.uncertainty_key = uncertainty_key
        self.threshold = threshold
        self.save_best_only = bool(save_best_only)
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self._collected: dict[str, list[torch.Tensor]] = {}
        self.last_figure_file: Path | None = None

    def epoch_started(self, engine: Engine) -> None:
        self._collected = {"images": [], "predictions": [], "labels": [], "uncertainty": [], "masks": []}

    def _uncertainty(self, engine: Engine) -> Any:
        if self.uncertainty_key is None:
            return None
        last = getattr(getattr(engine, "inferer", None), "last_output", None)
        value = last.get(self.uncertainty_key) if isinstance(last, dict) else None
        return value if isinstance(value, torch.Tensor) else None

    def iteration_completed(self, engine: Engine) -> None:
        if not self._collected:
            self.epoch_started(engine)
        taken = len(self._collected["images"])
        if taken >= self.max_images:
            return
        images, predictions, labels = self.output_transform(engine.state.output)
        want = self.max_images - taken
        new_images = [_cpu(x) for x in list(images)[:want]]
        self._collected["images"] += new_images
        self._collected["predictions"] += [_cpu(x) for x in list(predictions)[: len(new_images)]]
        if labels is not None:
            self._collected["labels"] += [_cpu(x) for x in list(labels)[: len(new_images)]]
        if self.mask_transform is not None:
            self._collected["masks"] += [_cpu(x) for x in list(self.mask_transform(engine.state.output))[:want]]
        uncertainty = self._uncertainty(engine)
        if uncertainty is not None:
            self._collected["uncertainty"] += [_cpu(x) for x in list(uncertainty)[: len(new_images)]]

    def epoch_completed(self, engine: Engine) -> None:
        """Draw and save the collected samples on ``save_rank``."""
        images = self._collected.get("images", [])
        epoch = int(engine.state.epoch)
        if not images:
            warnings.warn(f"{type(self).__name__}: the evaluator produced no samples; no figure saved", stacklevel=2)
            return
        if self.save_best_only and getattr(engine.state, "best_metric_epoch", epoch) != epoch:
            return
        if idist.get_rank() != self.save_rank:
            return
        count = len(images)
        labels = self._collected["labels"] if len(self._collected["labels"]) == count else None
        masks = self._collected["masks"] if len(self._collected["masks"]) == count else None
        uncertainty = self._collected["uncertainty"]
        sizes_match = len(uncertainty) == count and all(
            u.shape[1:] == i.shape[1:] for u, i in zip(uncertainty, images, strict=True)
        )
        figure = plot_segmentation_overlays(
            images,
            self._collected["predictions"],
            labels=labels,
            uncertainty=uncertainty if sizes_match else None,
            masks=masks,
            ids=_ids(images),
            max_images=self.max_images,
            threshold=self.threshold,
            title=f"epoch {epoch}",
        )
        path = Path(self.figure_file.format(epoch=epoch)) if self.figure_file is not None else None
        save_figure(figure, path, summary_writer=self.summary_writer, tag=self.tag, global_step=epoch)
        self.last_figure_file = path
        self.logger.info(f"segmentation overlays of {count} image(s) saved (epoch {epoch}) to {path or self.tag}")


def _cpu(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().cpu()


def _ids(images: Sequence[torch.Tensor]) -> list[str] | None:
    """Image names from MONAI metadata (the file stem), when every image has one."""
    names = []
    for image in images:
        source = getattr(image, "meta", {}).get("filename_or_obj", "") if hasattr(image, "meta") else ""
        if not source:
            return None
        names.append(Path(str(source)).name)
    return names
