"""Table 1 of *Focal loss improves repeatability of deep learning models* from a repeatability bundle.

Table 1 has four rows per task:
(i) cross-entropy, (ii) focal loss, (iii) cross-entropy with MC dropout, (iv) focal loss with MC dropout,
each with the 95% limits of agreement (LoA) and the accuracy as mean ± half the 95% confidence interval,
and calls focal better than cross-entropy where the difference is significant. This module produces that
table from trained checkpoints of a bundle (``bundles/knee_oa_grading``, ``bundles/breast_density``):

1. every checkpoint is evaluated twice by the bundle's own ``evaluate.yaml`` (in this process, as
   ``python -m monai.bundle run`` would): without and with ``--mc_dropout true``. Each run writes its
   ``metrics.json`` and Bland-Altman plot to ``<output_dir>/<variant>/seed<s>/<evaluation name>/``;
2. LoA ± CI come from the run's repeatability report (percentile bootstrap over patients, ``n_boot``);
   accuracy ± CI from a percentile bootstrap over patients of the per-image correctness (all images of a
   drawn patient enter together), :func:`~monai_imbalance.compare.bootstrap.accuracy_with_ci`.
   ``reporting="paper"`` (default) shows LoA and ICC as the paper's authors report them: LoA as the mean
   of the bootstrap replicates (``loa_boot_mean``) and ICC(2,k) of the units with two images
   (``icc_2k``); ``reporting="plugin"`` shows the plug-in LoA of the observed differences and ICC(2,1).
   Every row keeps both (``loa_boot_mean``, ``loa_plugin``, ``icc_2k``, ``icc_2_1``), and the table names
   the form it shows (see :data:`REPORTING`);
3. the paired tests use the same images of both models: focal vs cross-entropy without MC and with MC (and
   the MC effect per loss), for LoA with :func:`monai_imbalance.metrics.compare_repeatability` and for
   accuracy with :func:`~monai_imbalance.compare.bootstrap.compare_accuracy` (paired bootstrap over patients;
   two-sided p-value ``min(1, 2 min(P(Δ* <= 0), P(Δ* >= 0)))`` with the ``(1 + count) / (B + 1)`` correction);
4. over several seeds the table adds mean ± SD of each variant and how many seeds favour focal loss.

The commands (``python -m monai_imbalance.compare train|table``) are in the package docstring.

Bundle contract: ``train.yaml`` with ``loss_name``, ``seed``, ``ckpt_dir``, ``log_dir``, ``output_dir``;
``evaluate.yaml`` layered over it with ``ckpt_path``, ``mc_dropout``, ``mc_samples``, ``n_boot``, an
``evaluate#evaluator`` whose items carry ``patient_id`` and an ``id``, and a repeatability report under
``"repeatability"`` and the classification report under ``eval_split`` in the evaluation's ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import from_engine

from monai_imbalance.metrics.repeatability import compare_repeatability
from monai_imbalance.reporting import load_metrics_json, to_jsonable

from .bootstrap import accuracy_with_ci, compare_accuracy
from .runner import bundle_folder, checkpoint_file, evaluate_run, evaluation_metrics_file, train_run

__all__ = [
    "COMPARISONS",
    "LOSSES",
    "REPORTING",
    "VARIANTS",
    "EvaluationRecord",
    "Variant",
    "evaluate_checkpoint",
    "format_table1",
    "run_table1",
    "table1",
    "train_variants",
]

logger = logging.getLogger(__name__)

#: the two losses of the study: name -> the bundle's ``loss_name``
LOSSES: dict[str, str] = {"ce": "ce", "focal": "focal"}


@dataclass(frozen=True)
class Variant:
    """One row of Table 1: a loss, with or without MC dropout."""

    key: str
    row: str
    label: str
    loss: str
    mc_dropout: bool


#: the four rows of the paper's Table 1, in its order
VARIANTS: tuple[Variant, ...] = (
    Variant("ce", "(i)", "cross-entropy", "ce", False),
    Variant("focal", "(ii)", "focal loss", "focal", False),
    Variant("ce_mc", "(iii)", "cross-entropy, MC dropout", "ce", True),
    Variant("focal_mc", "(iv)", "focal loss, MC dropout", "focal", True),
)

#: how Table 1 reports LoA and ICC: name -> (report key of LoA, its label, report key of ICC, its label,
#: key of the paired test's LoA difference)
REPORTING: dict[str, tuple[str, str, str, str, str]] = {
    "paper": (
        "loa_boot_mean",
        "LoA (bootstrap mean, paper)",
        "icc_2k",
        "ICC(2,k), two-image units (paper)",
        "difference_boot_mean",
    ),
    "plugin": ("loa", "LoA (plug-in)", "icc", "ICC(2,1)", "difference"),
}

#: paired comparisons (a, b): difference a - b; the first two are the paper's focal-vs-baseline tests
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("focal", "ce"),
    ("focal_mc", "ce_mc"),
    ("ce_mc", "ce"),
    ("focal_mc", "focal"),
)


def train_variants(
    bundle: str | Path,
    output_dir: str | Path,
    seeds: Sequence[int] = (0,),
    losses: Sequence[str] = tuple(LOSSES),
    overrides: Mapping[str, Any] | None = None,
) -> dict[tuple[str, int], Path]:
    """Train the bundle once per loss and seed; return ``{(loss, seed): checkpoint folder}``.

    Run ``(loss, seed)`` writes ``<output_dir>/<loss>/seed<seed>/{models,logs}`` (:func:`train_run`). The bundle
    refuses to overwrite an earlier run's checkpoints there (pass ``overwrite=True`` or ``resume=True`` in
    ``overrides``).
    """
    out = Path(output_dir)
    unknown = [loss for loss in losses if loss not in LOSSES]
    if unknown:
        raise ValueError(f"unknown loss(es) {unknown}; expected some of {list(LOSSES)}")
    result: dict[tuple[str, int], Path] = {}
    for seed in seeds:
        for loss in losses:
            run_dir = out / loss / f"seed{seed}"
            logger.info("training %s, seed %s -> %s", loss, seed, run_dir)
            settings = {**dict(overrides or {}), "loss_name": LOSSES[loss]}
            result[(loss, int(seed))] = train_run(bundle, run_dir, seed, settings)
    return result


class _PerImageCollector:
    """Ignite handler collecting, per evaluated image, its key, patient id, label and predicted class."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, int]] = []
        self.patients: list[str] = []
        self.labels: list[int] = []
        self.predicted: list[int] = []

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    @staticmethod
    def _items(batch: Any, size: int) -> list[Mapping[str, Any]]:
        if isinstance(batch, list) and all(isinstance(b, Mapping) for b in batch):
            return batch
        if isinstance(batch, Mapping):
            return [{k: v[i] for k, v in batch.items() if isinstance(v, (list, tuple))} for i in range(size)]
        raise TypeError(f"cannot read per-image ids from a batch of type {type(batch).__name__}")

    def __call__(self, engine: Any) -> None:
        preds, labels = from_engine(["pred", "label"])(engine.state.output)
        items = self._items(engine.state.batch, len(preds))
        for pred, label, item in zip(preds, labels, items, strict=True):
            position = len(self.keys)
            image_id = item.get("id", f"#{position}")
            repeat = item.get("repeat_index", 0)
            self.keys.append((str(image_id), int(torch.as_tensor(repeat).item())))
            self.patients.append(str(item.get("patient_id", f"#{position}")))
            self.labels.append(int(torch.as_tensor(label).reshape(-1)[0].item()))
            self.predicted.append(int(torch.as_tensor(pred).reshape(-1).argmax().item()))


