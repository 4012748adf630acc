"""Writing results: the shared ``metrics.json``, figures saved as PNG and as TensorBoard images, metric tables.

Several handlers of one run write into the same ``metrics.json`` (classification metrics, the
repeatability report, the chosen decision threshold). :func:`update_metrics_json` merges their
entries instead of letting the last writer win, and writes atomically so that an interrupted run
never leaves a truncated file behind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from monai_imbalance.atomic_files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

__all__ = [
    "METRIC_LABELS",
    "load_metrics_json",
    "metrics_table",
    "print_metrics_table",
    "save_figure",
    "to_jsonable",
    "update_metrics_json",
]


def to_jsonable(value: Any) -> Any:
    """Convert tensors, numpy values and nested containers to plain JSON types.

    Non-finite floats become ``None`` (JSON has no NaN), tuples become lists, paths become strings.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def load_metrics_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics JSON file; a missing file reads as ``{}``.

    Raises:
        ValueError: the file exists but does not hold a JSON object.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); move it away or fix it before writing metrics there") from e
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a JSON {type(content).__name__}, expected an object")
    return content


def update_metrics_json(path: str | os.PathLike, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (created with its folder if missing).

    Top-level keys in ``updates`` replace the stored ones; all other stored keys are kept. The file
    is replaced atomically (:func:`~monai_imbalance.atomic_files.atomic_write`: a temporary file in the same
    folder, renamed; new files get the umask's mode).

    Returns:
        the merged content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = load_metrics_json(path)
    content.update(to_jsonable(dict(updates)))
    with atomic_write(path) as f:
        json.dump(content, f, indent=2, sort_keys=True)
        f.write("\n")
    return content


def save_figure(
    figure: Figure,
    path: str | os.PathLike | None = None,
    summary_writer: SummaryWriter | None = None,
    tag: str | None = None,
    global_step: int = 0,
    dpi: int = 120,
) -> None:
    """Save a matplotlib figure as a PNG file and/or as a TensorBoard image, then close it.

    Args:
        figure: the figure to save.
        path: PNG file to write (its folder is created); ``None`` to skip.
        summary_writer: TensorBoard writer; ``None`` to skip.
        tag: TensorBoard tag; defaults to the file stem, or ``"figure"``.
        global_step: TensorBoard step (e.g. the epoch).
        dpi: resolution of the PNG.
    """
    import matplotlib.pyplot as plt

    try:
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=dpi, bbox_inches="tight")
        if summary_writer is not None:
            default_tag = Path(path).stem if path is not None else "figure"
            summary_writer.add_figure(tag or default_tag, figure, global_step=global_step, close=False)
    finally:
        plt.close(figure)


#: row labels of :func:`metrics_table`, in display order: the scores of the classification, segmentation and
#: repeatability reports (``metrics.json`` entries), so that one table code serves every bundle
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "f1_macro": "macro F1",
    "precision_macro": "macro precision",
    "recall_macro": "macro recall",
    "f1_positive": "F1 (positive class)",
    "precision_positive": "precision (positive class)",
    "recall_positive": "sensitivity (positive class)",
    "jaccard": "Jaccard (IoU)",
    "dice": "Dice (F1)",
    "recall": "recall (sensitivity)",
    "specificity": "specificity",
    "auc": "AUC",
    "ece": "ECE (top-label)",
    "ece_before_temperature": "ECE before temperature",
    "classwise_ece": "class-wise ECE",
    "brier": "Brier score",
    "nll": "NLL",
    "aurc": "AURC",
    "e_aurc": "E-AURC",
    "uncertainty_auroc": "uncertainty-error AUROC",
    "pixel_uncertainty_auroc": "pixel uncertainty-error AUROC",
    "image_aurc": "image AURC (1 - Dice)",
    "loa": "95% limits of agreement",
    "loa_boot_mean": "LoA (bootstrap mean, paper)",
    "loa_rel": "LoA relative to the range",
    "icc": "ICC",
    "icc_2k": "ICC(2,k) (paper)",
    "mean_abs_diff": "mean absolute difference",
    "disagreement_rate": "disagreement rate",
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _cell(value: Any, width: int) -> str:
    number = _number(value)
    return f"{'-':>{width}}" if number is None else f"{number:>{width}.3f}"


def metrics_table(
    columns: Mapping[str, Mapping[str, Any]], *, rows: Sequence[str] | None = None, per_class: str | None = "f1"
) -> str:
    """A plain-text table of metric reports side by side: one row per metric, one column per report.

    Args:
        columns: ``{column title: report}``, reports as in ``metrics.json`` (e.g. ``{"validation": ...,
            "test (MC)": ...}``).
        rows: the metric keys, in order (default: the keys of :data:`METRIC_LABELS` that some report holds as a
            number); labelled by :data:`METRIC_LABELS` where they have a label, else by the key.
        per_class: a per-class score (``"f1"``, ``"recall"``, ...) listed below for the reports with a
            ``"per_class"`` entry, one column each; ``None`` for none.

    Reports with a ``"referral"`` table (:func:`monai_imbalance.metrics.referral_table`) get a section with the
    accuracy, balanced accuracy and macro F1 of the cases kept at every referral rate.

    Values are shown with three decimals; missing and non-finite ones as ``-``. Per-class rows follow the reports'
    ``class_names`` (the class-index order, not the alphabetical order ``metrics.json`` stores). A report's
    ``"warnings"`` (e.g. degenerate predictions, :mod:`monai_imbalance.metrics.degenerate`) are listed below.
    """
    if not columns:
        raise ValueError("metrics_table needs at least one report")
    if rows is None:
        rows = [
            key for key in METRIC_LABELS if any(_number(report.get(key)) is not None for report in columns.values())
        ]
    labels = [METRIC_LABELS.get(key, key) for key in rows]
    label_width = max([26, *(len(label) + 2 for label in labels)])
    widths = [max(12, len(title) + 2) for title in columns]
    header = f"{'metric':<{label_width}}" + "".join(f"{title:>{w}}" for title, w in zip(columns, widths, strict=True))
    lines = [header, "-" * len(header)]
    for key, label in zip(rows, labels, strict=True):
        cells = "".join(_cell(report.get(key), w) for report, w in zip(columns.values(), widths, strict=True))
        lines.append(f"{label:<{label_width}}{cells}")
    with_classes = {title: report["per_class"] for title, report in columns.items() if report.get("per_class")}
    if per_class is not None and with_classes:
        # the reports' class_names order (metrics.json stores per_class with sorted keys), then any others
        ordered = [name for report in columns.values() for name in report.get("class_names") or ()]
        names = list(dict.fromkeys([*ordered, *(name for scores in with_classes.values() for name in scores)]))
        names = [name for name in names if any(name in scores for scores in with_classes.values())]
        class_width = max([label_width - 2, *(len(name) for name in names)])
        class_widths = [max(12, len(title) + 2) for title in with_classes]
        heading = f"{per_class + ' per class':<{class_width + 2}}"
        lines += ["", heading + "".join(f"{t:>{w}}" for t, w in zip(with_classes, class_widths, strict=True))]
        for name in names:
            cells = "".join(
                _cell(scores.get(name, {}).get(per_class), w)
                for scores, w in zip(with_classes.values(), class_widths, strict=True)
            )
            lines.append(f"  {name:<{class_width}}{cells}")
    lines += _referral_lines(columns, label_width)
    for title, report in columns.items():
        messages = report.get("warnings") or []
        if messages:
            lines += ["", f"WARNING ({title}):" if len(columns) > 1 else "WARNING:"]
            lines += [f"  - {message}" for message in messages]
    return "\n".join(lines)


_REFERRAL_SCORES = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("f1_macro", "macro F1"),
    ("dice", "mean Dice"),
)


