"""Ignite handler that writes every predicted mask of an inference run as a PNG, with an optional uncertainty map.

For each sample of each iteration, in ``output_dir``::

    <id>_mask.png           8-bit grey. One output channel: 255 where the foreground probability is
                            >= threshold, else 0. Several channels: the argmax class index.
    <id>_<key>.png          (with MC dropout) the uncertainty map ``key`` of
                            :class:`monai_imbalance.inferers.MCDropoutInferer` (``entropy``,
                            ``mutual_information`` or ``variance``), 8-bit: round(255 * min(u / u_max, 1)),
                            where u_max is the largest value ``key`` can take for one sigmoid output
                            (ln 2 nats for the two entropies, 0.25 for the variance) unless given.

``pred`` is read after the evaluator's post-transforms, so a ``monai.transforms.Invertd`` there brings it
back to the image's original size (undoing a ``Resized``); the uncertainty map, which the inferer keeps at
the network's resolution, is resized bilinearly to the prediction's size. With ``mask_key`` (e.g. the
DRIVE field of view) the prediction is set to background outside the mask. Predictions arrive in MONAI's
layout ``(C, W, H)`` (first spatial axis = x, as ``LoadImaged`` and :class:`monai_imbalance.transforms.LoadImageOrArray`
read a picture) and are written transposed, so a PNG mask lies over its PNG image pixel for pixel.

File names come from the datalist's ``id`` (else the image file's stem, else the sample's position in the
run); two samples of one run with the same file name are an error, not an overwrite.

The set appears complete or not at all: the files are written into ``.<name>.partial`` beside ``output_dir``
and that folder is renamed to ``output_dir`` when the run's epoch completes. A run that dies midway (an
exception, SIGTERM, a power cut) leaves only the ``.partial`` folder, whose name says what it is; the next run
into the same place removes it. Nothing is overwritten silently: when the handler is created it refuses an
``output_dir`` that already holds ``*_mask.png`` files unless ``overwrite=True`` (which replaces the folder as a
whole at the end), and it refuses, whatever ``overwrite`` says, an ``output_dir`` holding files that this writer
does not write. Multi-process: every rank writes its own samples into the shared ``.partial`` folder (the ids
must then come from the datalist or file names) and rank 0 renames it after a barrier.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor, decollate_batch
from monai.handlers import from_engine
from monai.utils import CommonKeys, IgniteInfo, ImageMetaKey, min_version, optional_import

from monai_imbalance.errors import OutputExistsError
from monai_imbalance.handlers.epoch_handler import EpochHandler

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["MASK_SUFFIX", "SegmentationMaskWriter"]

#: suffix of the predicted mask files, ``<id>_mask.png``
MASK_SUFFIX = "_mask.png"

#: largest value of each MC-dropout uncertainty map for one sigmoid output: binary entropy and mutual
#: information are at most ln 2 nats, the variance of a probability at most 1/4
_UNCERTAINTY_MAX = {"entropy": math.log(2.0), "mutual_information": math.log(2.0), "variance": 0.25}

_UNSAFE = re.compile(r"[^\w.+-]")


class SegmentationMaskWriter(EpochHandler):
    """Write ``<id>_mask.png`` (and ``<id>_<uncertainty_key>.png``) per sample; see the module docstring.

    Args:
        output_dir: folder of the PNG files (created, complete, when the epoch completes).
        threshold: foreground threshold of one-channel probabilities.
        overwrite: replace an ``output_dir`` that holds masks of an earlier run (as a whole, when this run's set is
            complete); ``False`` (default) raises :class:`~monai_imbalance.errors.OutputExistsError`.
        id_key: datalist key holding the sample id.
        image_key: key of the image whose file name is the fallback id.
        output_transform: ``engine.state.output -> predictions`` (a list of ``(C, H, W)`` or a ``(B, C, H, W)``
            tensor); default the ``pred`` entries.
        mask_key: optional entry of the engine output (or batch) holding a ``(1, H, W)`` mask; outside it the
            prediction is background.
        uncertainty_key: entry of the engine's MC-dropout inferer ``last_output`` to write, or ``None``. Nothing is
            written when the inferer keeps no such entry (no MC dropout).
        uncertainty_max: the value written as 255 (default: see the module docstring; needed for other keys).
        name: logger name (default the engine's logger).

    Raises:
        OutputExistsError: ``output_dir`` already holds predicted masks and ``overwrite`` is ``False``, or holds
            files this writer does not write (a ``FileExistsError``; a bundle run ends in one line).
        ValueError: a threshold outside ``(0, 1)``, or an unknown ``uncertainty_key`` without ``uncertainty_max``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        threshold: float = 0.5,
        overwrite: bool = False,
        id_key: str = "id",
        image_key: str = CommonKeys.IMAGE,
        output_transform: Callable[[Any], Any] | None = None,
        mask_key: str | None = None,
        uncertainty_key: str | None = "entropy",
        uncertainty_max: float | None = None,
        name: str | None = None,
    ) -> None:
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if uncertainty_key is not None and uncertainty_max is None:
            if uncertainty_key not in _UNCERTAINTY_MAX:
                raise ValueError(
                    f"give uncertainty_max for uncertainty_key={uncertainty_key!r} (known: {sorted(_UNCERTAINTY_MAX)})"
                )
            uncertainty_max = _UNCERTAINTY_MAX[uncertainty_key]
        if uncertainty_max is not None and not float(uncertainty_max) > 0:
            raise ValueError(f"uncertainty_max must be > 0, got {uncertainty_max!r}")
        self.output_dir = Path(output_dir)
        self.threshold = float(threshold)
        self.overwrite = bool(overwrite)
        self.id_key = id_key
        self.image_key = image_key
        self.output_transform = output_transform or from_engine([CommonKeys.PRED])
        self.mask_key = mask_key
        self.uncertainty_key = uncertainty_key
        self.uncertainty_max = None if uncertainty_max is None else float(uncertainty_max)
        self._init_logger(name)
        self._position = 0
        self.written: list[Path] = []
        self._check_output_dir()

    @property
    def partial_dir(self) -> Path:
        """Where the files go until the set is complete: ``.<output_dir name>.partial`` beside ``output_dir``."""
        return self.output_dir.parent / f".{self.output_dir.name}.partial"

    def _is_own(self, path: Path) -> bool:
        suffixes = (MASK_SUFFIX, *([f"_{self.uncertainty_key}.png"] if self.uncertainty_key else []))
        return path.is_file() and path.name.endswith(suffixes)

    def _check_output_dir(self) -> None:
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise OutputExistsError(f"{self.output_dir} is a file; choose another --output_dir for the masks")
        if not self.output_dir.is_dir():
            return
        foreign = sorted(p for p in self.output_dir.iterdir() if not self._is_own(p))
        if foreign:
            raise OutputExistsError(
                f"{self.output_dir} holds {foreign[0].name}, which is not a predicted mask; it is replaced as a whole "
                "when a run completes, so choose another --output_dir (or move that file away)"
            )
        existing = sorted(self.output_dir.glob(f"*{MASK_SUFFIX}"))
        if existing and not self.overwrite:
            raise OutputExistsError(
                f"{self.output_dir} already holds predicted masks (e.g. {existing[0].name}); pass --overwrite true to "
                "replace them, or choose another --output_dir"
            )

    def epoch_started(self, engine: Engine) -> None:
        self._position = 0
        self.written = []
        if idist.get_rank() == 0:
            if self.partial_dir.exists():  # what an interrupted run left: incomplete by its name
                self.logger.info(f"removing {self.partial_dir}, the incomplete output of an interrupted run")
                shutil.rmtree(self.partial_dir)
            self.partial_dir.mkdir(parents=True)
        idist.barrier()

    # ------------------------------------------------------------------------------------------- one iteration
    def _items(self, engine: Engine, size: int) -> list[Mapping]:
        batch = engine.state.batch
        items = batch if isinstance(batch, list) else decollate_batch(batch) if isinstance(batch, dict) else []
        return items if len(items) == size else [{}] * size

    def _sample_id(self, item: Mapping) -> str:
        value = item.get(self.id_key)
        if value is None:
            image = item.get(self.image_key)
            source = image.meta.get(ImageMetaKey.FILENAME_OR_OBJ) if isinstance(image, MetaTensor) else None
            value = Path(str(source)).name.split(".")[0] if source else None
        if isinstance(value, torch.Tensor):
            value = value.item() if value.numel() == 1 else "_".join(str(v) for v in value.tolist())
        if value is None or value == "":
            if idist.get_world_size() > 1:
                raise ValueError(
                    f"a sample has no {self.id_key!r} entry and no image file name; a multi-process run needs an id "
                    f"per sample to name its mask file"
                )
            value = f"{self._position:05d}"
        return _UNSAFE.sub("_", str(value))

    def _masks(self, engine: Engine, size: int) -> list[torch.Tensor | None]:
        if self.mask_key is None:
            return [None] * size
        output = engine.state.output
        outputs = output if isinstance(output, list) else [output]
        items = self._items(engine, size)
        masks = []
        for k in range(size):
            source = outputs[k] if len(outputs) == size and self.mask_key in outputs[k] else items[k]
            if self.mask_key not in source:
                raise KeyError(f"mask_key {self.mask_key!r} is neither in the engine output nor in the batch")
            masks.append(torch.as_tensor(source[self.mask_key]).detach().cpu())
        return masks

    def _uncertainty(self, engine: Engine) -> torch.Tensor | None:
        if self.uncertainty_key is None:
            return None
        last = getattr(getattr(engine, "inferer", None), "last_output", None)
        value = last.get(self.uncertainty_key) if isinstance(last, dict) else None
        return value.detach().float().cpu() if isinstance(value, torch.Tensor) else None

    def _path(self, sample_id: str, suffix: str) -> Path:
        path = self.partial_dir / f"{sample_id}{suffix}"
        if path.exists():
            raise ValueError(
                f"two samples of this run are both written as {path.name}; give every sample its own id (the "
                f"datalist's {self.id_key!r} entry)"
            )
        return path

    def iteration_completed(self, engine: Engine) -> None:
        predictions = [
            torch.as_tensor(p).detach().float().cpu() for p in list(self.output_transform(engine.state.output))
        ]
        size = len(predictions)
        items = self._items(engine, size)
        masks = self._masks(engine, size)
        uncertainty = self._uncertainty(engine)
        if uncertainty is not None and uncertainty.shape[0] != size:
            uncertainty = None  # not from this iteration's inferer call
        for k, prediction in enumerate(predictions):
            if prediction.ndim != 3:
                raise ValueError(
                    f"predictions must be 2D, channel-first (C, H, W), got shape {tuple(prediction.shape)}"
                )
            sample_id = self._sample_id(items[k])
            if prediction.shape[0] == 1:
                picture = np.where(prediction[0].numpy() >= self.threshold, 255, 0).astype(np.uint8)
            else:
                picture = prediction.argmax(dim=0).numpy().astype(np.uint8)
            if masks[k] is not None:
                inside = masks[k].reshape(masks[k].shape[-2:]) != 0
                if tuple(inside.shape) != picture.shape:
                    raise ValueError(f"mask of {sample_id} is {tuple(inside.shape)}, its prediction {picture.shape}")
                picture = np.where(inside.numpy(), picture, 0).astype(np.uint8)
            self._save(picture, self._path(sample_id, MASK_SUFFIX))
            if uncertainty is not None:
                grey = _resized(uncertainty[k], tuple(prediction.shape[1:])) / self.uncertainty_max
                picture = np.round(255.0 * grey.clamp(0.0, 1.0).numpy()).astype(np.uint8)
                self._save(picture, self._path(sample_id, f"_{self.uncertainty_key}.png"))
            self._position += 1

    def _save(self, picture: np.ndarray, path: Path) -> None:
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(picture.T)).save(path)  # (W, H) -> uint8 (H, W): 8-bit grey
        self.written.append(path)

    def epoch_completed(self, engine: Engine) -> None:
        """Once every rank has written its samples: rename the complete set into ``output_dir``."""
        idist.barrier()
        if idist.get_rank() == 0:
            self._publish()
        idist.barrier()
        masks = sum(1 for p in self.written if p.name.endswith(MASK_SUFFIX))
        self.written = [self.output_dir / p.name for p in self.written]
        self.logger.info(
            f"wrote {masks} predicted mask(s) and {len(self.written) - masks} uncertainty map(s) to {self.output_dir}"
        )

    def _publish(self) -> None:
        """``partial_dir`` -> ``output_dir``; an earlier set there (checked when the handler was made) is replaced."""
        if not self.output_dir.exists():
            os.replace(self.partial_dir, self.output_dir)
            return
        self._check_output_dir()  # nothing appeared there during the run that is not ours to replace
        replaced = self.output_dir.parent / f".{self.output_dir.name}.replaced"
        if replaced.exists():
            shutil.rmtree(replaced)
        os.replace(self.output_dir, replaced)
        os.replace(self.partial_dir, self.output_dir)
        shutil.rmtree(replaced)


def _resized(values: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``(K, h, w)`` map -> ``(H, W)``: the maximum over ``K``, resized bilinearly when the size differs."""
    if values.ndim != 3:
        raise ValueError(f"uncertainty maps must be (K, H, W), got shape {tuple(values.shape)}")
    values = values.amax(dim=0)
    if tuple(values.shape) == size:
        return values
    return F.interpolate(values[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
