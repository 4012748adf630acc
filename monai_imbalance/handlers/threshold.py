"""Ignite handler that chooses the decision threshold on the validation predictions and saves it in the metrics JSON.

Attach it to the validation evaluator (a ``SupervisedEvaluator``). Over every validation epoch it collects
the class probabilities and labels from ``engine.state.output`` (MONAI's decollated list of
``{"pred": ..., "label": ...}`` dicts, or a batched dict when ``decollate=False``); when the epoch
completes it chooses the rule and merges it into the metrics JSON with
:func:`monai_imbalance.reporting.update_metrics_json`, under ``key``:

- binary (``method="f1"`` or ``"youden"``), with :func:`monai_imbalance.transforms.select_threshold`::

    {"method": "f1", "threshold": 0.31, "score": 0.84, "epoch": 7, "num_samples": 524}

- any number of classes (``method="prior_correction"``, needs the training ``class_counts``), with the
  validation macro-F1 of plain ``argmax`` and of the prior-corrected ``argmax`` for comparison::

    {"method": "prior_correction", "class_priors": [...], "macro_f1_argmax": 0.61,
     "macro_f1_corrected": 0.66, "epoch": 7, "num_samples": 1003}

By default (``only_on_best=True``) it writes only in the epochs where the evaluator's key metric improves,
i.e. for the model the ``CheckpointSaver`` keeps as the best, so that the evaluation pairs that model with
its own threshold (without a key metric it writes every epoch). In a train.yaml::

    validate:
      handlers:
        - _target_: monai_imbalance.handlers.ThresholdSelector
          metrics_json: "$@output_dir + '/metrics.json'"
          method: f1
          output_transform: "$monai.handlers.from_engine(['pred', 'label'])"

``pred`` must hold probabilities (``Activationsd(keys='pred', softmax=True)`` or ``sigmoid=True`` in the
evaluator's postprocessing, before any ``AsDiscreted``). At evaluation,
:class:`monai_imbalance.transforms.ApplyThresholdd` reads the entry back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.utils import CommonKeys, IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_imbalance.errors import check_choice
from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.metrics.classification import f1_score, needs_probabilities_message, prediction_form
from monai_imbalance.reporting import update_metrics_json
from monai_imbalance.transforms.threshold import THRESHOLD_CRITERIA, class_priors, prior_correction, select_threshold

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["THRESHOLD_METHODS", "ThresholdSelector", "stack_samples"]

THRESHOLD_METHODS = (*THRESHOLD_CRITERIA, "prior_correction")


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


class ThresholdSelector(EpochHandler):
    """Choose the decision rule on each validation epoch's predictions and merge it into the metrics JSON.

    Args:
        metrics_json: path of the metrics JSON (created if missing; other entries are kept).
        method: ``"f1"`` or ``"youden"`` (binary: 1 sigmoid channel or 2 softmax channels), or
            ``"prior_correction"`` (any number of classes; needs ``class_counts``).
        class_counts: training class counts ``n_c`` (e.g. ``monai_imbalance.data.class_counts`` of the training
            datalist's labels); the priors are ``n_c / sum n``. Required for ``"prior_correction"``.
        key: the entry of the metrics JSON to write.
        output_transform: extracts ``(pred, label)`` from ``engine.state.output``; default
            ``monai.handlers.from_engine(["pred", "label"])``.
        only_on_best: write only when the evaluator's key metric improved this epoch (the epoch whose model the
            best checkpoint holds); without a key metric every epoch is written.
        save_rank: in distributed runs the predictions of all ranks are gathered; this rank writes the file.
        name: logger name; default the engine's logger.

    Attributes:
        result: the last chosen rule (the dict written to the JSON), ``None`` before the first epoch.

    Raises:
        ValueError: an unknown method, or ``"prior_correction"`` without ``class_counts``; at the end of an
            epoch, predictions that are not probabilities (class decisions after ``AsDiscreted`` included:
            class indices, or rows that are all exactly one-hot) or labels with a single class (binary).
    """

    def __init__(
        self,
        metrics_json: str | os.PathLike,
        method: str = "f1",
        class_counts: Sequence[float] | None = None,
        key: str = "decision_threshold",
        output_transform: Callable | None = None,
        only_on_best: bool = True,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        check_choice(method, THRESHOLD_METHODS, "threshold method")
        if method == "prior_correction" and class_counts is None:
            raise ValueError("method='prior_correction' needs the training class_counts")
        self.metrics_json = metrics_json
        self.method = method
        self.class_priors = None if class_counts is None else class_priors(class_counts)
        self.key = key
        self.output_transform = output_transform or from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        self.only_on_best = only_on_best
        self.save_rank = save_rank
        self._init_logger(name)
        self.result: dict[str, Any] | None = None
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def epoch_started(self, engine: Engine) -> None:
        self._preds, self._labels = [], []

    def iteration_completed(self, engine: Engine) -> None:
        preds, labels = self.output_transform(engine.state.output)
        p, y = stack_samples(preds, labels)
        self._preds.append(p)
        self._labels.append(y)

    def choose(self, probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """The rule for ``(M, C)`` probabilities and ``(M,)`` labels (what is written, without epoch)."""
        if self.method in THRESHOLD_CRITERIA:
            threshold, score = select_threshold(probs, labels, self.method)
            return {"method": self.method, "threshold": threshold, "score": score, "num_samples": len(labels)}
        if probs.shape[1] == 1:  # a sigmoid output as two classes
            probs = torch.cat([1 - probs, probs], dim=1)
        corrected = prior_correction(probs, self.class_priors, dim=1)
        return {
            "method": self.method,
            "class_priors": self.class_priors,
            "macro_f1_argmax": f1_score(probs, labels, average="macro"),
            "macro_f1_corrected": f1_score(corrected, labels, average="macro"),
            "num_samples": len(labels),
        }

    def epoch_completed(self, engine: Engine) -> None:
        if not self._preds:
            return
        probs, labels = torch.cat(self._preds), torch.cat(self._labels)
        if idist.get_world_size() > 1:
            probs = evenly_divisible_all_gather(probs, concat=True)
            labels = evenly_divisible_all_gather(labels, concat=True)
        form = prediction_form(probs)
        if form != "probabilities":
            raise ValueError(needs_probabilities_message(f"{type(self).__name__} (decision-threshold choice)", form))
        has_key_metric = getattr(engine.state, "key_metric_name", None) is not None
        is_best = not has_key_metric or getattr(engine.state, "best_metric_epoch", -1) == engine.state.epoch
        if self.only_on_best and not is_best:
            return
        if idist.get_rank() != self.save_rank:
            return
        self.result = {**self.choose(probs, labels), "epoch": int(engine.state.epoch)}
        update_metrics_json(self.metrics_json, {self.key: self.result})
        self.logger.info(f"decision rule for {self.key} ({self.method}) written to {self.metrics_json}: {self.result}")
