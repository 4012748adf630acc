"""Re-export of :func:`monai_imbalance.switches.as_bool` (its home before 0.3), for code that imports it from here."""

from monai_imbalance.switches import as_bool

__all__ = ["as_bool"]
