"""Warnings for degenerate outputs: one class for (almost) every image, masks that are (almost) all one class.

A network that predicts the majority class for every image, or an empty mask for every image, still gets
respectable accuracy or specificity on imbalanced data; only the confusion matrix or the overlays show it. The
evaluation reports therefore carry a ``"warnings"`` list (``metrics.json``), which the log and the final table
repeat. The rules, with ``share = 0.99`` (:data:`DEGENERATE_SHARE`):

- classification: one class takes ``>= share`` of the predictions (at least 2 samples; a class that also takes
  ``>= share`` of the labels is no warning: the predictions follow the data);
- segmentation (pixels that count, e.g. inside the field of view): the predicted foreground is at most
  ``1 - share`` of the labels' foreground ("(almost) all background": the network finds under 1% of the
  foreground there is), or the predicted background is at most ``1 - share`` of the labels' background
  ("(almost) all foreground"). Relative to the labels, so that small structures (nuclei, vessels) that cover
  a few percent of an image are not mistaken for an empty prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["DEGENERATE_SHARE", "foreground_counts", "mask_share_warnings", "prediction_share_warnings"]

#: the share of the predictions (or the fraction of the labels' pixels missed) that makes an output degenerate
DEGENERATE_SHARE = 0.99


def _check_share(share: float) -> float:
    share = float(share)
    if not 0.5 < share <= 1.0:
        raise ValueError(f"share must lie in (0.5, 1], got {share}")
    return share


def prediction_share_warnings(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    share: float = DEGENERATE_SHARE,
) -> list[str]:
    """Warnings when one class takes ``>= share`` of the predictions (see the module docstring).

    Args:
        confusion: ``C x C`` counts, rows true class, columns predicted class.
        class_names: one name per class (default ``"0" .. "C-1"``).
        share: the share of the predictions that makes them degenerate.

    Returns:
        ``[]`` or one sentence naming the class, its share of the predictions and of the labels.
    """
    share = _check_share(share)
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square C x C matrix, got shape {cm.shape}")
    names = [str(c) for c in range(cm.shape[0])] if class_names is None else [str(n) for n in class_names]
    total = int(cm.sum())
    if total < 2:
        return []
    predicted, labelled = cm.sum(axis=0), cm.sum(axis=1)
    top = int(predicted.argmax())
    if predicted[top] < share * total or labelled[top] >= share * total:
        return []
    return [
        f"degenerate predictions: class {names[top]!r} takes {predicted[top] / total:.1%} of the {total} predictions "
        f"(labels: {labelled[top] / total:.1%}); the network may predict one class for every image"
    ]


def mask_share_warnings(
    predicted_foreground: int,
    label_foreground: int,
    num_pixels: int,
    *,
    share: float = DEGENERATE_SHARE,
) -> list[str]:
    """Warnings when the predicted masks are (almost) all background or all foreground (see the module docstring).

    Args:
        predicted_foreground: predicted foreground pixels, summed over the evaluated images (pixels that count).
        label_foreground: foreground pixels of the labels, over the same pixels.
        num_pixels: pixels that count.
        share: ``1 - share`` is the fraction of the labels' foreground (background) below which the predicted
            foreground (background) is degenerate.

    Returns:
        ``[]`` or one sentence with the predicted and the labels' foreground share.
    """
    share = _check_share(share)
    predicted_foreground, label_foreground, num_pixels = (
        int(predicted_foreground),
        int(label_foreground),
        int(num_pixels),
    )
    if num_pixels <= 0:
        return []
    shares = (
        f"predicted foreground {predicted_foreground / num_pixels:.2%} of the pixels, "
        f"labels {label_foreground / num_pixels:.2%}"
    )
    label_background = num_pixels - label_foreground
    if label_foreground > 0 and predicted_foreground <= (1.0 - share) * label_foreground:
        return [f"degenerate masks: (almost) all background ({shares}); the network may predict no foreground at all"]
    if label_background > 0 and num_pixels - predicted_foreground <= (1.0 - share) * label_background:
        return [f"degenerate masks: (almost) all foreground ({shares}); the network may mark every pixel"]
    return []


def foreground_counts(
    y_pred: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor | Sequence[torch.Tensor],
    *,
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """``[predicted foreground, label foreground, pixels that count]`` of segmentation outputs (an int64 tensor on
    the outputs' device: no host synchronisation).

    Args:
        y_pred: foreground probabilities ``(B, 1, *S)`` (foreground ``>= threshold``), or class scores
            ``(B, C, *S)`` with ``C > 1`` (foreground: the argmax is not class 0); or a sequence of ``(C, *S)``
            items (MONAI's decollated engine output, images of different sizes allowed).
        y: the binary mask of the same shape (one channel), or one-hot ``(B, C, *S)`` labels; pixels equal to
            ``ignore_index`` (one channel) or zero in every channel (one-hot) do not count, the convention of
            :func:`monai_imbalance.metrics.field_of_view_label`.
        threshold: the foreground threshold of one-channel probabilities.
        ignore_index: label value of pixels that do not count (one channel).
    """
    if not isinstance(y_pred, torch.Tensor):
        items = list(zip(y_pred, y, strict=True))
        if not items:
            return torch.zeros(3, dtype=torch.int64)
        return torch.stack(
            [foreground_counts(p[None], t[None], threshold=threshold, ignore_index=ignore_index) for p, t in items]
        ).sum(0)
    if y_pred.shape[1] == 1:
        valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
        predicted = (y_pred >= threshold) & valid
        labelled = (y == 1) & valid
    else:
        predicted_class = y_pred.argmax(1, keepdim=True)
        if y.shape[1] == y_pred.shape[1]:  # one-hot; an all-zero pixel does not count
            valid = y.sum(1, keepdim=True) > 0
            labelled = (y.argmax(1, keepdim=True) != 0) & valid
        else:  # a label map
            valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
            labelled = (y != 0) & valid
        predicted = (predicted_class != 0) & valid
    return torch.stack([predicted.sum(), labelled.sum(), valid.sum()]).to(torch.int64)
