"""Writing results: the shared ``metrics.json`` and figures saved as PNG and as TensorBoard images.

Several handlers of one run write into the same ``metrics.json`` (classification metrics, the
repeatability report, the chosen decision threshold). :func:`update_metrics_json` merges their
entries instead of letting the last writer win, and writes atomically so that an interrupted run
never leaves a truncated file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["load_metrics_json", "save_figure", "to_jsonable", "update_metrics_json"]


def to_jsonable(value: Any) -> Any:
    """Convert tensors, numpy values and nested containers to plain JSON types.

    Non-finite floats become ``None`` (JSON has no NaN), tuples become lists, paths become strings.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def load_metrics_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics JSON file; a missing file reads as ``{}``.

    Raises:
        ValueError: the file exists but does not hold a JSON object.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); move it away or fix it before writing metrics there") from e
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a JSON {type(content).__name__}, expected an object")
    return content


def update_metrics_json(path: str | os.PathLike, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (created with its folder if missing).

    Top-level keys in ``updates`` replace the stored ones; all other stored keys are kept. The file
    is replaced atomically (write to a temporary file in the same folder, then rename).

    Returns:
        the merged content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = load_metrics_json(path)
    content.update(to_jsonable(dict(updates)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(content, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return content


def save_figure(
    figure: Figure,
    path: str | os.PathLike | None = None,
    summary_writer: SummaryWriter | None = None,
    tag: str | None = None,
    global_step: int = 0,
    dpi: int = 120,
) -> None:
    """Save a matplotlib figure as a PNG file and/or as a TensorBoard image, then close it.

    Args:
        figure: the figure to save.
        path: PNG file to write (its folder is created); ``None`` to skip.
        summary_writer: TensorBoard writer; ``None`` to skip.
        tag: TensorBoard tag; defaults to the file stem, or ``"figure"``.
        global_step: TensorBoard step (e.g. the epoch).
        dpi: resolution of the PNG.
    """
    import matplotlib.pyplot as plt

    try:
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=dpi, bbox_inches="tight")
        if summary_writer is not None:
            default_tag = Path(path).stem if path is not None else "figure"
            summary_writer.add_figure(tag or default_tag, figure, global_step=global_step, close=False)
    finally:
        plt.close(figure)
