"""Ignite handler for deferred re-weighting (DRW, the "-DRW" of LDAM-DRW): class weights switched on late.

At the start of every epoch the handler writes the class weights of that epoch into the loss's weight buffer,
in place: uniform weights (ones) for the first ``start_epoch`` epochs, then the effective-number weights
``(1 - beta) / (1 - beta^n_j)`` normalised to sum to ``C`` (:func:`monai_imbalance.losses.drw_class_weights`).
Because the weights depend only on the epoch number, a run resumed from a checkpoint gets the right weights.

Every loss of :mod:`monai_imbalance.losses` with class weights keeps them in a ``weight`` buffer (so do
``torch.nn.CrossEntropyLoss`` and ``torch.nn.NLLLoss``); for MONAI's ``FocalLoss`` / ``DiceLoss`` pass
``attribute="class_weight"``. For these losses uniform weights give the same values as no weights.

In a bundle's ``train.yaml``::

    train:
      handlers:
        - _target_: monai_imbalance.handlers.DeferredReweighting
          loss: "@loss"
          class_counts: "@class_counts"
          start_epoch: 160
          beta: 0.9999
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_imbalance.losses import drw_class_weights

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["DeferredReweighting"]

logger = logging.getLogger(__name__)


class DeferredReweighting:
    """Set a loss's class weights at every ``EPOCH_STARTED``: ones before ``start_epoch``, DRW weights after.

    Args:
        loss: the loss module whose weight buffer is updated in place (e.g. ``LDAMLoss``, ``LMFLoss``,
            ``FocalLoss``, ``CrossEntropyLoss``).
        class_counts: training samples per class, ordered by class index (all ``> 0``).
        start_epoch: number of epochs trained with uniform weights; the weights switch on at the epoch whose
            0-based index is ``start_epoch`` (ignite epoch ``start_epoch + 1``). LDAM-DRW: 160 of 200 epochs.
        beta: effective-number parameter, ``0 <= beta < 1`` (0.9999).
        attribute: name of the weight buffer on ``loss`` (``"weight"``; ``"class_weight"`` for MONAI losses).
        device: device of a buffer the handler has to create (when the loss has no weights yet); default the
            trainer's ``engine.state.device`` if it has one, else the CPU. An existing buffer keeps its device and
            dtype. A new buffer is float64 for this package's losses (they cast it to the input's dtype at use, so
            float64 input gets unrounded weights) and float32 for others (``F.cross_entropy`` wants the input's).

    Raises:
        TypeError: ``loss`` is not a ``torch.nn.Module``.
        ValueError: invalid counts, ``beta`` or ``start_epoch``.
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        class_counts: Sequence[float] | torch.Tensor,
        start_epoch: int,
        beta: float = 0.9999,
        attribute: str = "weight",
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(loss, torch.nn.Module):
            raise TypeError(f"loss must be a torch.nn.Module with a class-weight buffer, got {type(loss).__name__}.")
        if isinstance(start_epoch, bool) or int(start_epoch) != start_epoch or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, got {start_epoch!r}.")
        self.loss = loss
        self.class_counts = class_counts
        self.start_epoch = int(start_epoch)
        self.beta = float(beta)
        self.attribute = attribute
        self.device = device
        # validates counts and beta; float64 on the CPU, as the losses' buffers (cast to the input's dtype at use)
        self.drw_weights = drw_class_weights(class_counts, self.beta, dtype=torch.float64)
        existing = getattr(loss, attribute, None)
        if existing is not None and not isinstance(existing, torch.Tensor):
            raise TypeError(
                f"{type(loss).__name__}.{attribute} is a {type(existing).__name__}, not a tensor buffer; "
                "set attribute= to the name of the loss's class-weight buffer."
            )
        if isinstance(existing, torch.Tensor) and existing.numel() != self.drw_weights.numel():
            raise ValueError(
                f"{type(loss).__name__}.{attribute} has {existing.numel()} entries but class_counts has "
                f"{self.drw_weights.numel()} classes."
            )

    def attach(self, engine: Engine) -> None:
        """Run :meth:`__call__` at every ``EPOCH_STARTED`` of ``engine`` (the trainer)."""
        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        """Apply the weights of the epoch starting now (ignite epochs are 1-based)."""
        device = self.device if self.device is not None else getattr(engine.state, "device", None)
        self.update(engine.state.epoch - 1, device=device)

    def update(self, epoch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Write the weights of the epoch with 0-based index ``epoch`` into the loss; returns the buffer.

        Args:
            epoch: 0-based epoch index.
            device: device for a newly created buffer (ignored when the buffer exists).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        weights = self.drw_weights if epoch >= self.start_epoch else torch.ones_like(self.drw_weights)
        buffer = getattr(self.loss, self.attribute, None)
        with torch.no_grad():
            if isinstance(buffer, torch.Tensor):
                buffer.copy_(weights.reshape(buffer.shape))
            else:
                ours = type(self.loss).__module__.startswith("monai_imbalance.")
                dtype = torch.float64 if ours else torch.float32
                buffer = weights.to(device=device if device is not None else "cpu", dtype=dtype)
                if self.attribute in self.loss._buffers or not hasattr(self.loss, self.attribute):
                    self.loss.register_buffer(self.attribute, buffer)
                else:
                    setattr(self.loss, self.attribute, buffer)
        if epoch == self.start_epoch:
            logger.info(
                "deferred re-weighting: class weights %s from epoch index %d on",
                [round(w, 4) for w in weights.tolist()],
                epoch,
            )
        return buffer
