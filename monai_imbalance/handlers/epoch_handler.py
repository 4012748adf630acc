"""The shape shared by the handlers that gather an evaluator's whole epoch before acting on it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["EpochHandler"]


class EpochHandler:
    """Base class: ``epoch_started`` (reset), ``iteration_completed`` (collect), ``epoch_completed`` (act).

    :meth:`attach` registers the three methods once per engine (attaching twice is harmless) and, when the
    handler was made without a logger ``name``, logs through the engine's logger. Subclasses set
    ``self._name`` and ``self.logger`` (e.g. with :meth:`_init_logger`) and override the three methods.
    """

    _name: str | None = None
    logger: logging.Logger = logging.getLogger(__name__)

    def _init_logger(self, name: str | None) -> None:
        self._name = name
        self.logger = logging.getLogger(name)

    def attach(self, engine: Engine) -> None:
        """Register the three epoch methods on ``engine``."""
        if self._name is None:
            self.logger = engine.logger
        for event, handler in (
            (Events.EPOCH_STARTED, self.epoch_started),
            (Events.ITERATION_COMPLETED, self.iteration_completed),
            (Events.EPOCH_COMPLETED, self.epoch_completed),
        ):
            if not engine.has_event_handler(handler, event):
                engine.add_event_handler(event, handler)

    def epoch_started(self, engine: Engine) -> None:
        """Reset what the previous epoch collected."""

    def iteration_completed(self, engine: Engine) -> None:
        """Collect from ``engine.state``."""
        raise NotImplementedError

    def epoch_completed(self, engine: Engine) -> None:
        """Act on what the epoch collected."""
        raise NotImplementedError
