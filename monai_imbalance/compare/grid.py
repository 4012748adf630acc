"""A paper's comparison table from any bundle: named variants (sets of overrides) x seeds, mean ± SD per metric.

A *variant* is one row of a paper's comparison table, written as the bundle overrides that make it, e.g. the BBFL
paper's random over-sampling is ``--loss_name ce --sampler_name over``. :func:`run_grid` runs every
``(variant, seed)`` through the bundle's own configs (in this process, as ``python -m monai.bundle run`` would):

1. train with ``configs/train.yaml`` and ``--seed s`` into ``<output_dir>/<variant>/seed<s>/{models,logs}``
   (:func:`~monai_imbalance.compare.runner.train_run`);
2. evaluate ``models/model.pt`` with ``configs/train.yaml`` + ``configs/evaluate.yaml``
   (:func:`~monai_imbalance.compare.runner.evaluate_run`), writing ``<output_dir>/<variant>/seed<s>/eval/<name>/``
   (the bundle's evaluation name, e.g. ``test-model`` or ``test-model-mc50``);
   evaluation-only overrides (e.g. ``--use_threshold true``, ``--mc_dropout true``) go to this step only;
3. read the metrics from that evaluation's ``metrics.json`` under ``metrics_key``: the bundle's ``eval_split``
   (``test``) unless given. Every bundle's ``evaluate.yaml`` writes its report there: the classification
   bundles the classification report (``accuracy``, ``balanced_accuracy``, ``f1_macro``, ``auc``, binary:
   ``f1_positive``, ``specificity``, ...), the segmentation bundles the pixel scores (``jaccard``, ``dice``,
   ``recall``, ``specificity``, ``auc``);
4. write ``<output_dir>/grid.md`` (one row per variant, one column per metric: mean ± SD over seeds, the SD
   with ``n - 1``) and ``grid.json`` (the same plus every run's values, folders and overrides).

Overrides come in four disjoint sets: shared by all runs (data, network, epochs: training and evaluation),
shared evaluation-only, and per variant the same two. A key set in two of them is an error rather than a silent
precedence rule, as are keys the grid sets itself (``seed``, ``ckpt_dir``, ``log_dir``, ``output_dir``,
``ckpt_path``, ``resume``, ``overwrite``).

:data:`PRESETS` hold the variant sets and metrics of the papers' tables:

- ``lmf`` (LMF paper; ``skin_lesion_classification``): ``ce``, ``focal``, ``ldam``, ``lmf`` (``lmf_official``, the
  official code's weighting); macro-F1, balanced accuracy, accuracy;
- ``bbfl`` (BBFL paper, binary; ``rnfld_classification``): ``ce``, ``ros``, ``rus``, ``cost_sensitive`` (inverse
  class weights), ``thresholding`` (F1-optimal threshold chosen on validation, ``--use_threshold true`` at
  evaluation), ``bbfl``; accuracy, F1 of the positive class, AUC;
- ``bbfl_multiclass`` (BBFL paper, multiclass; ``glaucoma_classification``): as ``bbfl`` with thresholding by prior
  correction; accuracy, balanced accuracy, macro-F1, AUC;
- ``all`` (ALL paper; ``skin_lesion_segmentation``, ``nuclei_segmentation``, ``retinal_vessel_segmentation``):
  ``jaccard``, ``dice``, ``tversky``, ``focal``, ``combo``, ``focal_tversky``, ``all`` losses; Jaccard, F1 (Dice),
  recall, TNR (specificity).

The BBFL variants spell out both the loss and the sampler (e.g. ``--loss_name ce --sampler_name none`` for
cross-entropy), because the fundus bundles default to BBFL.

Output folder: one that already holds files is refused unless ``overwrite`` (retrain every run over the old
checkpoints) or ``resume`` (keep what is finished). Each run keeps its state in ``grid_run.json``: with
``resume``, an evaluated run is only read back, a trained one only evaluated, an interrupted training continues
from its last checkpoint (the bundle's ``--resume true``), and a run made with other overrides is an error.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_imbalance.reporting import load_metrics_json, to_jsonable
from monai_imbalance.workflow import latest_checkpoint

from .runner import bundle_folder, evaluate_run, evaluation_metrics_file, format_overrides, parse_overrides, train_run

__all__ = [
    "METRIC_LABELS",
    "PRESETS",
    "RESERVED_OVERRIDES",
    "GridPreset",
    "GridVariant",
    "default_metric_names",
    "format_grid",
    "get_preset",
    "grid_table",
    "grid_variants",
    "parse_variant",
    "read_metrics",
    "run_grid",
]

logger = logging.getLogger(__name__)

#: overrides the grid sets for every run itself
RESERVED_OVERRIDES: tuple[str, ...] = ("seed", "ckpt_dir", "log_dir", "output_dir", "ckpt_path", "resume", "overwrite")

#: column titles of the metrics written by the bundles (other names are shown as they are)
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "f1_macro": "macro-F1",
    "precision_macro": "macro precision",
    "recall_macro": "macro recall",
    "auc": "AUC",
    "f1_positive": "F1",
    "precision_positive": "precision",
    "recall_positive": "sensitivity",
    "jaccard": "Jaccard",
    "dice": "F1 (Dice)",
    "recall": "recall",
    "specificity": "TNR (specificity)",
}

#: entries of a metrics report that describe the run rather than score it (left out of the default metrics)
_NOT_METRICS = frozenset(
    {"epoch", "num_samples", "num_classes", "threshold", "decision_threshold", "class_priors", "mc_samples"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STATE_FILE = "grid_run.json"


def _check_overrides(overrides: Any, owner: str) -> dict[str, Any]:
    if not isinstance(overrides, Mapping):
        raise TypeError(f"{owner}: overrides must be a mapping of bundle override names to values, got {overrides!r}")
    bad = [key for key in overrides if not isinstance(key, str) or not key]
    if bad:
        raise TypeError(f"{owner}: override names must be non-empty strings, got {bad}")
    clash = [key for key in RESERVED_OVERRIDES if key in overrides]
    if clash:
        raise ValueError(
            f"{owner} sets {clash}: the grid sets these for every run itself (seeds with seeds / --seeds, folders "
            "under output_dir, resume / overwrite of the grid)"
        )
    return dict(overrides)


@dataclass(frozen=True)
class GridVariant:
    """One row of a comparison table: a name (its folder) and the bundle overrides that make it.

    Args:
        name: folder name under the grid's ``output_dir`` (letters, digits, ``_``, ``.``, ``-``).
        overrides: bundle overrides for training and evaluation, e.g. ``{"loss_name": "ce", "sampler_name": "over"}``.
        evaluate_overrides: overrides for the evaluation only, e.g. ``{"use_threshold": "true"}``.
        label: the row's title in ``grid.md`` (default: ``name``).

    Raises:
        ValueError: a bad name, or overrides the grid sets itself (:data:`RESERVED_OVERRIDES`).
        TypeError: overrides that are not a mapping with string keys.
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    evaluate_overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                f"variant name {self.name!r} must be a folder name of letters, digits, '_', '.' or '-' "
                "(starting with a letter or digit)"
            )
        owner = f"variant {self.name!r}"
        object.__setattr__(self, "overrides", _check_overrides(self.overrides, owner))
        object.__setattr__(
            self, "evaluate_overrides", _check_overrides(self.evaluate_overrides, f"{owner} (evaluation)")
        )
        object.__setattr__(self, "label", str(self.label or self.name))


