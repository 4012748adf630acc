"""The MONAI Bundles of monai-imbalance, generated from family templates and per-task parts.

``python -m monai_imbalance.bundles list`` names them; ``python -m monai_imbalance.bundles export NAME DIR``
writes one, ready for ``python -m monai.bundle run``. The sources (package data of this folder) are
described in :mod:`monai_imbalance.bundles.render`; the repository's ``bundles/`` folder is regenerated
from them with ``python -m monai_imbalance.bundles sync``.
"""

from monai_imbalance.bundles.export import export_bundle, stale_files, sync_bundles
from monai_imbalance.bundles.render import BUNDLE_CONFIGS, SOURCE_DIR, bundle_names, render_bundle

__all__ = [
    "BUNDLE_CONFIGS",
    "SOURCE_DIR",
    "bundle_names",
    "export_bundle",
    "render_bundle",
    "stale_files",
    "sync_bundles",
]
