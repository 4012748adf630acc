"""Narrow filters for third-party messages that every CPU run would print and that ask nothing of the user.

- MONAI's optional GPU DICOM decoder: every ``LoadImage`` (so every bundle run, through
  :class:`monai_imbalance.transforms.LoadImageOrArrayd`) builds MONAI's ``NvImgCodecPydicomReader``, which logs
  "nvImageCodec is not available; skipping pydicom decoder plugin registration." and warns "NvImgCodecPydicomReader:
  nvImageCodec decoder plugin did not register successfully. Falling back to default pydicom decoders." when the
  optional ``nvidia-nvimgcodec`` package (or CUDA) is absent: on every CPU machine. pydicom decodes the files
  instead, with the same result, so the two messages are hidden; only these two exact messages are, from only
  these two MONAI modules (every other warning of MONAI still shows).
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["silence_dependency_noise"]

_NVIMGCODEC_LOG = "nvImageCodec is not available; skipping pydicom decoder plugin registration."


class _DropMessage(logging.Filter):
    """Drops the log records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def silence_dependency_noise() -> None:
    """Install the filters of the module docstring (idempotent)."""
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    if not any(isinstance(f, _DropMessage) and f.prefix == _NVIMGCODEC_LOG for f in logger.filters):
        logger.addFilter(_DropMessage(_NVIMGCODEC_LOG))
    warnings.filterwarnings(
        "ignore",
        message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully",
        category=UserWarning,
        module=r"monai\.data\.image_reader",
    )
