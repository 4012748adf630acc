"""Argument checking and target handling shared by the losses (private module).

Conventions used by every loss of :mod:`monai_imbalance.losses`:

- ``input`` holds logits of shape ``(B, C)`` (classification) or ``(B, C, *S)`` (segmentation, ``S`` spatial
  dims). Half and bfloat16 inputs are promoted to float32 so that the loss is computed in float32 even under
  autocast; float64 stays float64 (used by ``gradcheck``). MONAI ``MetaTensor`` inputs are unwrapped to plain
  tensors (the autograd graph is kept).
- ``target`` is either a *label map* of class indices, shape ``(B,)``, ``(B, 1)``, ``(B, *S)`` or ``(B, 1, *S)``
  (any integer, bool or float dtype holding integers), or a *dense* target with the input's shape (one-hot,
  probabilities, or binary/multi-label masks).
- ``to_onehot_y``: ``None`` infers the form from the shape (a target whose channel axis is missing or has size 1
  while ``C > 1`` is a label map); ``True`` requires a label map, ``False`` a dense target. With ``C == 1``
  (binary sigmoid) the target is the binary mask itself and ``to_onehot_y`` has no effect.
- Per-class vectors (``weight``, per-class ``alpha``) always have length ``C``, background included, whatever
  ``include_background`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import LossReduction

from monai_imbalance.errors import UserError

ClassVector = Sequence[float] | torch.Tensor | np.ndarray


class LossSettingError(UserError, ValueError):
    """A loss was asked for with settings that contradict each other or the network's output (one line to fix)."""


def check_softmax_channels(input: torch.Tensor, softmax: bool, flag: str = "softmax=True") -> None:
    """Refuse a softmax over a one-channel output: it is 1 everywhere, so the loss is constant with zero gradient.

    Raises:
        LossSettingError: ``softmax`` with ``input.shape[1] == 1``.
    """
    if softmax and input.ndim >= 2 and input.shape[1] == 1:
        raise LossSettingError(
            f"{flag} on a one-channel output (input shape {tuple(input.shape)}): a softmax over one channel is 1 "
            "everywhere, so the loss is constant and nothing is learned; use sigmoid=True for a binary (one-channel) "
            "output, or give the network one channel per class."
        )


def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """Return ``value`` as a plain ``torch.Tensor`` (a ``MetaTensor`` is unwrapped, graph kept)."""
    return value.as_tensor() if isinstance(value, MetaTensor) else value