@dataclass
class EvaluationRecord:
    """One evaluation of one checkpoint: the bundle's reports and the per-image correctness."""

    variant: str
    seed: int
    checkpoint: str
    output_dir: str
    classification: dict[str, Any]
    repeatability: dict[str, Any]
    keys: list[tuple[str, int]] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    correct: np.ndarray = field(default_factory=lambda: np.zeros(0))


def evaluate_checkpoint(
    bundle: str | Path,
    checkpoint: str | Path,
    mc_dropout: bool,
    output_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    variant: str = "",
    seed: int = 0,
) -> EvaluationRecord:
    """Evaluate one checkpoint with the bundle's ``evaluate.yaml`` (with or without MC dropout).

    Args:
        bundle: the bundle folder.
        checkpoint: ``model.pt`` or the folder holding it.
        mc_dropout: run through the bundle's MC-dropout inferer.
        output_dir: the bundle writes ``metrics.json``, the Bland-Altman and confusion-matrix PNGs into
            ``<output_dir>/<evaluation name>/`` and TensorBoard logs into ``<output_dir>/logs/evaluate/<name>``.
        overrides: further bundle overrides (data, network, ``mc_samples``, ``n_boot``, ...).
        variant, seed: labels stored in the record.

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: the run wrote no repeatability report (e.g. ``--repeats none``).
    """
    ckpt = checkpoint_file(checkpoint)
    out = Path(output_dir)
    collector = _PerImageCollector()
    workflow = evaluate_run(
        bundle,
        ckpt,
        out,
        # table1 refuses an output_dir with results unless --overwrite: an evaluation there is replaced
        {**dict(overrides or {}), "mc_dropout": bool(mc_dropout), "overwrite": True},
        before_run=lambda parser: collector.attach(parser.get_parsed_content("evaluate#evaluator")),
    )
    split = workflow.parser.get_parsed_content("eval_split")
    metrics_file = evaluation_metrics_file(workflow)
    metrics = load_metrics_json(metrics_file)
    if "repeatability" not in metrics:
        raise ValueError(f"{metrics_file} has no repeatability report: evaluate with repeats (not 'none')")
    correct = np.asarray(collector.predicted) == np.asarray(collector.labels)
    return EvaluationRecord(
        variant=variant,
        seed=int(seed),
        checkpoint=str(ckpt),
        output_dir=str(metrics_file.parent),
        classification=metrics[split],
        repeatability=metrics["repeatability"],
        keys=collector.keys,
        patients=collector.patients,
        correct=correct.astype(np.float64),
    )


