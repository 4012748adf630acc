"""Base of the handlers that gather a classification evaluation over one evaluator run.

:class:`~monai_imbalance.handlers.ClassificationReportHandler` (``metrics.json`` and the confusion matrix) and
:class:`~monai_imbalance.handlers.ClassificationTensorBoard` (scores and curves) read the same evaluator output
the same way: ``(y_pred, y)`` from ``engine.state.output`` into a
:class:`~monai_imbalance.metrics.ClassificationMetric` that is reset when the run starts, gathered over all
ranks and read when it ends. This class holds that part once; the subclasses write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from monai.handlers import from_engine
from monai.utils import CommonKeys

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.metrics.classification import ClassificationMetric

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ClassificationEpochHandler"]


class ClassificationEpochHandler(EpochHandler):
    """Collect ``(y_pred, y)`` of every iteration of an evaluator run into ``self.metric``.

    Args:
        class_names: the class names (default ``"0" .. "C-1"``); checked against ``num_classes``.
        num_classes: expected number of classes (checked when given).
        decision_threshold: optional binary decision threshold on the class-1 probability.
        class_priors: optional class priors for prior-corrected decisions (``argmax_c p_c / pi_c``).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``; default the ``pred`` and
            ``label`` entries of MONAI's engine output.
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).
    """

    def __init__(
        self,
        *,
        class_names: Sequence[str] | None,
        num_classes: int | None,
        decision_threshold: float | None,
        class_priors: Sequence[float] | None,
        output_transform: Callable | None,
        save_rank: int,
        name: str | None,
    ) -> None:
        if class_names is not None:
            if isinstance(class_names, str):
                raise TypeError("class_names must be a sequence of names, got a single string")
            class_names = [str(n) for n in class_names]
            if num_classes is not None and len(class_names) != num_classes:
                raise ValueError(f"got {len(class_names)} class_names for num_classes={num_classes}")
            num_classes = len(class_names)
        self.class_names = class_names
        self.output_transform = (
            output_transform if output_transform is not None else from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        )
        self.save_rank = int(save_rank)
        self.metric = ClassificationMetric(
            num_classes=num_classes, decision_threshold=decision_threshold, class_priors=class_priors
        )
        self._init_logger(name)

    def epoch_started(self, engine: Engine) -> None:
        self.metric.reset()

    def iteration_completed(self, engine: Engine) -> None:
        y_pred, y = self.output_transform(engine.state.output)
        self.metric(y_pred, y)
