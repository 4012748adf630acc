"""``python -m monai_imbalance.compare``: see :mod:`monai_imbalance.compare`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
