"""Command-line switches: ``--resume true`` arrives in the config as the *string* ``"true"``.

A dependency-free utility module that every subpackage (``data``, ``networks``, ``inferers``, ``workflow``)
may import; ``monai_imbalance.workflow.as_bool`` re-exports it for the bundle configs.
"""

from __future__ import annotations

__all__ = ["as_bool"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "none", "null", ""}


def as_bool(value: object) -> bool:
    """Read a command-line switch: ``True``/``False`` and also ``true``, ``yes``, ``1``, ``false``, ``no``, ``0``.

    ``python -m monai.bundle run --resume true`` hands the config the *string* ``"true"`` (only the
    Python spelling ``True`` becomes a bool), and the string ``"false"`` would count as true. The bundles
    read every switch through this function.

    Raises:
        ValueError: a value that is not a recognisable switch (e.g. ``"maybe"`` or ``2``).
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a switch (true/false, yes/no, 1/0), got {value!r}")