@dataclass(frozen=True)
class GridPreset:
    """The variants and metrics of one paper's comparison table."""

    name: str
    title: str
    bundles: tuple[str, ...]
    variants: tuple[GridVariant, ...]
    metric_names: tuple[str, ...]


def _bbfl_variants(threshold_method: str, threshold_label: str) -> tuple[GridVariant, ...]:
    """The BBFL paper's methods; each spells out loss and sampler (the fundus bundles default to BBFL)."""
    plain = {"loss_name": "ce", "sampler_name": "none"}
    return (
        GridVariant("ce", dict(plain), label="cross-entropy"),
        GridVariant("ros", {"loss_name": "ce", "sampler_name": "over"}, label="random over-sampling (ROS)"),
        GridVariant("rus", {"loss_name": "ce", "sampler_name": "under"}, label="random under-sampling (RUS)"),
        GridVariant(
            "cost_sensitive", {**plain, "class_weighting": "inverse"}, label="cost-sensitive (inverse class weights)"
        ),
        GridVariant(
            "thresholding",
            {**plain, "threshold_method": threshold_method},
            {"use_threshold": "true"},
            label=f"thresholding ({threshold_label})",
        ),
        GridVariant(
            "bbfl", {"loss_name": "focal", "sampler_name": "batch_balanced"}, label="batch-balanced focal loss (BBFL)"
        ),
    )


