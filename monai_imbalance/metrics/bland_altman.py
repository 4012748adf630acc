"""Bland-Altman plot of a repeatability report: per-patient score difference against mean score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["bland_altman_plot"]


def bland_altman_plot(report: Mapping[str, Any], title: str | None = None, ax: Axes | None = None) -> Figure:
    """Draw the Bland-Altman plot of :func:`~monai_imbalance.metrics.repeatability_report`.

    One point per patient (per patient and visit when visits are given): x is the mean score
    :math:`m_u` of its images, y the signed difference of largest magnitude :math:`d_u`. Dashed
    lines at the mean difference :math:`\\bar d`, dotted lines at the 2.5 and 97.5 percentiles of
    :math:`d` (the limits of agreement before normalisation). Points are coloured by the class
    nearest to their mean score, ``round(m_u)``.

    Args:
        report: a repeatability report (its ``per_patient``, ``mean_diff``, ``diff_percentiles``,
            ``loa``, ``num_classes`` entries are used).
        title: figure title; default states the LoA (± half its 95% CI) and the patient count.
        ax: axes to draw in; default: a new ``matplotlib.figure.Figure`` (no pyplot state, so it
            is safe in worker threads and headless runs).

    Returns:
        the figure (pass it to :func:`monai_imbalance.reporting.save_figure`).

    Raises:
        ValueError: ``report`` lacks the entries above.
    """
    try:
        per = report["per_patient"]
        x = np.asarray(per["mean_score"], dtype=np.float64)
        y = np.asarray(per["difference"], dtype=np.float64)
        mean_diff = float(report["mean_diff"])
        lo, hi = (float(v) for v in report["diff_percentiles"])
        num_classes = int(report["num_classes"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"report is not a repeatability_report result ({type(e).__name__}: {e})") from e
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 4.0))
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    classes = np.clip(np.rint(x), 0, num_classes - 1).astype(int)
    for c in np.unique(classes):
        sel = classes == c
        ax.scatter(x[sel], y[sel], s=14, alpha=0.7, label=f"{c}")
    ax.axhline(mean_diff, color="k", linestyle="--", linewidth=1, label=f"mean {mean_diff:+.3f}")
    ax.axhline(lo, color="k", linestyle=":", linewidth=1, label=f"2.5% {lo:+.3f}")
    ax.axhline(hi, color="k", linestyle=":", linewidth=1, label=f"97.5% {hi:+.3f}")
    ax.set_xlim(-0.05 * (num_classes - 1), 1.05 * (num_classes - 1))
    ax.set_xlabel("mean score over repeat images")
    ax.set_ylabel("signed max difference")
    if title is None:
        pm = report.get("loa_pm")
        loa = report.get("loa")
        loa_text = "nan" if loa is None else f"{loa:.3f}"
        title = f"LoA {loa_text}" + (f" ± {pm:.3f}" if pm is not None else "") + f" (n={len(x)})"
    ax.set_title(title)
    ax.legend(title="nearest class", fontsize="small", title_fontsize="small", loc="best")
    return fig
