"""Ignite handler: what the uncertainty of a segmentation is worth, per pixel and per image.

Attach it to a segmentation evaluation's ``SupervisedEvaluator`` *after*
:class:`~monai_imbalance.handlers.MetricsReportHandler` (it adds its entries to the report that handler wrote under
``key``). ``pred`` holds sigmoid probabilities ``(C, *spatial)`` per image (after ``Activationsd(sigmoid=True)`` or
the mean of :class:`~monai_imbalance.inferers.MCDropoutInferer`), ``label`` the binary masks of the same shape and,
optionally, ``mask_transform`` a field of view (pixels outside it do not count). A pixel is predicted foreground
when ``p >= threshold`` and is *wrong* when that disagrees with the label. Every uncertainty score the run gives is
used (``1 - max(p, 1 - p)`` and the binary entropy always; with Monte Carlo dropout also the mutual information and
the variance, from the inferer's ``last_output``):

- ``pixel_uncertainty_auroc``: the AUC of the pixel uncertainty as a detector of the wrong pixels, over every pixel
  of the run (histograms of the scores scaled to ``[0, 1]`` by their largest possible value, as
  :class:`~monai_imbalance.metrics.PixelROCAUCMetric`: exact up to pixels that share one of the 65536 bins);
- image-level referral: the uncertainty of an image is the mean pixel uncertainty over its predicted foreground
  (over the whole field of view when nothing is predicted), its quality the Dice ``2 TP / (2 TP + FP + FN)`` (1
  for an empty prediction of an empty mask); ``referral`` holds the mean Dice of the images kept at each referral
  rate (:func:`~monai_imbalance.metrics.retained_mean`) and ``image_aurc`` the area under the curve of
  ``1 - Dice`` against coverage (:func:`~monai_imbalance.metrics.aurc`).

The chosen ``score`` fills those keys; ``uncertainty_scores`` holds them for every score. Multi-process: the
histograms and per-image values of all ranks are gathered, ``save_rank`` writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.utils import CommonKeys, IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.inferers.mc_dropout import MCDropoutInferer
from monai_imbalance.metrics.segmentation import DEFAULT_AUC_BINS, pixel_score_histograms, roc_auc_from_histograms
from monai_imbalance.metrics.selective import REFERRAL_RATES, aurc, retained_mean
from monai_imbalance.metrics.uncertainty import (
    MC_ONLY_SCORES,
    SIGMOID_SCORE_MAX,
    UNCERTAINTY_SCORES,
    uncertainty_from_output,
)
from monai_imbalance.reporting import load_metrics_json, update_metrics_json

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SegmentationUncertaintyHandler", "image_uncertainty"]


def image_uncertainty(uncertainty: torch.Tensor, foreground: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean of a pixel uncertainty map over the predicted foreground (inside ``valid``); over ``valid`` if none."""
    keep = torch.ones_like(foreground, dtype=torch.bool) if valid is None else valid.bool().expand_as(foreground)
    region = foreground.bool() & keep
    if not region.any():
        region = keep
    return float(uncertainty.double()[region].mean()) if region.any() else 0.0