#: the papers' comparison tables (see the module docstring)
PRESETS: dict[str, GridPreset] = {
    "lmf": GridPreset(
        name="lmf",
        title="LMF paper: cross-entropy, focal, LDAM and LMF losses",
        bundles=("skin_lesion_classification",),
        variants=(
            GridVariant("ce", {"loss_name": "ce"}, label="cross-entropy"),
            GridVariant("focal", {"loss_name": "focal"}, label="focal loss"),
            GridVariant("ldam", {"loss_name": "ldam"}, label="LDAM"),
            GridVariant("lmf", {"loss_name": "lmf_official"}, label="LMF (LDAM + focal, official weighting)"),
        ),
        metric_names=("f1_macro", "balanced_accuracy", "accuracy"),
    ),
    "bbfl": GridPreset(
        name="bbfl",
        title="BBFL paper (binary): cross-entropy, ROS, RUS, cost-sensitive, thresholding, BBFL",
        bundles=("rnfld_classification",),
        variants=_bbfl_variants("f1", "F1-optimal threshold on validation"),
        metric_names=("accuracy", "f1_positive", "auc"),
    ),
    "bbfl_multiclass": GridPreset(
        name="bbfl_multiclass",
        title="BBFL paper (multiclass): cross-entropy, ROS, RUS, cost-sensitive, thresholding, BBFL",
        bundles=("glaucoma_classification",),
        variants=_bbfl_variants("prior_correction", "prior correction"),
        metric_names=("accuracy", "balanced_accuracy", "f1_macro", "auc"),
    ),
    "all": GridPreset(
        name="all",
        title="ALL paper: segmentation losses",
        bundles=("skin_lesion_segmentation", "nuclei_segmentation", "retinal_vessel_segmentation"),
        variants=(
            GridVariant("jaccard", {"loss_name": "jaccard"}, label="Jaccard loss (JL)"),
            GridVariant("dice", {"loss_name": "dice"}, label="Dice loss (DL)"),
            GridVariant("tversky", {"loss_name": "tversky"}, label="Tversky loss (TL)"),
            GridVariant("focal", {"loss_name": "focal"}, label="focal loss (FL)"),
            GridVariant("combo", {"loss_name": "combo"}, label="Combo loss (CL)"),
            GridVariant("focal_tversky", {"loss_name": "focal_tversky"}, label="focal Tversky loss (FTL)"),
            GridVariant("all", {"loss_name": "all"}, label="adaptive logarithmic loss (ALL)"),
        ),
        metric_names=("jaccard", "dice", "recall", "specificity"),
    ),
}


