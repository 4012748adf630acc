"""Ignite handlers: metric reports, TensorBoard figures, deferred re-weighting."""

from .segmentation_figures import SegmentationFiguresHandler, plot_segmentation_overlays

__all__ = ["SegmentationFiguresHandler", "plot_segmentation_overlays"]
