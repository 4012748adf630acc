"""Settings checked against the run's data and model before any work, each refusal in one line.

The checks of :mod:`.override_values` look at one value; these look at a value together with what it meets:

- :func:`check_batch_size`: a training batch larger than the training set. With a batch-balanced sampler
  (drawing with replacement) ``--batch_size 100000`` on 70 images built 6.5 GB batches until the machine's
  out-of-memory killer ended the run; without one the DataLoader silently gives one short batch.
- :func:`check_classes_for_loss`: a class without training images under a loss that sets a per-class margin or
  weight from the class counts (LDAM, LMF; class weighting), which is undefined for a count of 0 (89 lines).
- :func:`check_checkpoint_fits`: a checkpoint trained with other settings (number of classes, channels,
  network): PyTorch's ``size mismatch`` at the end of a 131-line traceback, after start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_imbalance.errors import UserError
from monai_imbalance.workflow.override_values import OverrideValueError

__all__ = [
    "COUNT_BASED_LOSSES",
    "CheckpointMismatchError",
    "EmptyClassError",
    "check_batch_size",
    "check_checkpoint_fits",
    "check_classes_for_loss",
]

COUNT_BASED_LOSSES = ("ldam", "lmf", "lmf_official")
"""``get_loss`` names whose margins (and, for ``lmf_official``, weights) come from the training class counts."""


class EmptyClassError(UserError, ValueError):
    """A class has no training images, and the loss or class weighting needs at least one of each."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint's tensors do not fit the network the run builds."""


def check_batch_size(batch_size: int, num_items: int, *, key: str = "batch_size", what: str = "training items") -> None:
    """Refuse a batch larger than the data set it is drawn from.

    Args:
        batch_size: the DataLoader's batch size.
        num_items: items of the data set an epoch draws from (images, or image patches).
        key: the override that sets ``batch_size`` (named in the message).
        what: what the items are, for the message.

    Raises:
        OverrideValueError: ``batch_size > num_items`` (and ``num_items > 0``; an empty set is the data check's).
    """
    if 0 < num_items < batch_size:
        raise OverrideValueError(
            f"--{key} {batch_size}: larger than the {num_items} {what}; use --{key} {num_items} or less (a larger "
            "batch repeats images and can exhaust the memory)"
        )


def check_classes_for_loss(
    class_counts: Sequence[int] | torch.Tensor,
    class_names: Sequence[str],
    *,
    loss_name: str,
    class_weighting: str = "none",
) -> None:
    """Refuse a class with no training images when ``loss_name`` or ``class_weighting`` needs one of each.

    LDAM margins ``C / n_c^(1/4)``, the LMF weights and inverse class weights are undefined (infinite) for
    ``n_c = 0``; cross-entropy and focal loss train without the class (the model then never predicts it).

    Raises:
        EmptyClassError: the message names the classes (name and index), the setting and what to do.
    """
    counts = [int(c) for c in (class_counts.tolist() if isinstance(class_counts, torch.Tensor) else class_counts)]
    empty = [index for index, count in enumerate(counts) if count == 0]
    needs = []
    if str(loss_name).lower() in COUNT_BASED_LOSSES:
        needs.append(f"--loss_name {loss_name} sets per-class margins from the training counts")
    if str(class_weighting).lower() != "none":
        needs.append(f"--class_weighting {class_weighting} weighs classes by their training counts")
    if not empty or not needs:
        return
    names = ", ".join(f"'{class_names[i]}' (class {i})" if i < len(class_names) else f"class {i}" for i in empty)
    raise EmptyClassError(
        f"no training images of {names}, and {' and '.join(needs)}: add images of "
        f"{'that class' if len(empty) == 1 else 'those classes'} to the training split (or use more items, "
        "--max_items_per_split, or other --split_fractions), or train with --loss_name ce or focal and "
        "--class_weighting none"
    )


def check_checkpoint_fits(
    checkpoint: str | os.PathLike, network: torch.nn.Module, *, key: str = "model", limit: int = 3
) -> None:
    """Refuse a checkpoint whose tensors do not fit ``network``: names, checkpoint shapes and network shapes.

    Args:
        checkpoint: a weights-only checkpoint: the network's state dict, or a dict holding it under ``key``
            (the bundles' ``model.pt`` and "last" checkpoints). An unreadable file passes here: the loader
            reports it.
        network: the network the run built.
        key: the entry of the checkpoint that holds the network's state dict.
        limit: how many differing tensors the message lists.

    Raises:
        CheckpointMismatchError: a tensor's shape differs, or the names differ (another network).
    """
    try:
        state: Any = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    except Exception:
        return
    if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
        state = state[key]
    if not isinstance(state, Mapping):
        return
    expected = network.state_dict()
    shapes = [
        (name, tuple(state[name].shape), tuple(tensor.shape))
        for name, tensor in expected.items()
        if name in state and isinstance(state[name], torch.Tensor) and state[name].shape != tensor.shape
    ]
    advice = (
        "the checkpoint was trained with other settings (number of classes, --in_channels, --network_name or "
        "its options); evaluate it with the settings it was trained with, or point --ckpt_path at the right one"
    )
    if shapes:
        listed = "; ".join(
            f"{name}: {list(ours)} in the checkpoint, {list(theirs)} in the network"
            for name, ours, theirs in shapes[:limit]
        )
        more = f" (and {len(shapes) - limit} more)" if len(shapes) > limit else ""
        raise CheckpointMismatchError(f"{checkpoint} does not fit the network: {listed}{more}; {advice}")
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors of the network are not in it (e.g. {', '.join(missing[:limit])})")
        if unexpected:
            parts.append(f"it holds {len(unexpected)} the network lacks (e.g. {', '.join(unexpected[:limit])})")
        raise CheckpointMismatchError(f"{checkpoint} is not a checkpoint of this network: {'; '.join(parts)}; {advice}")
