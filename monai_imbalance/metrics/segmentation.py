"""Pixel-level segmentation metrics inside an optional mask: Jaccard, Dice/F1, recall, specificity and AUC-ROC.

The ALL paper reports, per data set, IoU (Jaccard), recall, specificity (TNR), F-measure (Dice) and
the area under the ROC curve over pixels; on DRIVE only pixels inside the field of view (FOV)
count. With ``TP, FP, TN, FN`` counted over the pixels inside the mask::

    Jaccard = TP / (TP + FP + FN)        Dice = F1 = 2 TP / (2 TP + FP + FN)
    recall  = TP / (TP + FN)             specificity = TN / (TN + FP)
    AUC     = P(score of a foreground pixel > score of a background pixel) + 0.5 P(equal scores)

Inputs follow MONAI: ``y_pred`` and ``y`` are ``(B, C, *spatial)``; ``y`` binary one-hot (or, for
``C == 1``, the binary foreground); ``mask`` ``(B, 1, *spatial)`` or ``(B, *spatial)``, non-zero where
pixels count. Alternatively, MONAI's ``ignore_index`` convention marks excluded pixels in the label
itself (a label-encoded ``C == 1`` label equal to ``ignore_index``; a one-hot label that is zero in every
channel when ``ignore_index`` is not a class index). :func:`field_of_view_label` writes a mask into a label
that way, which is how the mask reaches metrics behind MONAI's ignite handlers (they pass only
``(y_pred, y)``); :func:`masked_output_transform` does it as a handler's ``output_transform``.

What MONAI already does right, and is reused: the confusion counts and every score derived from
them (:func:`monai.metrics.get_confusion_matrix`, ``compute_confusion_matrix_metric``, the reductions
of :class:`monai.metrics.ConfusionMatrixMetric`, whose ``threat score`` is the Jaccard index and
``f1 score`` the Dice coefficient); ``DiceMetric``, ``MeanIoU`` and ``ConfusionMatrixMetric`` all honour
``ignore_index``, so with :func:`field_of_view_label` they compute FOV-restricted scores too.
What it lacks, and is added here: an explicit ``mask`` argument and the names ``jaccard``/``iou``/``dice``
(:class:`MaskedConfusionMatrixMetric`), and a pixel AUC that scales. MONAI's ``ROCAUCMetric`` keeps
every prediction until the end and ranks them in a Python loop: for the millions of pixels of a
segmentation test set that is slow and memory-bound.

Pixel AUC (:class:`PixelROCAUCMetric`): scores in ``[0, 1]`` are binned into ``n_bins`` equal bins,
``k = min(floor(p * n_bins), n_bins - 1)``, and two histograms per class are accumulated across
iterations, ``pos[k]`` (foreground pixels) and ``neg[k]`` (background pixels). Then::

    AUC = sum_k pos[k] * (sum_{j<k} neg[j] + 0.5 neg[k]) / (P N),   P = sum pos, N = sum neg

which is the Mann-Whitney statistic with pixels in one bin counted as ties. It equals the exact
AUC (scikit-learn's ``roc_auc_score``, ties one half) whenever no foreground and background pixel
share a bin with different scores, e.g. for scores on a grid coarser than the bins (8-bit
probability maps), and otherwise differs by at most
``0.5 * sum_k pos[k] neg[k] / (P N)`` (returned by :func:`roc_auc_from_histograms` with
``return_tie_bound=True``). Memory: ``C * 2 * n_bins`` int64 counts, independent of the data size
(1 MiB per class for the default ``n_bins = 65536``, bins of width 1.5e-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.metrics import ConfusionMatrixMetric, CumulativeIterationMetric, get_confusion_matrix
from monai.metrics.confusion_matrix import check_confusion_matrix_metric_name, compute_confusion_matrix_metric
from monai.metrics.utils import create_ignore_mask
from monai.utils import MetricReduction

__all__ = [
    "DEFAULT_AUC_BINS",
    "DEFAULT_SEGMENTATION_METRICS",
    "MaskedConfusionMatrixMetric",
    "PixelROCAUCMetric",
    "compute_pixel_roc_auc",
    "compute_segmentation_scores",
    "field_of_view_label",
    "masked_confusion_matrix",
    "masked_output_transform",
    "pixel_score_histograms",
    "roc_auc_from_histograms",
]

#: Default number of histogram bins of the pixel AUC (bin width 1/65536).
DEFAULT_AUC_BINS = 2**16

#: The paper's overlap scores, in the order :class:`MaskedConfusionMatrixMetric` reports them by default.
DEFAULT_SEGMENTATION_METRICS: tuple[str, ...] = ("jaccard", "dice", "recall", "specificity")

# names MONAI's confusion-matrix functions do not know
_ALIASES = {"jaccard": "threat score", "iou": "threat score", "jaccard index": "threat score", "dice": "f1 score"}

# label value written outside the mask by field_of_view_label when the caller gives none
_DEFAULT_IGNORE_INDEX = -1


def _plain(x: Any, device: torch.device | None = None) -> torch.Tensor:
    """``x`` as a plain tensor (MONAI ``MetaTensor`` metadata dropped: the metrics need none of it)."""
    t = torch.as_tensor(x, device=device)
    return t.as_tensor() if isinstance(t, MetaTensor) else t


def _monai_metric_name(name: str) -> str:
    """MONAI's confusion-matrix metric name for ``name`` (adds jaccard / iou / dice); raises ``ValueError``."""
    key = str(name).strip().lower().replace("_", " ")
    key = _ALIASES.get(key, key)
    try:
        check_confusion_matrix_metric_name(key)
    except NotImplementedError as e:
        raise ValueError(
            f"unknown segmentation metric {name!r}: use jaccard/iou, dice/f1, recall/sensitivity, specificity, "
            "precision or any name of monai.metrics.ConfusionMatrixMetric"
        ) from e
    return key


