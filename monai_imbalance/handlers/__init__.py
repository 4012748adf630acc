"""Ignite handlers: metric reports, TensorBoard figures, deferred re-weighting."""

from .classification_metric import BalancedAccuracy, ClassificationScore, MacroF1
from .classification_report import ClassificationReportHandler, plot_confusion_matrix
from .classification_tensorboard import ClassificationTensorBoard, plot_roc_curves, roc_curve
from .deferred_reweighting import DeferredReweighting
from .metrics_report import MetricsReportHandler
from .prediction_csv import PredictionCSVWriter, mc_dropout_uncertainty
from .repeatability import RepeatabilityHandler
from .segmentation_figures import SegmentationFiguresHandler, plot_segmentation_overlays
from .segmentation_masks import SegmentationMaskWriter
from .summary_writer import LazySummaryWriter, write_hparams
from .tensorboard_metrics import TensorBoardMetrics, phase_tag
from .threshold import ThresholdSelector

__all__ = [
    "RepeatabilityHandler",
    "SegmentationFiguresHandler",
    "ThresholdSelector",
    "plot_segmentation_overlays",
]

__all__ += [
    "BalancedAccuracy",
    "ClassificationReportHandler",
    "ClassificationScore",
    "MacroF1",
    "PredictionCSVWriter",
    "mc_dropout_uncertainty",
    "plot_confusion_matrix",
]

__all__ += ["DeferredReweighting"]

__all__ += ["MetricsReportHandler", "SegmentationMaskWriter"]

__all__ += [
    "ClassificationTensorBoard",
    "LazySummaryWriter",
    "TensorBoardMetrics",
    "phase_tag",
    "plot_roc_curves",
    "roc_curve",
    "write_hparams",
]
