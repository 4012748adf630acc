"""Ignite handlers: metric reports, TensorBoard figures, deferred re-weighting, a stop at a non-finite loss."""

from .classification_metric import BalancedAccuracy, ClassificationScore, MacroF1
from .classification_report import ClassificationReportHandler, plot_confusion_matrix
from .classification_tensorboard import ClassificationTensorBoard, plot_roc_curves, roc_curve
from .deferred_reweighting import DeferredReweighting
from .metrics_report import MetricsReportHandler
from .non_finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from .prediction_csv import PredictionCSVWriter, mc_dropout_uncertainty
from .referral import ReferralSelector
from .repeatability import RepeatabilityHandler
from .segmentation_figures import SegmentationFiguresHandler, plot_segmentation_overlays
from .segmentation_masks import SegmentationMaskWriter
from .segmentation_uncertainty import SegmentationUncertaintyHandler, image_uncertainty
from .summary_writer import LazySummaryWriter, write_hparams
from .tensorboard_metrics import TensorBoardMetrics, phase_tag
from .threshold import ThresholdSelector
from .uncertainty_report import (
    UncertaintyReportHandler,
    engine_uncertainty,
    plot_reliability_diagram,
    plot_risk_coverage,
)
from .validation_fit import ValidationFitHandler

__all__ = [
    "BalancedAccuracy",
    "ClassificationReportHandler",
    "ClassificationScore",
    "ClassificationTensorBoard",
    "DeferredReweighting",
    "LazySummaryWriter",
    "MacroF1",
    "MetricsReportHandler",
    "NonFiniteLossError",
    "PredictionCSVWriter",
    "ReferralSelector",
    "RepeatabilityHandler",
    "SegmentationFiguresHandler",
    "SegmentationMaskWriter",
    "SegmentationUncertaintyHandler",
    "StopOnNonFiniteLoss",
    "TensorBoardMetrics",
    "ThresholdSelector",
    "UncertaintyReportHandler",
    "ValidationFitHandler",
    "engine_uncertainty",
    "image_uncertainty",
    "mc_dropout_uncertainty",
    "phase_tag",
    "plot_confusion_matrix",
    "plot_reliability_diagram",
    "plot_risk_coverage",
    "plot_roc_curves",
    "plot_segmentation_overlays",
    "roc_curve",
    "write_hparams",
]