# ---------------------------------------------------------------- the table


def _aligned(a: EvaluationRecord, b: EvaluationRecord) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Correctness of ``a`` and ``b`` on their shared images (by id and repeat index), in ``a``'s order."""
    index_b = {key: i for i, key in enumerate(b.keys)}
    if len(index_b) != len(b.keys) or len(set(a.keys)) != len(a.keys):
        raise ValueError("image keys (id, repeat index) are not unique; give every datalist item a unique 'id'")
    shared = [i for i, key in enumerate(a.keys) if key in index_b]
    if len(shared) != len(a.keys) or len(shared) != len(b.keys):
        raise ValueError(
            f"{a.variant} and {b.variant} (seed {a.seed}) were evaluated on different images "
            f"({len(a.keys)} vs {len(b.keys)}, {len(shared)} shared): use the same data overrides for both"
        )
    order_b = [index_b[a.keys[i]] for i in shared]
    return a.correct[shared], b.correct[order_b], [a.patients[i] for i in shared]


def _check_reporting(reporting: str) -> tuple[str, str, str, str, str]:
    if reporting not in REPORTING:
        raise ValueError(f"reporting must be one of {list(REPORTING)}, got {reporting!r}")
    return REPORTING[reporting]


def _row(record: EvaluationRecord, n_boot: int, seed: int, reporting: str) -> dict[str, Any]:
    rep = record.repeatability
    loa_key, _, icc_key, _, _ = _check_reporting(reporting)
    missing = [key for key in (loa_key, icc_key) if rep.get(key) is None]
    if missing:
        raise ValueError(
            f"the repeatability report of {record.variant} (seed {record.seed}, {record.output_dir}) has no "
            f"{missing}: evaluate again with this version and n_boot > 0, or use reporting='plugin'"
        )
    acc = accuracy_with_ci(record.correct, record.patients, n_boot=n_boot, seed=seed)
    return {
        "loa": rep[loa_key],
        "loa_pm": rep.get("loa_pm"),
        "loa_ci": rep.get("loa_ci"),
        "loa_plugin": rep["loa"],
        "loa_boot_mean": rep.get("loa_boot_mean"),
        "loa_sd": rep.get("loa_sd"),
        "mean_abs_diff": rep.get("mean_abs_diff"),
        "disagreement_rate": rep.get("disagreement_rate"),
        "icc": rep[icc_key],
        "icc_2_1": rep.get("icc"),
        "icc_2k": rep.get("icc_2k"),
        "loa_rel": rep.get("loa_rel"),
        "n_patients": rep.get("n_patients"),
        "n_patients_distinct": rep.get("n_patients_distinct"),
        "accuracy": acc["accuracy"],
        "accuracy_pm": acc["pm"],
        "accuracy_ci": acc["ci"],
        "n_images": acc["n_images"],
        "output_dir": record.output_dir,
        "checkpoint": record.checkpoint,
    }


