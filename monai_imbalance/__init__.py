"""monai-imbalance: class-imbalance and repeatability methods for MONAI.

Importing the package imports every subpackage, so that MONAI's bundle config parser
(which scans the loaded modules whose names start with ``monai``) also resolves the short
names of its components, e.g. ``_target_: LMFLoss``. Where a short name exists in MONAI too
(``FocalLoss``), use the fully qualified name ``monai_imbalance.losses.FocalLoss``.
"""

__version__ = "0.3.0"

from monai_imbalance import (
    atomic_files,
    data,
    handlers,
    inferers,
    losses,
    metrics,
    networks,
    reporting,
    transforms,
    workflow,
)
from monai_imbalance._dependency_noise import silence_dependency_noise

# MONAI's notice that its optional GPU DICOM decoder is absent, on every CPU run (see _dependency_noise)
silence_dependency_noise()

__all__ = [
    "__version__",
    "atomic_files",
    "data",
    "handlers",
    "inferers",
    "losses",
    "metrics",
    "networks",
    "reporting",
    "transforms",
    "workflow",
]