def _spatial_mask(mask: torch.Tensor | Any, reference: torch.Tensor) -> torch.Tensor:
    """``mask`` as a boolean ``(B, 1, *spatial)`` tensor on ``reference``'s device; checks the shape."""
    m = _plain(mask, reference.device)
    batch, spatial = reference.shape[0], tuple(reference.shape[2:])
    if m.ndim == reference.ndim - 1:
        m = m.unsqueeze(1)
    if m.ndim != reference.ndim or m.shape[0] != batch or m.shape[1] != 1 or tuple(m.shape[2:]) != spatial:
        raise ValueError(
            f"mask must have shape (B, 1, *spatial) or (B, *spatial) = {(batch, 1, *spatial)}, got {tuple(m.shape)}"
        )
    return m != 0


def _check_pair(y_pred: torch.Tensor, y: torch.Tensor) -> None:
    if y_pred.ndim < 3:
        raise ValueError(f"y_pred must have shape (B, C, *spatial), got {tuple(y_pred.shape)}")
    if y.ndim != y_pred.ndim or y.shape[0] != y_pred.shape[0] or y.shape[2:] != y_pred.shape[2:]:
        raise ValueError(f"y must have shape (B, C, *spatial) like y_pred {tuple(y_pred.shape)}, got {tuple(y.shape)}")
    if y.shape[1] != y_pred.shape[1]:
        raise ValueError(
            f"y has {y.shape[1]} channels and y_pred {y_pred.shape[1]}: give y one-hot with y_pred's channels "
            "(e.g. AsDiscreted(keys='label', to_onehot=C))"
        )


def field_of_view_label(
    label: torch.Tensor, mask: torch.Tensor, ignore_index: int = _DEFAULT_IGNORE_INDEX
) -> torch.Tensor:
    """Copy of ``label`` whose pixels outside ``mask`` are excluded by MONAI's ``ignore_index`` convention.

    ``C == 1`` (binary label): the value ``ignore_index`` outside the mask. ``C > 1`` (one-hot): all channels
    zero outside the mask, which MONAI's metrics ignore when ``ignore_index`` is not a class index (e.g. -1).
    Pass the same ``ignore_index`` to the metric (``DiceMetric``, ``MeanIoU``, ``ConfusionMatrixMetric``,
    :class:`MaskedConfusionMatrixMetric`, :class:`PixelROCAUCMetric`).

    Args:
        label: ``(B, C, *spatial)``.
        mask: ``(B, 1, *spatial)`` or ``(B, *spatial)``, non-zero inside the field of view.
        ignore_index: the excluded label value; must not be 0 or 1 for a binary label.
    """
    label = torch.as_tensor(label)
    if label.ndim < 3:
        raise ValueError(f"label must have shape (B, C, *spatial), got {tuple(label.shape)}")
    inside = _spatial_mask(mask, label)
    if label.shape[1] == 1:
        if ignore_index in (0, 1):
            raise ValueError(f"ignore_index must differ from the label values 0 and 1, got {ignore_index}")
        return torch.where(inside, label, torch.as_tensor(ignore_index, dtype=label.dtype, device=label.device))
    if 0 <= ignore_index < label.shape[1]:
        raise ValueError(
            f"ignore_index {ignore_index} is a class index of the {label.shape[1]}-channel one-hot label; "
            "use a value outside [0, C) (e.g. -1) to mark pixels outside the mask"
        )
    return label * inside.to(label.dtype)


