"""``python -m monai_imbalance.compare``: see :mod:`monai_imbalance.compare`."""

from __future__ import annotations

import sys

from monai_imbalance.workflow import install_excepthook

from .cli import main

install_excepthook()  # a user error (a misspelt override, bad data) ends in one line, as bundle runs do
sys.exit(main())