def get_preset(name: str) -> GridPreset:
    """The preset called ``name`` (a key of :data:`PRESETS`).

    Raises:
        ValueError: an unknown name.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
    return PRESETS[name]


def parse_variant(spec: Sequence[str]) -> GridVariant:
    """A variant from the command line: ``[NAME, OVERRIDES]`` or ``[NAME, OVERRIDES, EVALUATE_OVERRIDES]``.

    Both override strings are bundle command lines, e.g. ``["thresholding", "--loss_name ce --threshold_method
    f1", "--use_threshold true"]`` (:func:`~monai_imbalance.compare.runner.parse_overrides`); ``""`` is none.

    Raises:
        ValueError: not two or three words, or an override string that does not parse.
    """
    spec = list(spec)
    if not 2 <= len(spec) <= 3:
        raise ValueError(f"a variant is NAME OVERRIDES [EVALUATE_OVERRIDES] (quote each), got {spec}")
    name, train, *rest = spec
    try:
        overrides = parse_overrides(train)
        evaluate_overrides = parse_overrides(rest[0]) if rest else {}
    except ValueError as e:
        raise ValueError(f"variant {name!r}: {e}") from e
    return GridVariant(name, overrides, evaluate_overrides)


def _check_variants(variants: Sequence[GridVariant]) -> list[GridVariant]:
    variants = list(variants)
    if not variants:
        raise ValueError("no variants: give a preset and/or variants")
    wrong = [v for v in variants if not isinstance(v, GridVariant)]
    if wrong:
        raise TypeError(f"variants must be GridVariant objects, got {wrong}")
    folded = [v.name.lower() for v in variants]  # case-insensitive: the names are folder names
    duplicates = sorted({v.name for v in variants if folded.count(v.name.lower()) > 1})
    if duplicates:
        raise ValueError(f"variant name(s) {duplicates} given more than once; every variant needs its own name")
    return variants


def grid_variants(preset: str | None = None, variants: Sequence[GridVariant] = ()) -> list[GridVariant]:
    """The preset's variants (if any) followed by ``variants``.

    Raises:
        ValueError: an unknown preset, no variants at all, or a name used twice (names are compared ignoring case,
            as they are folder names).
    """
    preset_variants = get_preset(preset).variants if preset is not None else ()
    return _check_variants([*preset_variants, *variants])


def default_metric_names(report: Mapping[str, Any]) -> list[str]:
    """The scores of a metrics-report entry: its float (or undefined, ``None``) values, without bookkeeping entries.

    Counts (integers such as ``num_samples``), switches, lists, nested reports and the entries in
    ``_NOT_METRICS`` (thresholds, priors, ``mc_samples``, ...) are left out.
    """
    return [
        name
        for name, value in report.items()
        if name not in _NOT_METRICS and (value is None or (isinstance(value, float) and not isinstance(value, bool)))
    ]


def read_metrics(
    metrics_file: str | Path, metrics_key: str, metric_names: Sequence[str] | None = None
) -> dict[str, float | None]:
    """The scores ``metric_names`` (default :func:`default_metric_names`) of ``metrics_file[metrics_key]``.

    Undefined scores (NaN, stored as ``null``) read as ``None``.

    Raises:
        FileNotFoundError: no file.
        ValueError: no ``metrics_key`` entry, a missing metric, or a value that is not a number.
    """
    path = Path(metrics_file)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    content = load_metrics_json(path)
    report = content.get(metrics_key)
    if not isinstance(report, Mapping):
        raise ValueError(
            f"{path} has no report under {metrics_key!r} (its entries: {sorted(content)}); "
            "pass the key the bundle's evaluation writes (metrics_key / --metrics_key)"
        )
    names = list(metric_names) if metric_names is not None else default_metric_names(report)
    missing = [name for name in names if name not in report]
    if missing:
        raise ValueError(f"{path} [{metrics_key!r}] has no metric(s) {missing}; it has {default_metric_names(report)}")
    values: dict[str, float | None] = {}
    for name in names:
        value = report[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{path} [{metrics_key!r}][{name!r}] is not a number: {value!r}")
        values[name] = None if value is None or not math.isfinite(value) else float(value)
    return values


def _summary(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample SD (``ddof=1``; ``None`` for fewer than two values) of the defined values, and their count."""
    defined = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return {
        "mean": float(defined.mean()) if defined.size else None,
        "sd": float(defined.std(ddof=1)) if defined.size > 1 else None,
        "n": int(defined.size),
    }


def grid_table(
    variants: Sequence[GridVariant],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    metric_names: Sequence[str],
    title: str = "Comparison",
) -> dict[str, Any]:
    """Assemble the comparison table from the runs' metrics.

    Args:
        variants: the rows, in order.
        runs: per variant name, its runs: ``{"seed": s, "metrics": {metric: value or None}, ...}`` (other entries,
            e.g. folders, are kept as they are).
        metric_names: the columns, in order.
        title: the table's title.

    Returns:
        ``{"title", "metric_names", "seeds", "variants": [{"name", "label", "overrides", "evaluate_overrides",
        "runs", "summary": {metric: {"mean", "sd", "n"}}}]}`` (``seeds``: every seed of any run, sorted).

    Raises:
        ValueError: a variant without runs, or a run without one of the metrics.
    """
    rows = []
    seeds: set[int] = set()
    for variant in variants:
        variant_runs = list(runs.get(variant.name, ()))
        if not variant_runs:
            raise ValueError(f"variant {variant.name!r} has no runs")
        for run in variant_runs:
            missing = [name for name in metric_names if name not in run["metrics"]]
            if missing:
                raise ValueError(f"variant {variant.name!r}, seed {run['seed']}: no metric(s) {missing}")
            seeds.add(int(run["seed"]))
        rows.append(
            {
                "name": variant.name,
                "label": variant.label,
                "overrides": dict(variant.overrides),
                "evaluate_overrides": dict(variant.evaluate_overrides),
                "runs": variant_runs,
                "summary": {name: _summary([run["metrics"][name] for run in variant_runs]) for name in metric_names},
            }
        )
    return {"title": title, "metric_names": list(metric_names), "seeds": sorted(seeds), "variants": rows}


def _mean_sd(summary: Mapping[str, Any], n_seeds: int, digits: int = 3) -> str:
    if summary["mean"] is None:
        return "n/a"
    text = f"{summary['mean']:.{digits}f}"
    if summary["sd"] is not None:
        text += f" ± {summary['sd']:.{digits}f}"
    if summary["n"] < n_seeds:
        text += f" (n = {summary['n']})"
    return text


def format_grid(table: Mapping[str, Any]) -> str:
    """Markdown of :func:`grid_table` (with the ``bundle``, ``metrics_key`` and shared overrides of
    :func:`run_grid` when present): the paper-style table, then what each row ran."""
    names = table["metric_names"]
    seeds = table["seeds"]
    lines = [f"# {table['title']}", ""]
    source = f"Bundle `{Path(table['bundle']).name}`, s" if table.get("bundle") else "S"
    key = f"the `{table['metrics_key']}` report of " if table.get("metrics_key") else ""
    lines += [
        f"{source}eed(s) {', '.join(str(s) for s in seeds)}: mean ± SD over seeds (SD with n - 1) of {key}each "
        "run's evaluation (`eval/<name>/metrics.json`).",
        "",
        "| variant | " + " | ".join(METRIC_LABELS.get(name, name) for name in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for row in table["variants"]:
        cells = [_mean_sd(row["summary"][name], len(seeds)) for name in names]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bundle overrides of each row (its folder: training and evaluation; evaluation only):",
        "",
    ]
    for row in table["variants"]:
        label = f", {row['label']}" if row["label"] != row["name"] else ""
        text = f"- `{row['name']}/`{label}: `{format_overrides(row['overrides']) or '(bundle defaults)'}`"
        if row["evaluate_overrides"]:
            text += f"; evaluation only: `{format_overrides(row['evaluate_overrides'])}`"
        lines.append(text)
    if table.get("overrides"):
        lines += ["", f"Every run: `{format_overrides(table['overrides'])}`"]
    if table.get("evaluate_overrides"):
        lines += ["", f"Every evaluation: `{format_overrides(table['evaluate_overrides'])}`"]
    lines.append("")
    return "\n".join(lines)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {seeds}")
    return [int(s) for s in seeds]


def _check_disjoint(variants: Sequence[GridVariant], shared: Mapping[str, Any], shared_eval: Mapping[str, Any]) -> None:
    """Every override of a run is set in one place: shared or the variant's, training or evaluation-only."""
    for v in variants:
        sets = {
            "the shared overrides": shared,
            "the shared evaluation overrides": shared_eval,
            f"variant {v.name!r}": v.overrides,
            f"variant {v.name!r} (evaluation)": v.evaluate_overrides,
        }
        owners = list(sets)
        for i, a in enumerate(owners):
            for b in owners[i + 1 :]:
                clash = sorted(set(sets[a]) & set(sets[b]))
                if clash:
                    raise ValueError(f"{clash} set by both {a} and {b}; set each override in one place")


def _read_state(path: Path) -> dict[str, Any] | None:
    """A run's ``grid_run.json``, or ``None`` when there is none."""
    return load_metrics_json(path) or None


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(state), indent=2) + "\n")


