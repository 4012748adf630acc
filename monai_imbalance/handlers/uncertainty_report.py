"""Ignite handler: calibration and referral of a classification evaluation, into ``metrics.json`` and TensorBoard.

Attach it to an evaluation's ``SupervisedEvaluator`` *after*
:class:`~monai_imbalance.handlers.ClassificationReportHandler` (it adds its entries to the report that
handler wrote under ``key``). Over every run it collects the class
probabilities (``pred``), the labels and one uncertainty per case for every score the run can give
(:data:`~monai_imbalance.metrics.UNCERTAINTY_SCORES`: ``1 - max p`` and the entropy always; with
:class:`~monai_imbalance.inferers.MCDropoutInferer` also the mutual information and the predicted class's variance,
read from the inferer's ``last_output``). When the run ends it adds to ``metrics_file[key]``:

- :func:`~monai_imbalance.metrics.calibration_report`: ``ece``, ``ece_equal_mass``, ``classwise_ece``, ``brier``,
  ``nll`` (and, when a ``temperature`` other than 1 was applied without Monte Carlo dropout, the same before
  it: ``ece_before_temperature``, ``classwise_ece_before_temperature``, ``nll_before_temperature``);
- :func:`~monai_imbalance.metrics.selective_report` of the chosen ``score``: ``aurc``, ``e_aurc``,
  ``uncertainty_auroc`` and the ``referral`` table (rate -> accuracy, balanced accuracy, macro-F1 of the kept cases);
- ``uncertainty_scores``: the same for every score the run gave (``{score: {aurc, e_aurc, uncertainty_auroc,
  referral}}``), so one evaluation compares them;
- ``referral_rule``: with a stored rule (fitted on validation), its threshold applied unchanged to these cases: the
  fraction referred and the scores of the kept ones;
- ``uncertainty_score``, ``mc_dropout`` and ``temperature``: how the numbers were made.

With a ``summary_writer`` it adds two figures at step ``engine.state.epoch``: ``{key}/reliability_diagram`` (accuracy
against confidence per bin, with the bins' share of cases) and ``{key}/risk_coverage`` (one curve per score); with a
``figure_dir`` the same as PNG files. Multi-process: every rank gathers (collective), ``save_rank`` writes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import from_engine
from monai.utils import CommonKeys, IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.inferers.mc_dropout import MCDropoutInferer
from monai_imbalance.metrics.calibration import (
    DEFAULT_CALIBRATION_BINS,
    ReliabilityBins,
    calibration_report,
    reliability_bins,
)
from monai_imbalance.metrics.classification import _check_labels, _to_tensor, check_decision_rule, check_probabilities
from monai_imbalance.metrics.selective import REFERRAL_RATES, RiskCoverage, referral_table, selective_report
from monai_imbalance.metrics.uncertainty import MC_ONLY_SCORES, UNCERTAINTY_SCORES, uncertainty_from_output
from monai_imbalance.reporting import load_metrics_json, save_figure, update_metrics_json
from monai_imbalance.transforms.temperature import check_temperature, temperature_scale

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["UncertaintyReportHandler", "engine_uncertainty", "plot_reliability_diagram", "plot_risk_coverage"]


def engine_uncertainty(engine: Engine, probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every uncertainty score of the current iteration, ``{score: (B,)}``.

    ``1 - max p`` and the entropy from ``probs`` ``(B, C)``; with an :class:`MCDropoutInferer` on the engine (its
    ``last_output`` of this iteration) the Monte Carlo entropy, mutual information and variance as well.
    """
    inferer = getattr(engine, "inferer", None)
    output: Mapping[str, Any] | torch.Tensor = probs
    if isinstance(inferer, MCDropoutInferer) and inferer.last_output is not None and inferer.activation == "softmax":
        output = {**inferer.last_output, "mean": probs}
    scores = {}
    for score in UNCERTAINTY_SCORES:
        if score in MC_ONLY_SCORES and not isinstance(output, Mapping):
            continue
        u = uncertainty_from_output(output, score)
        scores[score] = u.reshape(u.shape[0], -1)[:, 0].detach().float().cpu()
    return scores


