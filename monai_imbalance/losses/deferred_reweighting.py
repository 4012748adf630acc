"""Class weights of deferred re-weighting (DRW, Cao et al. 2019), from the "effective number" of samples.

For class ``j`` with ``n_j`` samples and ``0 <= beta < 1`` (Cui et al. 2019):

    w_j = (1 - beta) / (1 - beta^n_j),   then scaled so that sum_j w_j = C.

``beta = 0`` gives uniform weights; ``beta -> 1`` approaches inverse class frequency. In LDAM-DRW training is
plain (uniform weights) for the first ``start_epoch`` epochs and re-weighted afterwards (the official recipe:
``beta = 0.9999``, switched on at epoch 160 of 200). :func:`deferred_class_weights` gives the weights of one
epoch; :class:`monai_imbalance.handlers.DeferredReweighting` applies them to a loss during ignite training.
"""

from __future__ import annotations

import numpy as np
import torch

from monai_imbalance.losses._inputs import ClassVector, class_counts

__all__ = ["deferred_class_weights", "drw_class_weights"]


def drw_class_weights(
    cls_num_list: ClassVector,
    beta: float = 0.9999,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Effective-number class weights ``(1 - beta) / (1 - beta^n_j)`` normalised to sum to ``C``.

    Args:
        cls_num_list: training samples per class, ordered by class index, all ``> 0``.
        beta: ``0 <= beta < 1``.
        device: device of the returned tensor.
        dtype: floating dtype of the returned tensor.

    Returns:
        Tensor of shape ``(C,)``.

    Raises:
        ValueError: invalid counts or ``beta``.
    """
    counts = class_counts(cls_num_list)
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must satisfy 0 <= beta < 1, got {beta}.")
    # 1 - beta^n computed as -expm1(n log beta): accurate for beta close to 1
    weights = np.ones_like(counts) if beta == 0.0 else (1.0 - beta) / -np.expm1(counts * np.log(beta))
    weights = weights * (counts.size / weights.sum())
    return torch.as_tensor(weights, dtype=dtype, device=device)


def deferred_class_weights(
    cls_num_list: ClassVector,
    epoch: int,
    start_epoch: int,
    beta: float = 0.9999,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Class weights for the epoch with 0-based index ``epoch``: ones before ``start_epoch``, DRW weights after.

    Args:
        cls_num_list: training samples per class, ordered by class index.
        epoch: 0-based index of the epoch about to be trained (ignite's ``engine.state.epoch - 1`` at
            ``EPOCH_STARTED``).
        start_epoch: number of epochs trained with uniform weights (LDAM-DRW: 160).
        beta: see :func:`drw_class_weights`.
        device: device of the returned tensor.
        dtype: floating dtype of the returned tensor.

    Raises:
        ValueError: negative ``epoch`` or ``start_epoch``, or invalid counts / ``beta``.
    """
    if int(epoch) < 0 or int(start_epoch) < 0:
        raise ValueError(f"epoch and start_epoch must be >= 0, got epoch={epoch}, start_epoch={start_epoch}.")
    weights = drw_class_weights(cls_num_list, beta, device=device, dtype=dtype)
    return weights if int(epoch) >= int(start_epoch) else torch.ones_like(weights)
