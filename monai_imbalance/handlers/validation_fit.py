"""The shape of the handlers that fit something on a validation epoch's predictions and store it with the model.

A decision rule (:class:`~monai_imbalance.handlers.ThresholdSelector`), a temperature and a referral rule
(:class:`~monai_imbalance.handlers.ReferralSelector`) are all chosen the same way: collect the epoch's ``(pred,
label)`` pairs as samples, gather them from every process, and, on the epoch whose model the best checkpoint holds
(the evaluator's key metric improved), fit and merge the result into the model folder's ``metrics.json``, where
evaluation and inference read it back. :class:`ValidationFitHandler` does the collecting, gathering and writing;
a subclass says what is fitted (:meth:`~ValidationFitHandler.fit`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.utils import CommonKeys, IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.metrics.classification import needs_probabilities_message, prediction_form
from monai_imbalance.reporting import update_metrics_json

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ValidationFitHandler", "stack_samples"]


def _stack(items: Any, name: str) -> torch.Tensor:
    if isinstance(items, torch.Tensor):
        return items.detach()
    if isinstance(items, (list, tuple)) and items:
        return torch.stack([torch.as_tensor(i).detach() for i in items])
    raise TypeError(f"{name} must be a tensor or a non-empty list of per-item tensors, got {type(items).__name__}")


def stack_samples(preds: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten batched or decollated predictions into samples: ``(M, C)`` probabilities and ``(M,)`` labels.

    Args:
        preds: ``(N, C, *spatial)`` or a list of ``N`` items ``(C, *spatial)`` (``spatial`` is empty for
            classification); every element of ``spatial`` becomes a sample (``M = N * prod(spatial)``).
        labels: class indices ``(N,)``, ``(N, 1, *spatial)`` or ``(N, *spatial)``, or one-hot ``(N, C, *spatial)``
            (``C > 1``), or the corresponding list of items.

    Returns:
        float32 probabilities ``(M, C)`` and int64 labels ``(M,)``, on the CPU.

    Raises:
        ValueError: shapes that do not match; TypeError: inputs that are not tensors.
    """
    p = _stack(preds, "pred").float().cpu()
    y = _stack(labels, "label").cpu()
    if p.ndim < 2:
        raise ValueError(f"pred must be channel-first with a class dimension (N, C, ...), got {tuple(p.shape)}")
    channels = p.shape[1]
    if y.ndim == p.ndim and y.shape[1] == channels and channels > 1:
        y = y.argmax(dim=1)  # one-hot
    elif y.ndim == p.ndim and y.shape[1] == 1:
        y = y[:, 0]
    if tuple(y.shape) != (p.shape[0], *p.shape[2:]):
        raise ValueError(
            f"label shape {tuple(y.shape)} does not match pred shape {tuple(p.shape)}: expected class indices "
            f"{(p.shape[0], *p.shape[2:])} (or with a channel of 1) or one-hot {tuple(p.shape)}"
        )
    if torch.is_floating_point(y) and not torch.equal(y, y.round()):
        raise ValueError("label must hold integer class indices (or one-hot), got non-integer values")
    return p.movedim(1, -1).reshape(-1, channels), y.reshape(-1).long()


class ValidationFitHandler(EpochHandler):
    """Collect a validation epoch's probabilities and labels; on its best epoch, :meth:`fit` and write the result.

    Args:
        metrics_json: the model folder's ``metrics.json`` (created if missing; other entries are kept).
        output_transform: extracts ``(pred, label)`` from ``engine.state.output``; default
            ``monai.handlers.from_engine(["pred", "label"])``. ``pred`` must hold probabilities.
        only_on_best: fit only when the evaluator's key metric improved this epoch (the epoch whose model the
            best checkpoint holds); without a key metric every epoch is fitted.
        save_rank: in distributed runs the predictions of all ranks are gathered; this rank fits and writes.
        name: logger name; default the engine's logger.

    Attributes:
        result: the entries written last (``{key: {..., "epoch": N}}``), ``None`` before the first fit.
    """

    #: what the fit is for, named in the error on predictions that are not probabilities
    purpose = "a rule fitted on validation"
    #: the fewest classes (channels) the fit needs
    min_classes = 1

    def __init__(
        self,
        metrics_json: str | os.PathLike,
        *,
        output_transform: Callable | None = None,
        only_on_best: bool = True,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        self.metrics_json = metrics_json
        self.output_transform = output_transform or from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        self.only_on_best = bool(only_on_best)
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self.result: dict[str, Any] | None = None
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    @property
    def active(self) -> bool:
        """Whether there is anything to fit."""
        return True

    def fit(self, probs: torch.Tensor, labels: torch.Tensor, epoch: int) -> dict[str, Any]:
        """The entries to merge into ``metrics_json`` (``{key: {..., "epoch": epoch}}``) for ``(M, C)``
        probabilities and ``(M,)`` labels of the validation ``epoch``."""
        raise NotImplementedError

    def epoch_started(self, engine: Engine) -> None:
        self._preds, self._labels = [], []

    def iteration_completed(self, engine: Engine) -> None:
        preds, labels = self.output_transform(engine.state.output)
        p, y = stack_samples(preds, labels)
        self._preds.append(p)
        self._labels.append(y)

    def epoch_completed(self, engine: Engine) -> None:
        if not self._preds or not self.active:
            return
        probs, labels = torch.cat(self._preds), torch.cat(self._labels)
        if idist.get_world_size() > 1:
            probs = evenly_divisible_all_gather(probs, concat=True)
            labels = evenly_divisible_all_gather(labels, concat=True)
        form = prediction_form(probs)
        if form != "probabilities" or probs.shape[1] < self.min_classes:
            raise ValueError(needs_probabilities_message(f"{type(self).__name__} ({self.purpose})", form))
        has_key_metric = getattr(engine.state, "key_metric_name", None) is not None
        is_best = not has_key_metric or getattr(engine.state, "best_metric_epoch", -1) == engine.state.epoch
        if (self.only_on_best and not is_best) or idist.get_rank() != self.save_rank:
            return
        self.result = self.fit(probs, labels, int(engine.state.epoch))
        update_metrics_json(self.metrics_json, self.result)
        for key, value in self.result.items():
            self.logger.info(f"{key} written to {self.metrics_json}: {value}")