def plot_reliability_diagram(bins: ReliabilityBins, title: str = "") -> Figure:
    """Reliability diagram: per bin the accuracy (bars) against the mean confidence, the diagonal, the case shares."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 5.5))
    ax, share = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = bins.count > 0
    lower, upper = bins.lower[filled].numpy(), bins.upper[filled].numpy()
    widths = upper - lower
    widths[widths <= 0] = 0.01
    ax.bar(lower, bins.accuracy[filled].numpy(), width=widths, align="edge", edgecolor="black", label="accuracy")
    ax.plot(bins.confidence[filled].numpy(), bins.accuracy[filled].numpy(), "o", color="tab:red", label="bin mean")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    counts = bins.count[filled].double()
    share.bar(lower, (counts / counts.sum()).numpy(), width=widths, align="edge", edgecolor="black")
    share.set_xlabel("confidence (max probability)")
    share.set_ylabel("share of cases")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_risk_coverage(curves: Mapping[str, RiskCoverage], aurcs: Mapping[str, float], title: str = "") -> Figure:
    """Risk (error rate of the kept cases) against coverage, one curve per uncertainty score with its AURC."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for score, curve in curves.items():
        ax.step(curve.coverage.numpy(), curve.risk.numpy(), where="post", label=f"{score} (AURC {aurcs[score]:.3f})")
    ax.set_xlabel("coverage (fraction kept)")
    ax.set_ylabel("risk (error rate of the kept cases)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


class UncertaintyReportHandler(EpochHandler):
    """Add calibration and referral of every evaluator run to its ``metrics.json`` entry; draw their figures.

    Args:
        metrics_file: the run's ``metrics.json`` (its entry ``key`` is extended; other entries are kept).
        key: the report's entry, e.g. ``"test"``; also the TensorBoard tag prefix.
        summary_writer: optional TensorBoard writer for the two figures.
        figure_dir: folder for ``reliability_diagram.png`` and ``risk_coverage.png``; ``None`` for no PNG.
        score: the uncertainty score of ``aurc`` and ``referral`` (:data:`UNCERTAINTY_SCORES`); a Monte Carlo
            score without Monte Carlo dropout falls back to ``"max_probability"`` (recorded in
            ``uncertainty_score``).
        rates: referral rates of the table.
        num_bins: bins of the ECEs and the reliability diagram.
        temperature: the temperature the evaluation applied (recorded; without Monte Carlo dropout the scores
            before it are computed too).
        referral_rule: a stored rule (:func:`~monai_imbalance.transforms.read_referral_rule`) to apply, or ``None``.
        decision_threshold, class_priors: the decision rule of the predicted classes (as the report's).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``; default ``pred`` and ``label``.
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).

    Attributes:
        last_report: the entries added by the last run.
    """

    def __init__(
        self,
        metrics_file: str | os.PathLike,
        key: str = "test",
        summary_writer: SummaryWriter | None = None,
        figure_dir: str | os.PathLike | None = None,
        score: str = "max_probability",
        rates: Sequence[float] = REFERRAL_RATES,
        num_bins: int = DEFAULT_CALIBRATION_BINS,
        temperature: float = 1.0,
        referral_rule: Mapping[str, Any] | None = None,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        if score not in UNCERTAINTY_SCORES:
            raise ValueError(f"unknown uncertainty score {score!r}; choose one of {UNCERTAINTY_SCORES}")
        self.metrics_file = Path(metrics_file)
        self.key = key
        self.summary_writer = summary_writer
        self.figure_dir = Path(figure_dir) if figure_dir is not None else None
        self.score = score
        self.rates = tuple(float(r) for r in rates)
        self.num_bins = int(num_bins)
        self.temperature = check_temperature(temperature)
        self.referral_rule = dict(referral_rule) if referral_rule else None
        self.decision_threshold, self.class_priors = check_decision_rule(decision_threshold, class_priors)
        self.output_transform = output_transform or from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self.last_report: dict[str, Any] | None = None
        self._per_score: dict[str, dict[str, Any]] = {}
        self._reset()

    def _reset(self) -> None:
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._scores: dict[str, list[torch.Tensor]] = {}
        self._mc = False

    def epoch_started(self, engine: Engine) -> None:
        self._reset()

    def iteration_completed(self, engine: Engine) -> None:
        y_pred, y = self.output_transform(engine.state.output)
        probs = check_probabilities(y_pred, purpose=type(self).__name__)
        labels = _check_labels(_to_tensor(y, "y"), probs.shape[0], probs.shape[1])
        self._probs.append(probs.cpu())
        self._labels.append(labels.cpu())
        scores = engine_uncertainty(engine, probs)
        self._mc = any(s in scores for s in MC_ONLY_SCORES)
        for score, values in scores.items():
            self._scores.setdefault(score, []).append(values)

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        probs, labels = torch.cat(self._probs), torch.cat(self._labels)
        scores = {k: torch.cat(v) for k, v in self._scores.items()}
        if idist.get_world_size() > 1:
            probs = evenly_divisible_all_gather(probs, concat=True)
            labels = evenly_divisible_all_gather(labels, concat=True)
            scores = {k: evenly_divisible_all_gather(v, concat=True) for k, v in sorted(scores.items())}
        return probs, labels, scores

    def report(self, probs: torch.Tensor, labels: torch.Tensor, scores: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The entries added to the report (module docstring) for gathered probabilities, labels and scores."""
        rule = {"decision_threshold": self.decision_threshold, "class_priors": self.class_priors}
        score = self.score if self.score in scores else "max_probability"
        out: dict[str, Any] = calibration_report(probs, labels, num_bins=self.num_bins)
        out.pop("classwise_ece_per_class")
        out.pop("binning")
        if self.temperature != 1.0 and not self._mc:
            unscaled = temperature_scale(probs, 1.0 / self.temperature)
            before = calibration_report(unscaled, labels, num_bins=self.num_bins)
            for name in ("ece", "classwise_ece", "nll"):
                out[f"{name}_before_temperature"] = before[name]
        per_score = {s: selective_report(probs, labels, u, rates=self.rates, **rule) for s, u in scores.items()}
        self._per_score = per_score
        main = per_score[score]
        out.update({name: main[name] for name in ("aurc", "e_aurc", "uncertainty_auroc", "referral")})
        out["uncertainty_scores"] = {
            s: {name: r[name] for name in ("aurc", "e_aurc", "uncertainty_auroc", "referral")}
            for s, r in per_score.items()
        }
        out.update({"uncertainty_score": score, "mc_dropout": self._mc, "temperature": self.temperature})
        stored = self.referral_rule
        if stored is not None and stored.get("score") in scores and bool(stored.get("mc_dropout")) == self._mc:
            u = scores[stored["score"]]
            t = float(stored["threshold"])
            kept = u.double() <= t
            applied = {}
            if kept.any():
                applied = referral_table(probs[kept], labels[kept], u[kept], rates=(0.0,), **rule)["0"]
            out["referral_rule"] = {
                "score": stored["score"],
                "threshold": t,
                "referred_fraction": float((~kept).double().mean()),
                "num_retained": int(kept.sum()),
                **{k: applied.get(k, math.nan) for k in ("accuracy", "balanced_accuracy", "f1_macro")},
            }
        return out

    def epoch_completed(self, engine: Engine) -> None:
        """Gather (all ranks), compute, and on ``save_rank`` add to the report and draw the figures."""
        if not self._probs:
            self.logger.warning(f"{type(self).__name__}: the evaluator saw no samples; nothing added")
            return
        probs, labels, scores = self._gathered()
        if idist.get_rank() != self.save_rank:
            return
        added = self.report(probs, labels, scores)
        self.last_report = added
        entry = load_metrics_json(self.metrics_file).get(self.key)
        update_metrics_json(self.metrics_file, {self.key: {**(entry if isinstance(entry, Mapping) else {}), **added}})
        epoch = int(engine.state.epoch)
        if self.summary_writer is not None or self.figure_dir is not None:
            title = f"{self.key}: ECE {added['ece']:.3f}"
            figure = plot_reliability_diagram(reliability_bins(probs, labels, num_bins=self.num_bins), title)
            path = self.figure_dir / "reliability_diagram.png" if self.figure_dir is not None else None
            save_figure(figure, path, self.summary_writer, f"{self.key}/reliability_diagram", epoch)
            curves = {
                s: RiskCoverage(
                    torch.zeros(0),
                    torch.tensor(r["risk_coverage"]["coverage"], dtype=torch.float64),
                    torch.tensor(r["risk_coverage"]["risk"], dtype=torch.float64),
                )
                for s, r in self._per_score.items()
            }
            aurcs = {s: r["aurc"] for s, r in self._per_score.items()}
            figure = plot_risk_coverage(curves, aurcs, f"{self.key}: risk-coverage")
            path = self.figure_dir / "risk_coverage.png" if self.figure_dir is not None else None
            save_figure(figure, path, self.summary_writer, f"{self.key}/risk_coverage", epoch)
        at = added["referral"].get("0.2") or next(iter(added["referral"].values()), {})
        self.logger.info(
            f"{self.key} calibration and referral added to {self.metrics_file}: ECE {added['ece']:.4f}, class-wise ECE "
            f"{added['classwise_ece']:.4f}, AURC ({added['uncertainty_score']}) {added['aurc']:.4f}"
            + (f", macro-F1 at {at['rate']:.0%} referred {at['f1_macro']:.4f}" if at else "")
        )