def _dice(foreground: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor | None) -> float:
    keep = torch.ones_like(foreground, dtype=torch.bool) if valid is None else valid.bool().expand_as(foreground)
    tp = int((foreground & truth & keep).sum())
    fp = int((foreground & ~truth & keep).sum())
    fn = int((~foreground & truth & keep).sum())
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _items(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return list(x.unbind(0))
    return [torch.as_tensor(i) for i in x]


class SegmentationUncertaintyHandler(EpochHandler):
    """Add the pixel uncertainty-error AUROC and image-level referral of every evaluator run to its report.

    Args:
        metrics_file: the run's ``metrics.json`` (its entry ``key`` is extended; other entries are kept).
        key: the report's entry, e.g. ``"test"``.
        threshold: foreground probability threshold (as the segmentation metrics').
        score: the uncertainty score of the main keys; a Monte Carlo score without Monte Carlo dropout falls back
            to ``"max_probability"`` (recorded in ``uncertainty_score``).
        rates: referral rates of the image-level table.
        output_transform: ``(pred, label)`` from ``engine.state.output``; default ``pred`` and ``label``.
        mask_transform: the field of view from ``engine.state.output`` (e.g. ``from_engine(["fov"])``), or ``None``.
        n_bins: histogram bins of the pixel AUROC.
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).
    """

    def __init__(
        self,
        metrics_file: str | os.PathLike,
        key: str = "test",
        threshold: float = 0.5,
        score: str = "max_probability",
        rates: Sequence[float] = REFERRAL_RATES,
        output_transform: Callable | None = None,
        mask_transform: Callable | None = None,
        n_bins: int = DEFAULT_AUC_BINS,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        if score not in UNCERTAINTY_SCORES:
            raise ValueError(f"unknown uncertainty score {score!r}; choose one of {UNCERTAINTY_SCORES}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
        self.metrics_file = Path(metrics_file)
        self.key = key
        self.threshold = float(threshold)
        self.score = score
        self.rates = tuple(float(r) for r in rates)
        self.output_transform = output_transform or from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        self.mask_transform = mask_transform
        self.n_bins = int(n_bins)
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self.last_report: dict[str, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self._histograms: dict[str, torch.Tensor] = {}
        self._image_scores: dict[str, list[float]] = {}
        self._dice: list[float] = []
        self._mc = False

    def epoch_started(self, engine: Engine) -> None:
        self._reset()

    def _maps(self, engine: Engine, probs: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
        inferer = getattr(engine, "inferer", None)
        output: Mapping[str, Any] | torch.Tensor = probs[None]
        if (
            isinstance(inferer, MCDropoutInferer)
            and inferer.last_output is not None
            and inferer.activation == "sigmoid"
        ):
            output = {
                k: v[index : index + 1] if isinstance(v, torch.Tensor) else v for k, v in inferer.last_output.items()
            }
            output["mean"] = probs[None]
            self._mc = True
        maps = {}
        for score in UNCERTAINTY_SCORES:
            if score in MC_ONLY_SCORES and not isinstance(output, Mapping):
                continue
            u = uncertainty_from_output(output, score, activation="sigmoid")[0].detach()
            if u.shape != probs.shape:
                raise ValueError(f"the uncertainty {score!r} has shape {tuple(u.shape)}, pred {tuple(probs.shape)}")
            maps[score] = u
        return maps

    def iteration_completed(self, engine: Engine) -> None:
        preds, labels = self.output_transform(engine.state.output)
        masks = self.mask_transform(engine.state.output) if self.mask_transform is not None else None
        preds, labels = _items(preds), _items(labels)
        masks = _items(masks) if masks is not None else [None] * len(preds)
        for index, (p, y, m) in enumerate(zip(preds, labels, masks, strict=True)):
            p = (p.as_tensor() if hasattr(p, "as_tensor") else p).detach()
            y = torch.as_tensor(y).to(p.device)
            if y.shape != p.shape:
                raise ValueError(f"label shape {tuple(y.shape)} does not match pred {tuple(p.shape)}")
            valid = None if m is None else (torch.as_tensor(m).to(p.device) > 0)
            foreground = p.float() >= self.threshold
            truth = y > 0.5
            wrong = (foreground != truth).float()
            self._dice.append(_dice(foreground, truth, valid))
            for score, u in self._maps(engine, p.float(), index).items():
                scaled = (u.float() / SIGMOID_SCORE_MAX[score]).clamp(0.0, 1.0)
                h = pixel_score_histograms(
                    scaled[None], wrong[None], None if valid is None else valid[None], n_bins=self.n_bins
                ).sum(dim=0)
                self._histograms[score] = h if score not in self._histograms else self._histograms[score] + h
                self._image_scores.setdefault(score, []).append(image_uncertainty(u, foreground, valid))

    def report(self) -> dict[str, Any]:
        """The entries added to the report (module docstring) from what this process collected (and gathered)."""
        dice = torch.tensor(self._dice, dtype=torch.float64)
        scores = {s: torch.tensor(v, dtype=torch.float64) for s, v in self._image_scores.items()}
        histograms = dict(self._histograms)
        if idist.get_world_size() > 1:
            dice = evenly_divisible_all_gather(dice, concat=True)
            scores = {s: evenly_divisible_all_gather(v, concat=True) for s, v in sorted(scores.items())}
            histograms = {s: idist.all_reduce(h) for s, h in sorted(histograms.items())}
        per_score = {}
        for s, u in scores.items():
            table = retained_mean(u, dice, rates=self.rates)
            per_score[s] = {
                "pixel_uncertainty_auroc": float(roc_auc_from_histograms(histograms[s])),
                "image_aurc": aurc(u, 1.0 - dice),
                "referral": {
                    rate: {**{k: v for k, v in row.items() if k != "mean"}, "dice": row["mean"]}
                    for rate, row in table.items()
                },
            }
        score = self.score if self.score in per_score else "max_probability"
        return {
            **per_score[score],
            "uncertainty_score": score,
            "uncertainty_scores": per_score,
            "mc_dropout": self._mc,
        }

    def epoch_completed(self, engine: Engine) -> None:
        """Gather (all ranks) and, on ``save_rank``, add the entries to the report."""
        if not self._dice and idist.get_world_size() == 1:
            self.logger.warning(f"{type(self).__name__}: the evaluator saw no images; nothing added")
            return
        added = self.report()
        if idist.get_rank() != self.save_rank:
            return
        self.last_report = added
        entry = load_metrics_json(self.metrics_file).get(self.key)
        update_metrics_json(self.metrics_file, {self.key: {**(entry if isinstance(entry, Mapping) else {}), **added}})
        at = added["referral"].get("0.2") or next(iter(added["referral"].values()), {})
        self.logger.info(
            f"{self.key} uncertainty added to {self.metrics_file}: pixel uncertainty-error AUROC "
            f"({added['uncertainty_score']}) {added['pixel_uncertainty_auroc']:.4f}"
            + (f", mean Dice at {at['rate']:.0%} of the images referred {at['dice']:.4f}" if at else "")
        )