def table1(
    records: Sequence[EvaluationRecord],
    n_boot: int = 500,
    n_boot_paired: int = 2000,
    seed: int = 0,
    *,
    reporting: str = "paper",
) -> dict[str, Any]:
    """Assemble Table 1 from evaluation records (one per variant and seed; see :data:`VARIANTS`).

    Args:
        records: the evaluations.
        n_boot: bootstrap replicates of the accuracy CI.
        n_boot_paired: bootstrap replicates of the paired tests.
        seed: bootstrap seed.
        reporting: ``"paper"`` (LoA as the bootstrap mean, ICC(2,k) of two-image units, as the paper's
            authors report) or ``"plugin"`` (plug-in LoA, ICC(2,1)); see :data:`REPORTING`.

    Returns:
        ``{"seeds": [{"seed", "rows": {variant: row}, "comparisons": [...], "repeats": ...}], "summary": {...},
        "reporting", "loa_label", "icc_label"}``: rows with ``loa`` and ``icc`` in the chosen form (both forms
        are kept as ``loa_plugin``, ``loa_boot_mean``, ``icc_2_1``, ``icc_2k``), ``loa_pm`` (half the bootstrap
        CI, the same for both forms), accuracy (± patient-bootstrap CI), parametric
        LoA, mean absolute difference, disagreement rate, loa_rel and patients; comparisons (a vs b) with
        the paired LoA test (``loa``) and the paired accuracy test (``accuracy``); the summary has, per variant,
        the mean and SD over seeds, and per comparison how many seeds had a lower LoA for ``a``, significantly
        so (``p < 0.05`` and ``ci[1] < 0``).

    Raises:
        ValueError: a seed without all four variants, variants evaluated on different images, an unknown
            ``reporting`` or reports without its keys.
    """
    _, loa_label, _, icc_label, difference_key = _check_reporting(reporting)
    by_seed: dict[int, dict[str, EvaluationRecord]] = {}
    for record in records:
        by_seed.setdefault(record.seed, {})[record.variant] = record
    seeds_out = []
    for seed_value in sorted(by_seed):
        present = by_seed[seed_value]
        missing = [v.key for v in VARIANTS if v.key not in present]
        if missing:
            raise ValueError(f"seed {seed_value} lacks the variant(s) {missing}")
        rows = {v.key: _row(present[v.key], n_boot, seed, reporting) for v in VARIANTS}
        comparisons = []
        for a_key, b_key in COMPARISONS:
            a, b = present[a_key], present[b_key]
            correct_a, correct_b, patients = _aligned(a, b)
            loa_test = compare_repeatability(a.repeatability, b.repeatability, "loa", n_boot_paired, seed)
            loa_test["reported_difference"] = loa_test[difference_key]
            comparisons.append(
                {
                    "a": a_key,
                    "b": b_key,
                    "loa": loa_test,
                    "accuracy": compare_accuracy(correct_a, correct_b, patients, n_boot_paired, seed),
                }
            )
        seeds_out.append(
            {
                "seed": seed_value,
                "rows": rows,
                "comparisons": comparisons,
                "repeats": present["ce"].repeatability.get("repeats"),
            }
        )
    if not seeds_out:
        raise ValueError("no evaluation records")

    summary: dict[str, Any] = {"n_seeds": len(seeds_out), "rows": {}, "comparisons": []}
    for v in VARIANTS:
        loas = np.array([s["rows"][v.key]["loa"] for s in seeds_out])
        accs = np.array([s["rows"][v.key]["accuracy"] for s in seeds_out])
        summary["rows"][v.key] = {
            "loa_mean": float(loas.mean()),
            "loa_sd": float(loas.std(ddof=1)) if len(loas) > 1 else None,
            "accuracy_mean": float(accs.mean()),
            "accuracy_sd": float(accs.std(ddof=1)) if len(accs) > 1 else None,
        }
    for i, (a_key, b_key) in enumerate(COMPARISONS):
        tests = [s["comparisons"][i] for s in seeds_out]
        summary["comparisons"].append(
            {
                "a": a_key,
                "b": b_key,
                "loa_lower": sum(t["loa"]["reported_difference"] < 0 for t in tests),
                "loa_significantly_lower": sum(t["loa"]["ci"][1] < 0 and t["loa"]["p_value"] < 0.05 for t in tests),
                "loa_difference_mean": float(np.mean([t["loa"]["reported_difference"] for t in tests])),
                "accuracy_significantly_different": sum(t["accuracy"]["p_value"] < 0.05 for t in tests),
                "accuracy_difference_mean": float(np.mean([t["accuracy"]["difference"] for t in tests])),
            }
        )
    return {
        "seeds": seeds_out,
        "summary": summary,
        "n_boot": n_boot,
        "n_boot_paired": n_boot_paired,
        "reporting": reporting,
        "loa_label": loa_label,
        "icc_label": icc_label,
    }


