"""Metrics: repeatability, and the classification and segmentation metrics MONAI lacks."""

from .bland_altman import bland_altman_plot
from .repeatability import (
    RepeatabilityMetric,
    compare_repeatability,
    continuous_score,
    intraclass_correlation,
    repeatability_report,
)

__all__ = [
    "RepeatabilityMetric",
    "bland_altman_plot",
    "compare_repeatability",
    "continuous_score",
    "intraclass_correlation",
    "repeatability_report",
]
