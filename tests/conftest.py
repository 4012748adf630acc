"""Shared test fixtures: the real data sets in ``../shared/data``, a CPU-friendly thread count, a clean root logger."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONAI_IMBALANCE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two xdist workers on a two-core machine: one thread each avoids oversubscription
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real public data sets (read only; never copied into the repository)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"shared data not found at {SHARED_DATA}: check out ../shared beside the repository "
            "or point MONAI_IMBALANCE_SHARED_DATA at it"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _root_logger_restored():
    """Give back the root logger's handlers and level after each test.

    A bundle run in the test process (``monai_imbalance.compare``, ``ConfigWorkflow``) applies the bundle's
    ``logging.conf``, which replaces the root handlers by one printing to the stdout of that moment: a test's
    captured output, closed once the test ends, so later tests would log into a closed file.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