def _pm(value: float | None, pm: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + ("" if pm is None else f" ± {pm:.{digits}f}")


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _repeats_text(repeats: Mapping[str, Any] | None) -> str:
    if not repeats:
        return "repeats: unknown"
    if repeats.get("source") == "simulated":
        return (
            f"repeats: **simulated** ({repeats.get('num_repeats')} perturbed copies of each of "
            f"{repeats.get('n_source_images')} images, strength {repeats.get('strength')}); LoA values are not "
            "comparable with the paper's real repeat images"
        )
    return (
        f"repeats: from the datalist ({repeats.get('n_units_with_repeats')} units of "
        f"{'/'.join(repeats.get('unit', []))} with two or more images)"
    )


def format_table1(table: Mapping[str, Any], title: str = "Table 1") -> str:
    """Markdown of :func:`table1`: per seed the four rows and the paired tests, then the summary over seeds."""
    labels = {v.key: f"{v.row} {v.label}" for v in VARIANTS}
    reporting = table.get("reporting", "plugin")
    _, loa_label, _, icc_label, _ = _check_reporting(reporting)
    lines = [f"# {title}", ""]
    for entry in table["seeds"]:
        lines += [f"## seed {entry['seed']}", "", _repeats_text(entry.get("repeats")), ""]
        lines += [
            f"| model | 95% {loa_label} ↓ | accuracy | LoA (1.96 SD) | mean abs. diff. | disagreement | {icc_label} | "
            "LoA / spread | patients |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v in VARIANTS:
            r = entry["rows"][v.key]
            lines.append(
                f"| {labels[v.key]} | {_pm(r['loa'], r['loa_pm'])} | {_pm(r['accuracy'], r['accuracy_pm'])} | "
                f"{_num(r['loa_sd'])} | {_num(r['mean_abs_diff'])} | {_num(r['disagreement_rate'])} | "
                f"{_num(r['icc'])} | {_num(r.get('loa_rel'))} | {r['n_patients']} |"
            )
        lines += [
            "",
            f"| paired test (a vs b) | Δ{loa_label} [95% CI] | p | Δaccuracy [95% CI] | p |",
            "|---|---|---|---|---|",
        ]
        for c in entry["comparisons"]:
            loa, acc = c["loa"], c["accuracy"]
            lines.append(
                f"| {labels[c['a']]} vs {labels[c['b']]} | {loa.get('reported_difference', loa['difference']):+.3f} "
                f"[{loa['ci'][0]:+.3f}, {loa['ci'][1]:+.3f}] | {loa['p_value']:.3g} | {acc['difference']:+.3f} "
                f"[{acc['ci'][0]:+.3f}, {acc['ci'][1]:+.3f}] | {acc['p_value']:.3g} |"
            )
        lines.append("")
    summary = table["summary"]
    n = summary["n_seeds"]
    lines += [f"## summary over {n} seed(s) (mean ± SD over seeds)", ""]
    lines += [f"| model | 95% {loa_label} ↓ | accuracy |", "|---|---|---|"]
    for v in VARIANTS:
        s = summary["rows"][v.key]
        lines.append(
            f"| {labels[v.key]} | {_pm(s['loa_mean'], s['loa_sd'])} | {_pm(s['accuracy_mean'], s['accuracy_sd'])} |"
        )
    lines += [
        "",
        "| a vs b | seeds with lower LoA (significant) | mean ΔLoA | seeds with a significant accuracy change "
        "| mean Δaccuracy |",
        "|---|---|---|---|---|",
    ]
    for c in summary["comparisons"]:
        lines.append(
            f"| {labels[c['a']]} vs {labels[c['b']]} | {c['loa_lower']}/{n} ({c['loa_significantly_lower']}/{n}) | "
            f"{c['loa_difference_mean']:+.3f} | {c['accuracy_significantly_different']}/{n} | "
            f"{c['accuracy_difference_mean']:+.3f} |"
        )
    if reporting == "paper":
        form = (
            "LoA and ICC in the paper's form, as its authors' code reports them: LoA the mean of the bootstrap "
            "replicates, ICC(2,k) over the patients with exactly two images (the plug-in LoA and ICC(2,1) are in "
            "table1.json as loa_plugin and icc_2_1; reporting='plugin' shows them)."
        )
    else:
        form = (
            "LoA and ICC in the plug-in form: LoA of the observed differences, ICC(2,1) (the paper's bootstrap-mean "
            "LoA and ICC(2,k) are in table1.json as loa_boot_mean and icc_2k; reporting='paper' shows them)."
        )
    lines += [
        "",
        form,
        "",
        f"LoA ± half its 95% CI from the bundle's report (bootstrap over patients, B = {table['n_boot']}); accuracy "
        f"± half its 95% CI (bootstrap over patients, B = {table['n_boot']}); paired tests: bootstrap over the "
        f"same patients for both models (B = {table['n_boot_paired']}), Δ = a - b, two-sided p. LoA / spread: the LoA "
        "half-width over the SD of the patients' mean scores (lower is better; a model that only pulls its scores "
        "together lowers LoA but not this).",
        "",
    ]
    return "\n".join(lines)


def run_table1(
    bundle: str | Path,
    ce: Sequence[str | Path],
    focal: Sequence[str | Path],
    output_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
    n_boot: int = 500,
    n_boot_paired: int = 2000,
    overwrite: bool = False,
    *,
    reporting: str = "paper",
) -> dict[str, Any]:
    """Evaluate the four variants of each (cross-entropy, focal) checkpoint pair and write Table 1.

    Args:
        bundle: the bundle folder.
        ce, focal: checkpoints (``model.pt`` or their folders), paired by position (one pair per seed).
        output_dir: evaluation outputs (``<variant>/seed<s>/``), ``table1.md`` and ``table1.json``.
        overrides: bundle overrides used for every evaluation (the training's data and network settings).
        seeds: labels of the pairs (default ``0 .. n-1``).
        n_boot: bootstrap replicates of the CIs (passed to the bundle too).
        n_boot_paired: bootstrap replicates of the paired tests.
        overwrite: allow an ``output_dir`` that already holds results.
        reporting: ``"paper"`` or ``"plugin"`` form of LoA and ICC (see :func:`table1`).

    Returns:
        the :func:`table1` dict, with ``"markdown"``.

    Raises:
        ValueError: unequal numbers of checkpoints, or none.
        FileExistsError: ``output_dir`` holds results and ``overwrite`` is not set.
    """
    _check_reporting(reporting)
    ce, focal = list(ce), list(focal)
    if not ce or len(ce) != len(focal):
        raise ValueError(f"give one focal checkpoint per cross-entropy checkpoint (got {len(ce)} and {len(focal)})")
    labels = list(range(len(ce))) if seeds is None else [int(s) for s in seeds]
    if len(labels) != len(ce) or len(set(labels)) != len(labels):
        raise ValueError(f"seeds must be {len(ce)} distinct labels, got {list(seeds or [])}")
    for checkpoint in ce + focal:
        checkpoint_file(checkpoint)
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already holds results; choose another --output_dir or pass --overwrite")
    settings = {**dict(overrides or {}), "n_boot": int(n_boot)}
    records = []
    for label, pair in zip(labels, zip(ce, focal, strict=True), strict=True):
        for v in VARIANTS:
            checkpoint = pair[0] if v.loss == "ce" else pair[1]
            logger.info("evaluating %s, seed %s: %s", v.key, label, checkpoint)
            records.append(
                evaluate_checkpoint(
                    bundle, checkpoint, v.mc_dropout, out / v.key / f"seed{label}", settings, v.key, label
                )
            )
    table = table1(records, n_boot=n_boot, n_boot_paired=n_boot_paired, reporting=reporting)
    table["bundle"] = str(bundle_folder(bundle))
    table["overrides"] = to_jsonable(dict(overrides or {}))
    markdown = format_table1(table, title=f"Table 1: {Path(table['bundle']).name}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text(markdown)
    (out / "table1.json").write_text(json.dumps(to_jsonable(table), indent=2) + "\n")
    table["markdown"] = markdown
    return table