def float_logits(input: torch.Tensor, min_channels: int = 1) -> torch.Tensor:
    """Check logits of shape ``(B, C[, *S])`` and return them as float32 (or float64 when given float64).

    Raises:
        TypeError: ``input`` is not a floating point tensor.
        ValueError: ``input`` has fewer than two dimensions or fewer than ``min_channels`` channels.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor of logits, got {type(input).__name__}.")
    input = plain_tensor(input)
    if not input.is_floating_point():
        raise TypeError(f"input must hold floating point logits, got dtype {input.dtype}.")
    if input.ndim < 2:
        raise ValueError(f"input must have shape (B, C[, *spatial]), got {tuple(input.shape)}.")
    if input.shape[1] < min_channels:
        raise ValueError(
            f"input must have at least {min_channels} channels (classes) on axis 1, got shape {tuple(input.shape)}."
        )
    if input.dtype in (torch.float16, torch.bfloat16):
        input = input.float()
    return input


def check_reduction(reduction: LossReduction | str) -> str:
    """Return the reduction as one of ``"none"``, ``"mean"``, ``"sum"``; ``ValueError`` otherwise."""
    try:
        return LossReduction(reduction).value
    except ValueError:
        raise ValueError(f"reduction must be one of 'none', 'mean', 'sum', got {reduction!r}.") from None


def check_gamma(gamma: float, name: str = "gamma") -> float:
    """A focusing exponent must be a finite number >= 0."""
    gamma = float(gamma)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {gamma}.")
    return gamma


def class_vector(
    value: ClassVector | None, name: str, low: float = 0.0, high: float | None = None
) -> torch.Tensor | None:
    """Convert a per-class sequence to a 1-D float64 tensor, checking that its entries lie in ``[low, high]``.

    Float64 so that the losses can cast it to the input's dtype at use (``vec.to(input)``): float64 input then gets
    the values as given, not their float32 rounding (1e-6 off ``F.cross_entropy`` on sums otherwise).

    Raises:
        ValueError: not 1-D, empty, not finite or out of range.
    """
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        vec = plain_tensor(value).detach().to(dtype=torch.float64)
    else:  # straight to float64: a Python list would otherwise be rounded to float32 on the way
        vec = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if vec.ndim != 1 or vec.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence with one value per class, got shape {tuple(vec.shape)}."
        )
    if not bool(torch.isfinite(vec).all()):
        raise ValueError(f"{name} must hold finite values, got {vec.tolist()}.")
    if bool((vec < low).any()) or (high is not None and bool((vec > high).any())):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} values must be {bounds}, got {vec.tolist()}.")
    return vec


def check_class_length(vec: torch.Tensor | None, num_classes: int, name: str) -> None:
    """``ValueError`` when a per-class vector does not have one entry per input channel."""
    if vec is not None and vec.numel() != num_classes:
        raise ValueError(
            f"{name} has {vec.numel()} entries but the input has {num_classes} channels (classes); "
            "give one value per class, background included."
        )


def split_target(
    input: torch.Tensor, target: torch.Tensor, to_onehot_y: bool | None = None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Tell a label map from a dense target (see the module docstring).

    Returns:
        ``(labels, None)`` with ``labels`` of shape ``(B, *S)`` in the target's dtype, or ``(None, dense)`` with
        ``dense`` of the input's shape.

    Raises:
        TypeError: ``target`` is not a tensor.
        ValueError: the target's shape fits neither form, or contradicts ``to_onehot_y``.
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}.")
    target = plain_tensor(target)
    batch, channels, *spatial = input.shape
    label_shapes = ((batch, *spatial), (batch, 1, *spatial))
    shape = tuple(target.shape)
    if channels == 1:
        # binary (sigmoid) output: the target is the mask itself, with or without its channel axis
        if shape == label_shapes[0]:
            return None, target.unsqueeze(1)
        if shape == tuple(input.shape):
            return None, target
    else:
        is_dense = shape == tuple(input.shape)
        is_labels = shape in label_shapes
        if is_dense and to_onehot_y:
            raise ValueError(
                f"to_onehot_y=True expects a label map of shape {label_shapes[1]} or {label_shapes[0]}, "
                f"got a target with the input's shape {shape}."
            )
        if is_labels and to_onehot_y is False:
            raise ValueError(
                f"target of shape {shape} is a label map but to_onehot_y=False expects a dense target of shape "
                f"{tuple(input.shape)}; pass to_onehot_y=True (or None to infer it)."
            )
        if is_dense:
            return None, target
        if is_labels:
            return (target[:, 0] if len(shape) == input.ndim else target), None
    raise ValueError(
        f"target shape {shape} does not match input shape {tuple(input.shape)}: expected class indices of shape "
        f"{label_shapes[0]} or {label_shapes[1]}, or a dense target of shape {tuple(input.shape)}."
    )


def check_class_indices(labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> None:
    """Check that every entry of a label map is a class index in ``[0, C)`` or ``ignore_index``, without casting it.

    Float labels (MONAI label maps are float) must hold whole numbers: ``1.9`` is refused, not truncated. The
    check reads back once (one host synchronisation): the range and, for float labels, the range of the distance to
    the nearest whole number.

    Raises:
        ValueError: an entry is not a whole number, or is out of range.
    """
    if labels.numel() == 0:
        return
    detached = labels.detach()
    if detached.is_floating_point():
        whole = detached.round()
        # one read-back: the range, and the range of the distance to the nearest whole number (nan stays nan)
        low, high, off_low, off_high = torch.stack([*torch.aminmax(whole), *torch.aminmax(detached - whole)]).tolist()
        if not (off_low == 0.0 and off_high == 0.0):
            bad = detached[detached != whole][0].item()
            raise ValueError(
                f"target holds the non-integral class label {bad:g}; class-index targets must hold whole numbers "
                "(round or threshold the labels first, or pass probabilities with the input's shape)."
            )
        detached = whole
    else:
        low, high = torch.stack(torch.aminmax(detached)).tolist()
    if low >= 0 and high < num_classes:
        return
    bad = (detached < 0) | (detached >= num_classes)
    if ignore_index is not None:
        bad &= detached != ignore_index
    if bool(bad.any()):
        value = int(detached[bad][0])
        ignore = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"target holds class index {value}; expected indices in [0, {num_classes - 1}]{ignore} for an input "
            f"with {num_classes} channels (classes)."
        )


def as_class_indices(labels: torch.Tensor, num_classes: int, ignore_index: int | None) -> torch.Tensor:
    """:func:`check_class_indices`, then the labels as ``int64``.

    Raises:
        ValueError: an entry is not a whole number, or is out of range.
    """
    check_class_indices(labels, num_classes, ignore_index)
    return labels.long()


def empty_batch_loss(input: torch.Tensor, reduction: str) -> torch.Tensor | None:
    """The loss of an empty batch (``B = 0``) for a ``'mean'`` or ``'sum'`` reduction, else ``None``.

    One rule for every loss of the package: an empty batch gives a zero loss whose gradient is zero (a tensor
    still connected to ``input``), never ``nan``. ``'none'`` returns ``None``: the loss computes its (empty)
    unreduced output as usual.
    """
    if input.shape[0] != 0 or reduction == LossReduction.NONE.value:
        return None
    return input.sum() * 0.0


def check_unit_interval(target: torch.Tensor, mask: torch.Tensor | None, what: str) -> None:
    """``ValueError`` unless every (unmasked) entry of a binary/soft target lies in ``[0, 1]``."""
    if target.numel() == 0:
        return
    values = target if mask is None else target.masked_fill(~mask, 0)
    low, high = (float(v) for v in torch.aminmax(values.detach()))
    if low < 0 or high > 1:
        raise ValueError(f"{what} must hold values in [0, 1] (binary or soft labels), got range [{low}, {high}].")


def check_overlap_target(
    input: torch.Tensor, target: torch.Tensor, to_onehot_y: bool, ignore_index: int | None = None
) -> None:
    """Check the target of an overlap (Dice-family) loss: whole class indices in ``[0, C)`` when it is a label map
    to be one-hot encoded (``to_onehot_y`` with ``C > 1``), else a mask with values in ``[0, 1]`` (0/255 masks would
    give a negative loss). ``ignore_index`` entries are exempt.

    Raises:
        TypeError: ``target`` is not a tensor.
        ValueError: non-integral or out-of-range labels, or mask values outside ``[0, 1]``.
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}.")
    target = plain_tensor(target)
    if to_onehot_y and input.shape[1] > 1:
        check_class_indices(target, input.shape[1], ignore_index)
    else:
        mask = target != ignore_index if ignore_index is not None else None
        check_unit_interval(target, mask, "overlap-loss target (a mask)")


