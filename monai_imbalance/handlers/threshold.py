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
from typing import Any

import torch

from monai_imbalance.errors import check_choice
from monai_imbalance.handlers.validation_fit import ValidationFitHandler, stack_samples
from monai_imbalance.metrics.classification import f1_score
from monai_imbalance.transforms.threshold import THRESHOLD_CRITERIA, class_priors, prior_correction, select_threshold

__all__ = ["THRESHOLD_METHODS", "ThresholdSelector", "stack_samples"]  # stack_samples: its home before 0.3

THRESHOLD_METHODS = (*THRESHOLD_CRITERIA, "prior_correction")


class ThresholdSelector(ValidationFitHandler):
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
        result: the last entry written, ``{key: rule}`` (the rule with its epoch), ``None`` before the first epoch.

    Raises:
        ValueError: an unknown method, or ``"prior_correction"`` without ``class_counts``; at the end of an
            epoch, predictions that are not probabilities (class decisions after ``AsDiscreted`` included:
            class indices, or rows that are all exactly one-hot) or labels with a single class (binary).
    """

    purpose = "decision-threshold choice"

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
        super().__init__(
            metrics_json, output_transform=output_transform, only_on_best=only_on_best, save_rank=save_rank, name=name
        )
        self.method = method
        self.class_priors = None if class_counts is None else class_priors(class_counts)
        self.key = key

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

    def fit(self, probs: torch.Tensor, labels: torch.Tensor, epoch: int) -> dict[str, Any]:
        return {self.key: {**self.choose(probs, labels), "epoch": epoch}}
