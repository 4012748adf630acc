"""Importing monai_imbalance hides MONAI's two nvImageCodec-absent messages, and nothing else of MONAI's."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import monai_imbalance
from monai.data.image_reader import NvImgCodecPydicomReader
from monai.transforms import LoadImage
LoadImage()
NvImgCodecPydicomReader(to_gpu=True)  # also warns that it ignores to_gpu: that warning must still show
"""


def test_nvimgcodec_messages_hidden_and_other_warnings_kept():
    result = subprocess.run(
        [sys.executable, "-W", "default::UserWarning", "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nvImageCodec is not available" not in result.stderr
    assert "did not register successfully" not in result.stderr
    assert "ignores to_gpu=True" in result.stderr