def _referral_lines(columns: Mapping[str, Mapping[str, Any]], label_width: int) -> list[str]:
    """The referral section of :func:`metrics_table`: kept cases' scores per referral rate, one column per report."""
    tables = {t: r["referral"] for t, r in columns.items() if isinstance(r.get("referral"), Mapping)}
    if not tables:
        return []
    rates = list(dict.fromkeys(rate for table in tables.values() for rate in table))
    names = sorted({str(r["uncertainty_score"]) for r in columns.values() if r.get("uncertainty_score")})
    heading = "kept cases after referral" + (f" (by {', '.join(names)})" if names else "")
    rows = []
    for rate in rates:
        share = _number(next((t[rate].get("rate") for t in tables.values() if isinstance(t.get(rate), Mapping)), None))
        for key, label in _REFERRAL_SCORES:
            if not any(isinstance(t.get(rate), Mapping) and key in t[rate] for t in tables.values()):
                continue
            text = f"{label}, {share:.0%} referred" if share is not None else f"{label}, rate {rate}"
            rows.append((text, [table.get(rate, {}).get(key) for table in tables.values()]))
    width = max([label_width, len(heading) + 2, *(len(text) + 4 for text, _ in rows)])
    widths = [max(12, len(title) + 2) for title in tables]
    lines = ["", f"{heading:<{width}}" + "".join(f"{t:>{w}}" for t, w in zip(tables, widths, strict=True))]
    for text, values in rows:
        lines.append(f"  {text:<{width - 2}}" + "".join(_cell(v, w) for v, w in zip(values, widths, strict=True)))
    return lines


def print_metrics_table(metrics_file: str | os.PathLike, keys: Sequence[str], *, per_class: str | None = "f1") -> str:
    """Print the reports ``keys`` of ``metrics_file`` as tables (:func:`metrics_table`), the end of a bundle run.

    One table per key present in the file (a key the run did not write, e.g. ``"repeatability"`` without
    repeat images, is left out), under a title line naming the key and the file. Prints on the first process
    only (every process returns the text).

    Returns:
        the printed text (``""`` when no key is in the file).
    """
    if isinstance(keys, str):
        keys = [keys]
    content = load_metrics_json(metrics_file)
    tables = [
        f"{key} ({metrics_file}):\n" + metrics_table({key: content[key]}, per_class=per_class)
        for key in keys
        if isinstance(content.get(key), Mapping)
    ]
    text = "\n\n".join(tables)
    if text and int(os.environ.get("RANK", "0")) == 0:
        print("\n" + text, flush=True)
    return text
