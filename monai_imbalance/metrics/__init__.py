"""Metrics: repeatability, and the classification and segmentation metrics MONAI lacks."""
