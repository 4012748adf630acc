"""Metrics: repeatability, and the classification and segmentation metrics MONAI lacks."""

from .bland_altman import bland_altman_plot
from .classification import (
    CLASSIFICATION_METRIC_NAMES,
    PREDICTION_FORMS,
    ClassificationMetric,
    MacroF1Metric,
    accuracy,
    balanced_accuracy,
    check_decision_rule,
    check_probabilities,
    classification_report,
    confusion_matrix,
    f1_score,
    needs_probabilities_message,
    precision_score,
    predicted_classes,
    prediction_form,
    recall_score,
    roc_auc,
)
from .repeatability import (
    MIN_PATIENTS,
    RepeatabilityMetric,
    compare_repeatability,
    continuous_score,
    intraclass_correlation,
    repeatability_report,
)
from .segmentation import (
    DEFAULT_AUC_BINS,
    DEFAULT_SEGMENTATION_METRICS,
    MaskedConfusionMatrixMetric,
    PixelROCAUCMetric,
    compute_pixel_roc_auc,
    compute_segmentation_scores,
    field_of_view_label,
    masked_confusion_matrix,
    masked_output_transform,
    pixel_score_histograms,
    roc_auc_from_histograms,
)

__all__ = [
    "MIN_PATIENTS",
    "RepeatabilityMetric",
    "bland_altman_plot",
    "compare_repeatability",
    "continuous_score",
    "intraclass_correlation",
    "repeatability_report",
]

__all__ += [
    "CLASSIFICATION_METRIC_NAMES",
    "PREDICTION_FORMS",
    "ClassificationMetric",
    "MacroF1Metric",
    "accuracy",
    "balanced_accuracy",
    "check_decision_rule",
    "check_probabilities",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "needs_probabilities_message",
    "precision_score",
    "predicted_classes",
    "prediction_form",
    "recall_score",
    "roc_auc",
]

__all__ += [
    "DEFAULT_AUC_BINS",
    "DEFAULT_SEGMENTATION_METRICS",
    "MaskedConfusionMatrixMetric",
    "PixelROCAUCMetric",
    "compute_pixel_roc_auc",
    "compute_segmentation_scores",
    "field_of_view_label",
    "masked_confusion_matrix",
    "masked_output_transform",
    "pixel_score_histograms",
    "roc_auc_from_histograms",
]