def masked_output_transform(
    pred_key: str = "pred",
    label_key: str = "label",
    mask_key: str = "mask",
    ignore_index: int = _DEFAULT_IGNORE_INDEX,
) -> Callable[[Any], tuple[Any, Any]]:
    """An ignite ``output_transform``: ``(y_pred, y)`` with the mask written into ``y`` by :func:`field_of_view_label`.

    MONAI's metric handlers pass only ``(y_pred, y)`` to their metric; this carries ``engine.state.output[mask_key]``
    (e.g. the DRIVE field of view) along inside the label. Works on a batched output dict and on MONAI's
    decollated list of per-sample dicts. Give the metric the same ``ignore_index``::

        IgniteMetricHandler(metric_fn=PixelROCAUCMetric(ignore_index=-1), output_transform=masked_output_transform())
        IgniteMetricHandler(metric_fn=DiceMetric(ignore_index=-1), output_transform=...)  # binary y_pred
    """

    def transform(output: Any) -> tuple[Any, Any]:
        if isinstance(output, dict):
            return output[pred_key], field_of_view_label(output[label_key], output[mask_key], ignore_index)
        if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
            preds = [item[pred_key] for item in output]
            labels = [
                field_of_view_label(
                    _plain(item[label_key]).unsqueeze(0), _plain(item[mask_key]).unsqueeze(0), ignore_index
                )[0]
                for item in output
            ]
            return preds, labels
        raise TypeError(f"expected an engine output dict or a list of dicts, got {type(output).__name__}")

    return transform


