"""Tests of monai_imbalance.metrics.bland_altman_plot."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from monai_imbalance.metrics import bland_altman_plot, repeatability_report
from monai_imbalance.reporting import save_figure


def _report() -> dict:
    scores = [1.0, 1.5, 2.0, 2.2, 1.6, 3.0, 3.0, 0.5, 0.1]
    patients = ["a", "a", "b", "b", "b", "c", "c", "d", "d"]
    return repeatability_report(scores, patients, num_classes=5, n_boot=50)


def test_points_and_lines_follow_the_report():
    report = _report()
    fig = bland_altman_plot(report)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    order = np.argsort(points[:, 0])
    np.testing.assert_allclose(points[order, 0], np.sort(report["per_patient"]["mean_score"]))
    expected_y = np.asarray(report["per_patient"]["difference"])[np.argsort(report["per_patient"]["mean_score"])]
    np.testing.assert_allclose(points[order, 1], expected_y)
    lines = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert lines == pytest.approx(sorted([report["mean_diff"], *report["diff_percentiles"]]))
    assert f"{report['loa']:.3f}" in ax.get_title() and "n=4" in ax.get_title()
    # colour groups: the class nearest to the mean score (1.25 -> 1, 1.93 -> 2, 3.0 -> 3, 0.3 -> 0)
    assert [c.get_label() for c in ax.collections] == ["0", "1", "2", "3"]


def test_draws_into_given_axes_and_saves_as_png(tmp_path):
    fig = Figure()
    ax = fig.add_subplot()
    assert bland_altman_plot(_report(), title="knee, CE", ax=ax) is fig
    assert ax.get_title() == "knee, CE"
    save_figure(fig, tmp_path / "ba.png")
    assert (tmp_path / "ba.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_not_a_report_raises():
    with pytest.raises(ValueError, match="not a repeatability_report"):
        bland_altman_plot({"loa": 0.1})
