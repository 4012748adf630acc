"""Stop training at the first NaN or infinite loss, saying where it happened and which checkpoint is still good.

A NaN loss (a NaN pixel or label, a learning rate too high, float16 overflow) makes every later weight NaN, yet
the run went on until validation failed hundreds of lines later, after saving NaN weights as the newest
checkpoint. :class:`StopOnNonFiniteLoss` checks the loss after every iteration, as ignite's ``TerminateOnNan``
does, but instead of ending the run quietly it raises :class:`NonFiniteLossError` (a ``UserError``: a bundle
run ends in one line), before the epoch's checkpoint is written::

    error: the training loss is nan at epoch 3, iteration 5 of 12 (iteration 29 overall); the last good
    checkpoint is models/last_checkpoint_epoch=2.pt. Check the data ...
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_imbalance.errors import UserError
from monai_imbalance.workflow.run_folder import latest_checkpoint

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite (the message names the epoch, the iteration and the last good
    checkpoint)."""


class StopOnNonFiniteLoss:
    """Raise :class:`NonFiniteLossError` at the first iteration whose loss is not finite.

    Args:
        ckpt_dir: the folder of the run's per-epoch checkpoints (``last_checkpoint_epoch=N.pt``), to name the
            newest one; ``None``: none is named.
        output_transform: ``engine.state.output`` -> the loss (a number or tensor of any shape; every element
            must be finite). Default: MONAI's ``from_engine(["loss"], first=True)``.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike | None = None,
        output_transform: Callable[[Any], Any] | None = None,
    ) -> None:
        self.ckpt_dir = ckpt_dir
        self.output_transform = output_transform if output_transform is not None else from_engine(["loss"], first=True)

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        values = torch.as_tensor(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        if bool(torch.isfinite(values).all()):
            return
        state = engine.state
        per_epoch = state.epoch_length
        within = (state.iteration - 1) % per_epoch + 1 if per_epoch else state.iteration
        of = f" of {per_epoch}" if per_epoch else ""
        kind = "nan" if bool(torch.isnan(values).any()) else "infinite"
        last = latest_checkpoint(self.ckpt_dir) if self.ckpt_dir is not None else None
        saved = f"the last good checkpoint is {last}" if last else "no checkpoint was saved before it"
        raise NonFiniteLossError(
            f"the training loss is {kind} at epoch {state.epoch}, iteration {within}{of} (iteration "
            f"{state.iteration} overall); {saved}. Check the data for NaN/inf pixels or labels, or lower "
            "--learning_rate (with float16, --amp false)."
        )
