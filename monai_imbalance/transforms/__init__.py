"""MONAI transforms: image/array loading, mammography pre-processing, decision thresholds."""