POOLINGS = ("image", "batch", "all")


def pooled_axes(ndim: int, batch: bool, pooling: str | None) -> list[int]:
    """Axes an overlap index sums over: ``"image"`` the spatial axes (one index per image and class, MONAI's
    ``batch=False``), ``"batch"`` the batch too (one per class, MONAI's ``batch=True``), ``"all"`` every axis,
    channels included (one index, as the reference Keras codes that flatten the whole tensor).

    ``pooling=None`` follows ``batch``; ``batch=True`` with another pooling is a contradiction.

    Raises:
        ValueError: unknown pooling, or ``batch=True`` with ``pooling`` other than ``"batch"``.
    """
    if pooling is None:
        pooling = "batch" if batch else "image"
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}.")
    if batch and pooling != "batch":
        raise ValueError(f"batch=True means pooling='batch'; it contradicts pooling={pooling!r} (give one of them).")
    spatial = list(range(2, ndim))
    return {"image": spatial, "batch": [0, *spatial], "all": list(range(ndim))}[pooling]


def reduce_loss(loss: torch.Tensor, reduction: str, normaliser: torch.Tensor | float | None = None) -> torch.Tensor:
    """Apply a reduction; ``"mean"`` divides the sum by ``normaliser`` (the element count when ``None``).

    A zero normaliser (every element ignored) yields a zero that is still connected to the graph.
    """
    if reduction == LossReduction.NONE.value:
        return loss
    total = loss.sum()
    if reduction == LossReduction.SUM.value:
        return total
    if normaliser is None:
        return total / max(loss.numel(), 1)
    if isinstance(normaliser, torch.Tensor):
        return total / normaliser.clamp_min(torch.finfo(total.dtype).tiny)
    return total / max(float(normaliser), torch.finfo(total.dtype).tiny)