def _run_one(
    bundle: Path,
    variant: GridVariant,
    seed: int,
    run_dir: Path,
    shared: Mapping[str, Any],
    shared_eval: Mapping[str, Any],
    metrics_key: str | None,
    overwrite: bool,
    resume: bool,
) -> tuple[str, Path]:
    """Train and evaluate one ``(variant, seed)`` unless ``resume`` finds it done; return its metrics key and file."""
    train_settings = {**shared, **variant.overrides}
    eval_settings = {**shared_eval, **variant.evaluate_overrides}
    identity = to_jsonable(
        {"variant": variant.name, "seed": seed, "overrides": train_settings, "evaluate_overrides": eval_settings}
    )
    state_file = run_dir / _STATE_FILE
    state = _read_state(state_file) if resume else None
    if state is not None and {k: state.get(k) for k in identity} != identity:
        raise ValueError(
            f"{run_dir} holds a run with other settings ({state_file}); resume only continues the same grid: "
            "pass overwrite (--overwrite) or choose another output_dir"
        )
    status = state.get("status") if state else None
    if status not in ("trained", "evaluated"):
        flags: dict[str, Any] = {}
        if overwrite:
            flags["overwrite"] = True
        elif status == "training" and latest_checkpoint(run_dir / "models") is not None:
            flags["resume"] = True
        _write_state(state_file, {**identity, "status": "training"})
        logger.info("grid: training %s, seed %s -> %s%s", variant.name, seed, run_dir, " (resumed)" if flags else "")
        train_run(bundle, run_dir, seed, {**train_settings, **flags})
        status = "trained"
        _write_state(state_file, {**identity, "status": status})
    if status != "evaluated":
        logger.info("grid: evaluating %s, seed %s -> %s", variant.name, seed, run_dir / "eval")
        workflow = evaluate_run(
            bundle,
            run_dir / "models",
            run_dir / "eval",
            # the grid owns its run folders: an evaluation interrupted earlier is replaced (moved aside)
            {**train_settings, **eval_settings, "seed": seed, "overwrite": True},
            log_dir=run_dir / "logs",
        )
        key = metrics_key
        if key is None:
            if workflow.parser.get("eval_split") is None:
                raise ValueError(f"{bundle} has no 'eval_split' in its evaluate.yaml: pass metrics_key (--metrics_key)")
            key = str(workflow.parser.get_parsed_content("eval_split"))
        metrics_file = str(evaluation_metrics_file(workflow))
        _write_state(state_file, {**identity, "status": "evaluated", "metrics_key": key, "metrics_file": metrics_file})
        return key, Path(metrics_file)
    logger.info("grid: %s, seed %s is finished (%s)", variant.name, seed, run_dir)
    # a grid written before evaluations had folders of their own read eval/metrics.json
    metrics_file = state.get("metrics_file") or run_dir / "eval" / "metrics.json"
    return metrics_key or str(state["metrics_key"]), Path(metrics_file)