def _combined_ignore(
    y: torch.Tensor, mask: Any | None, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y`` with the mask folded in, and the boolean ``(B, 1, *spatial)`` map of pixels that count (or None)."""
    if mask is not None:
        sentinel = _DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
        valid = _spatial_mask(mask, y)
        label_valid = create_ignore_mask(y, ignore_index)
        if label_valid is not None:
            valid = valid & (label_valid != 0)
        y = field_of_view_label(y, valid, sentinel)
        return y, valid
    label_valid = create_ignore_mask(y, ignore_index)
    return y, None if label_valid is None else label_valid != 0


def _binarise(y_pred: torch.Tensor, threshold: float | None) -> torch.Tensor:
    if threshold is None:
        return y_pred
    return (y_pred.float() >= threshold).to(y_pred.dtype if y_pred.is_floating_point() else torch.float32)


def masked_confusion_matrix(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    threshold: float | None = None,
) -> torch.Tensor:
    """Per image and class ``[TP, FP, TN, FN]`` counted over the pixels inside ``mask``: shape ``(B, C', 4)``.

    The layout of :func:`monai.metrics.get_confusion_matrix`, which does the counting (``C' = C`` or
    ``C - 1`` without background).

    Args:
        y_pred: binary predictions ``(B, C, *spatial)``, or probabilities with ``threshold``.
        y: binary (one-hot) labels, same shape; ``C == 1`` labels may hold ``ignore_index``.
        mask: ``(B, 1, *spatial)`` or ``(B, *spatial)``, non-zero where pixels count; ``None`` counts all.
        include_background: count channel 0 too (keep ``True`` for a single sigmoid channel).
        ignore_index: MONAI's ``ignore_index`` (see the module docstring); combined with ``mask``.
        threshold: binarise ``y_pred >= threshold`` first (``None``: ``y_pred`` is binary already).
    """
    y_pred = _plain(y_pred)
    y = _plain(y, y_pred.device)
    _check_pair(y_pred, y)
    y, _ = _combined_ignore(y, mask, ignore_index)
    if mask is not None and ignore_index is None:
        ignore_index = _DEFAULT_IGNORE_INDEX
    return get_confusion_matrix(
        _binarise(y_pred, threshold), y, include_background=include_background, ignore_index=ignore_index
    )


def compute_segmentation_scores(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    metric_names: Sequence[str] = DEFAULT_SEGMENTATION_METRICS,
    include_background: bool = True,
    per_image: bool = False,
    ignore_index: int | None = None,
    threshold: float | None = None,
) -> dict[str, torch.Tensor]:
    """Jaccard, Dice, recall, specificity (or any confusion-matrix score) inside ``mask``, per class.

    Args:
        per_image: ``False`` pools the pixels of all images (scores ``(C',)``); ``True`` scores every image
            on its own (``(B, C')``; undefined scores, e.g. the recall of an image without foreground, NaN).
        others: see :func:`masked_confusion_matrix`.

    Returns:
        ``{name: scores}`` for each name in ``metric_names``.
    """
    counts = masked_confusion_matrix(y_pred, y, mask, include_background, ignore_index, threshold)
    if not per_image:
        counts = counts.sum(dim=0)
    return {name: compute_confusion_matrix_metric(_monai_metric_name(name), counts) for name in metric_names}


def _compute_list_with_masks(metric: Any, y_pred: Any, y: Any, mask: Any) -> Any:
    """``IterationMetric._compute_list`` for lists of channel-first tensors, with a matching list of masks."""
    masks = mask if isinstance(mask, (list, tuple)) else [None] * len(y_pred) if mask is None else None
    if masks is None or len(masks) != len(y_pred) or y is None or len(y) != len(y_pred):
        raise ValueError("for lists of channel-first y_pred, give y (and mask, if any) as lists of the same length")
    rets = [
        metric._compute_tensor(p.detach().unsqueeze(0), t.detach().unsqueeze(0), mask=_unsqueeze(m))
        for p, t, m in zip(y_pred, y, masks, strict=True)
    ]
    return torch.cat(rets, dim=0)


def _unsqueeze(m: Any) -> Any:
    return None if m is None else torch.as_tensor(m).unsqueeze(0)


class MaskedConfusionMatrixMetric(ConfusionMatrixMetric):
    """MONAI's :class:`~monai.metrics.ConfusionMatrixMetric` with a ``mask`` argument and Jaccard/Dice names.

    Call it like MONAI's metric, optionally with the mask, once per iteration; ``aggregate()`` returns the
    scores in the order of ``metric_name``::

        metric = MaskedConfusionMatrixMetric(metric_name=("jaccard", "dice", "recall", "specificity"))
        for batch in loader:
            metric(y_pred=(probabilities >= 0.5).float(), y=labels, mask=fields_of_view)
        jaccard, dice, recall, specificity = metric.aggregate()

    ``compute_sample=False`` (default) pools the counts of all images before scoring (the usual pixel-level
    scores of DRIVE); ``True`` scores every image, then averages (the ISIC challenge's per-image Jaccard).

    Args:
        include_background: count channel 0 too (keep ``True`` for a single sigmoid channel).
        metric_name: names of :data:`DEFAULT_SEGMENTATION_METRICS`, ``iou``, ``f1``, ``sensitivity``,
            ``precision`` or any name MONAI's ``ConfusionMatrixMetric`` knows.
        compute_sample, reduction, get_not_nans: as in MONAI's ``ConfusionMatrixMetric``.
        ignore_index: MONAI's ``ignore_index`` (e.g. from :func:`field_of_view_label`); combined with ``mask``.
        threshold: binarise ``y_pred >= threshold`` first, so the same probabilities can feed this metric and
            :class:`PixelROCAUCMetric`; ``None`` expects binary predictions.
    """

    def __init__(
        self,
        include_background: bool = True,
        metric_name: Sequence[str] | str = DEFAULT_SEGMENTATION_METRICS,
        compute_sample: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        ignore_index: int | None = None,
        threshold: float | None = None,
    ) -> None:
        if isinstance(include_background, str):  # a metric name passed positionally, as MONAI's order invites
            raise TypeError(
                f"include_background must be a bool, got {include_background!r}; name the metrics with "
                "metric_name=... (it is the second argument, as in MONAI's ConfusionMatrixMetric)."
            )
        names = (metric_name,) if isinstance(metric_name, str) else tuple(metric_name)
        super().__init__(
            include_background=include_background,
            metric_name=[_monai_metric_name(n) for n in names],
            compute_sample=compute_sample,
            reduction=reduction,
            get_not_nans=get_not_nans,
            ignore_index=ignore_index,
        )
        self.metric_names = names
        self.threshold = threshold

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return masked_confusion_matrix(
            y_pred, y, mask, self.include_background, ignore_index=self.ignore_index, threshold=self.threshold
        )

    def _compute_list(self, y_pred: Any, y: Any = None, mask: Any = None) -> torch.Tensor:  # type: ignore[override]
        return _compute_list_with_masks(self, y_pred, y, mask)

    def aggregate_dict(self, compute_sample: bool = False, reduction: MetricReduction | str | None = None) -> dict:
        """``{name: score}`` in the names given to the constructor (plain floats when the score is a scalar)."""
        results = self.aggregate(compute_sample=compute_sample, reduction=reduction)
        out = {}
        for name, value in zip(self.metric_names, results, strict=True):
            value = value[0] if isinstance(value, tuple) else value
            out[name] = value.item() if value.numel() == 1 else value
        return out


# ----------------------------------------------------------------------------------------------- pixel AUC
def pixel_score_histograms(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    n_bins: int = DEFAULT_AUC_BINS,
    include_background: bool = True,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Histograms of the scores of background and foreground pixels inside ``mask``: ``(C', 2, n_bins)`` int64.

    ``hist[c, 0, k]`` counts background and ``hist[c, 1, k]`` foreground pixels of class ``c`` whose score
    falls in bin ``k = min(floor(p * n_bins), n_bins - 1)``.

    Args:
        y_pred: probabilities in ``[0, 1]``, ``(B, C, *spatial)`` (apply sigmoid / softmax first).
        y: binary (one-hot) labels, same shape; ``C == 1`` labels may hold ``ignore_index``.
        mask, include_background, ignore_index: see :func:`masked_confusion_matrix`.
        n_bins: number of bins (at least 2).

    Raises:
        ValueError: shapes that disagree, scores outside ``[0, 1]`` or not finite, labels other than 0/1.
    """
    if not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an int >= 2, got {n_bins!r}")
    y_pred = _plain(y_pred)
    y = _plain(y, y_pred.device)
    _check_pair(y_pred, y)
    y, valid = _combined_ignore(y, mask, ignore_index)
    if not include_background:
        if y_pred.shape[1] < 2:
            raise ValueError("include_background=False needs at least two channels")
        y_pred, y = y_pred[:, 1:], y[:, 1:]
    p = y_pred.float()
    if p.numel() and (not torch.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"pixel AUC needs probabilities in [0, 1], got values in [{p.min().item():.4g}, {p.max().item():.4g}] "
            "(or non-finite ones); apply sigmoid or softmax to the logits first"
        )
    channels = p.shape[1]
    keep = torch.ones_like(p[:, :1], dtype=torch.bool) if valid is None else valid
    keep = keep.expand_as(p)
    labels = y.float()
    if ((labels != 0) & (labels != 1) & keep).any():
        raise ValueError("y must be binary (0/1, one-hot for several channels) inside the mask")
    bins = (p * n_bins).floor().clamp_(0, n_bins - 1).long()
    channel = torch.arange(channels, device=p.device).view(1, channels, *([1] * (p.ndim - 2)))
    index = (channel * 2 + (labels > 0.5).long()) * n_bins + bins
    counts = torch.bincount(index[keep], minlength=channels * 2 * n_bins)
    return counts.view(channels, 2, n_bins)


def roc_auc_from_histograms(
    histograms: torch.Tensor, return_tie_bound: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """AUC per class from ``(..., 2, n_bins)`` background / foreground score histograms (module docstring).

    Computed in float64 on the CPU (the histograms are small). NaN where a class has no foreground or
    no background pixel.

    Returns:
        the AUCs ``(...)``; with ``return_tie_bound``, also the largest possible deviation from the exact
        AUC due to foreground and background pixels sharing a bin, ``0.5 sum_k pos[k] neg[k] / (P N)``.
    """
    h = _plain(histograms).detach().cpu().to(torch.float64)
    if h.ndim < 2 or h.shape[-2] != 2:
        raise ValueError(f"histograms must have shape (..., 2, n_bins), got {tuple(h.shape)}")
    neg, pos = h[..., 0, :], h[..., 1, :]
    n_neg, n_pos = neg.sum(-1), pos.sum(-1)
    below = torch.cumsum(neg, dim=-1) - neg  # background pixels in lower bins
    pairs = n_pos * n_neg
    auc = (pos * (below + 0.5 * neg)).sum(-1) / pairs
    auc = torch.where(pairs > 0, auc, torch.full_like(auc, float("nan")))
    if not return_tie_bound:
        return auc
    bound = 0.5 * (pos * neg).sum(-1) / pairs
    return auc, torch.where(pairs > 0, bound, torch.full_like(bound, float("nan")))


def _average_auc(aucs: torch.Tensor, average: str) -> torch.Tensor:
    if average == "none":
        return aucs
    if average == "macro":
        defined = aucs[~torch.isnan(aucs)]
        return defined.mean() if defined.numel() else torch.tensor(float("nan"), dtype=aucs.dtype)
    raise ValueError(f"average must be 'macro' or 'none', got {average!r}")


def compute_pixel_roc_auc(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    n_bins: int = DEFAULT_AUC_BINS,
    include_background: bool = True,
    ignore_index: int | None = None,
    average: str = "macro",
) -> torch.Tensor:
    """Pixel-level AUC-ROC inside ``mask`` (histogram method of the module docstring), float64 on the CPU.

    ``average="macro"``: the mean over the classes whose AUC is defined; ``"none"``: per class ``(C',)``.
    """
    histograms = pixel_score_histograms(y_pred, y, mask, n_bins, include_background, ignore_index)
    return _average_auc(roc_auc_from_histograms(histograms), average)


class PixelROCAUCMetric(CumulativeIterationMetric):
    """Pixel-level AUC-ROC accumulated over iterations in constant memory (see the module docstring).

    Each call adds the iteration's pixels (inside ``mask``) to per-class score histograms; ``aggregate()``
    returns the AUC of all pixels seen since the last ``reset()``. Works with MONAI's ignite handlers
    (``IgniteMetricHandler(metric_fn=PixelROCAUCMetric(ignore_index=-1), ...)`` with
    :func:`field_of_view_label`) and across processes (the histograms are gathered and summed).

    Args:
        n_bins: histogram bins over ``[0, 1]``.
        include_background: score channel 0 too (keep ``True`` for a single sigmoid channel).
        average: ``"macro"`` (mean over the classes with a defined AUC) or ``"none"`` (per class).
        ignore_index: MONAI's ``ignore_index`` for labels that mark excluded pixels; combined with ``mask``.
    """

    def __init__(
        self,
        n_bins: int = DEFAULT_AUC_BINS,
        include_background: bool = True,
        average: str = "macro",
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f"n_bins must be an int >= 2, got {n_bins!r}")
        if average not in ("macro", "none"):
            raise ValueError(f"average must be 'macro' or 'none', got {average!r}")
        self.n_bins = n_bins
        self.include_background = include_background
        self.average = average
        self.ignore_index = ignore_index

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The iteration's histograms, ``(1, C', 2, n_bins)``."""
        if y is None:
            raise ValueError("PixelROCAUCMetric needs the labels y")
        return pixel_score_histograms(
            y_pred, y, mask, self.n_bins, self.include_background, self.ignore_index
        ).unsqueeze(0)

    def _compute_list(self, y_pred: Any, y: Any = None, mask: Any = None) -> torch.Tensor:  # type: ignore[override]
        return _compute_list_with_masks(self, y_pred, y, mask)

    def extend(self, *data: Any) -> None:
        """Add the iteration's histograms to the running sum (one buffer entry, however many iterations)."""
        (histograms,) = data
        total = _plain(histograms).sum(dim=0)
        if self._buffers is None or not self._buffers[0]:
            self._buffers = [[total]]
        else:
            running = self._buffers[0][0]
            if running.shape != total.shape:
                raise ValueError(
                    f"the number of classes changed between iterations ({running.shape[0]} -> {total.shape[0]})"
                )
            self._buffers[0][0] = running + total.to(running.device)
        self._synced = False

    def histograms(self) -> torch.Tensor:
        """The accumulated ``(C', 2, n_bins)`` histograms (summed over processes)."""
        buffer = self.get_buffer()
        if buffer is None:
            raise ValueError(f"{type(self).__name__} has no data: call it on at least one batch before aggregate()")
        return buffer.sum(dim=0)

    def aggregate(self, average: str | None = None) -> torch.Tensor:  # type: ignore[override]
        """The AUC of all pixels seen since the last ``reset()`` (float64; ``average`` overrides the constructor's)."""
        return _average_auc(roc_auc_from_histograms(self.histograms()), average or self.average)