def class_counts(cls_num_list: ClassVector, name: str = "cls_num_list") -> np.ndarray:
    """Per-class sample counts as a float64 array, ordered by class index.

    Raises:
        ValueError: not a 1-D sequence of at least two finite values > 0 (a zero count has no margin/weight).
    """
    if isinstance(cls_num_list, torch.Tensor):
        cls_num_list = plain_tensor(cls_num_list).detach().cpu().numpy()
    try:
        counts = np.asarray(cls_num_list, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of per-class counts, got {cls_num_list!r}.") from None
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence with one count per class (>= 2 classes), got {counts!r}.")
    if not np.isfinite(counts).all() or (counts <= 0).any():
        raise ValueError(
            f"{name} must hold finite counts > 0 for every class (a class without samples has no margin or "
            f"weight), got {counts.tolist()}."
        )
    return counts


def dense_target(input: torch.Tensor, target: torch.Tensor, to_onehot_y: bool | None = None) -> torch.Tensor:
    """The target as a dense float tensor of the input's shape (class indices become one-hot).

    Raises:
        ValueError: shape mismatch, class indices out of range, or dense values outside ``[0, 1]``.
    """
    labels, dense = split_target(input, target, to_onehot_y)
    if labels is not None:
        labels = as_class_indices(labels, input.shape[1], None)
        return torch.zeros_like(input).scatter_(1, labels.unsqueeze(1), 1.0)
    assert dense is not None
    check_unit_interval(dense, None, "target")
    return dense.to(input.dtype)


def activate(
    input: torch.Tensor, sigmoid: bool, softmax: bool, other_act: Callable[[torch.Tensor], torch.Tensor] | None
) -> torch.Tensor:
    """Probabilities from logits with MONAI's ``sigmoid`` / ``softmax`` / ``other_act`` switches (none: as given).

    Raises:
        ValueError: more than one switch, or ``softmax`` over a single channel.
        TypeError: ``other_act`` is not callable.
    """
    check_activation(sigmoid, softmax, other_act)
    if sigmoid:
        return torch.sigmoid(input)
    if softmax:
        check_softmax_channels(input, softmax)
        return torch.softmax(input, dim=1)
    if other_act is not None:
        return other_act(input)
    return input


def check_activation(
    sigmoid: bool, softmax: bool, other_act: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> None:
    """At most one of ``sigmoid``, ``softmax``, ``other_act``; ``other_act`` callable."""
    if other_act is not None and not callable(other_act):
        raise TypeError(f"other_act must be None or callable, got {type(other_act).__name__}.")
    chosen = [
        name
        for name, on in (("sigmoid=True", sigmoid), ("softmax=True", softmax), ("other_act", other_act is not None))
        if on
    ]
    if len(chosen) > 1:
        raise LossSettingError(f"{' and '.join(chosen)} contradict each other: choose one activation.")