def run_grid(
    bundle: str | Path,
    variants: Sequence[GridVariant],
    seeds: Sequence[int],
    output_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    evaluate_overrides: Mapping[str, Any] | None = None,
    metrics_key: str | None = None,
    metric_names: Sequence[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    title: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate every ``(variant, seed)`` with the bundle's configs; write ``grid.md`` and ``grid.json``.

    Args:
        bundle: the bundle folder.
        variants: the rows (:func:`grid_variants` adds a preset's).
        seeds: training seeds; each variant runs once per seed (the seed also picks seeded splits and subsets, and
            the evaluation uses the run's seed).
        output_dir: runs go to ``<output_dir>/<variant>/seed<s>/{models,logs,eval}``, the table to
            ``<output_dir>/grid.md`` and ``grid.json``.
        overrides: bundle overrides of every run, training and evaluation (data, network, epochs, ...).
        evaluate_overrides: bundle overrides of every evaluation only (e.g. ``{"mc_dropout": "true"}``).
        metrics_key: the entry of the evaluation's ``metrics.json`` to read (default: the bundle's ``eval_split``).
        metric_names: the columns (default: every score of the first run's report, :func:`default_metric_names`).
        overwrite: retrain every run in an ``output_dir`` that already holds files (over the old checkpoints).
        resume: continue the grid in ``output_dir``: finished runs are read back, not rerun.
        title: the table's title (default ``"Comparison"``).

    Returns:
        the :func:`grid_table` dict with ``bundle``, ``output_dir``, ``metrics_key``, ``overrides``,
        ``evaluate_overrides`` and ``markdown``; each run has ``seed``, ``run_dir``, ``metrics_file``, ``metrics``.

    Raises:
        FileNotFoundError: not a bundle folder.
        FileExistsError: ``output_dir`` holds files and neither ``overwrite`` nor ``resume`` is set.
        ValueError: bad variants, seeds or metric names, an override set in two places or reserved
            (:data:`RESERVED_OVERRIDES`), both ``overwrite`` and ``resume``, a resumed run made with other
            overrides, or metrics missing from a run's report.
    """
    root = bundle_folder(bundle)
    variants = _check_variants(variants)
    seeds = _check_seeds(seeds)
    shared = _check_overrides(overrides or {}, "the shared overrides")
    shared_eval = _check_overrides(evaluate_overrides or {}, "the shared evaluation overrides")
    _check_disjoint(variants, shared, shared_eval)
    if metric_names is not None:
        metric_names = list(metric_names)
        if not metric_names or len(set(metric_names)) != len(metric_names):
            raise ValueError(f"metric_names must be distinct names, at least one, got {metric_names}")
    if overwrite and resume:
        raise ValueError("choose overwrite (start afresh) or resume (keep finished runs), not both")
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        raise FileExistsError(
            f"{out} already holds results; pass resume (--resume) to continue that grid, overwrite (--overwrite) "
            "to start afresh over it, or choose another output_dir"
        )

    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    keys: list[str] = []
    for seed in seeds:
        for variant in variants:
            run_dir = out / variant.name / f"seed{seed}"
            key, metrics_file = _run_one(
                root, variant, seed, run_dir, shared, shared_eval, metrics_key, overwrite, resume
            )
            values = read_metrics(metrics_file, key, metric_names)
            metric_names = list(values) if metric_names is None else metric_names
            keys.append(key)
            runs[variant.name].append(
                {
                    "seed": seed,
                    "run_dir": str(run_dir),
                    "metrics_file": str(metrics_file),
                    "metrics_key": key,
                    "metrics": values,
                }
            )
    if not metric_names:
        raise ValueError("the runs' reports hold no scores; name the metrics to read (metric_names / --metrics)")
    table = grid_table(variants, runs, metric_names, title=title or "Comparison")
    table.update(
        bundle=str(root),
        output_dir=str(out),
        metrics_key=", ".join(dict.fromkeys(keys)),
        overrides=to_jsonable(shared),
        evaluate_overrides=to_jsonable(shared_eval),
    )
    markdown = format_grid(table)
    (out / "grid.md").write_text(markdown)
    (out / "grid.json").write_text(json.dumps(to_jsonable(table), indent=2) + "\n")
    table["markdown"] = markdown
    return table
