"""Simulated repeat acquisitions: seeded, mildly perturbed copies of each image, tagged with patient and visit ids.

Repeatability (``monai_imbalance.metrics.repeatability_report``) needs several images of the same
patient at the same visit. Few public data sets have them. :class:`RepeatAcquisitions` **simulates**
them: each item is returned ``num_repeats`` times, every copy with its own small random rotation,
translation, zoom, intensity scaling, contrast (gamma) change and Gaussian noise, drawn from a seed
derived from ``(seed, item index, copy index)``. The LoA measured on such copies is the model's
sensitivity to these perturbations; it is not a test-retest repeatability of real acquisitions
(positioning, exposure, anatomy changes), and its values are not comparable with the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandGaussianNoised,
    RandScaleIntensityd,
    apply_transform,
)
from monai.utils import ensure_tuple
from torch.utils.data import Dataset

__all__ = ["RepeatAcquisitions"]


def _id_string(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class RepeatAcquisitions(Dataset):
    """Dataset wrapper yielding ``num_repeats`` seeded, mildly perturbed copies of every item (a simulation).

    Item ``i`` is copy ``r = i % num_repeats`` of source item ``b = i // num_repeats``; the copies of
    one source item are consecutive. Each returned dict is a shallow copy of the source item with

    - the images under ``keys`` perturbed (spatially and in intensity) and ``mask_keys`` moved by
      the same spatial transform (nearest-neighbour), all as channel-first tensors;
    - ``patient_key``: the item's own patient id if it has one, else ``str(b)``;
    - ``visit_key``: the item's own visit id if it has one, else ``str(b)``. So copies of different
      source items never form one repeat group unless the data say they are the same patient
      *and* visit (e.g. several views of one visit: real repeats in the paper's sense); several
      images of one patient without visit ids (left and right knee) stay separate groups of the
      same patient, which the bootstrap resamples together;
    - ``"repeat_index"`` = ``r`` and ``"source_index"`` = ``b``.

    Ids are strings. The perturbation of copy ``r`` of item ``b`` is fully determined by
    ``(seed, b, r)``: the same in every epoch, DataLoader worker and process.

    The perturbation, built from MONAI transforms (``prob=1``, seeded per copy):

    - ``RandAffined``: rotation up to ``max_rotation_deg`` degrees (about every axis in 3D),
      translation up to ``max_translation`` times each spatial size, zoom by up to
      ``1 ± max_zoom``; ``padding_mode="border"``;
    - ``RandScaleIntensityd``: intensities times ``1 + f``, ``f ~ U(-intensity_scale, intensity_scale)``;
    - ``RandAdjustContrastd``: gamma drawn from ``gamma_range``;
    - ``RandGaussianNoised``: noise with standard deviation ``noise_std`` times the image's own
      intensity standard deviation (so the default suits any intensity range).

    Args:
        data: a sequence or map-style dataset of dicts with **loaded** channel-first images
            (e.g. ``monai.data.Dataset(datalist, transform=LoadImaged+EnsureChannelFirstd...)``).
        num_repeats: copies per item, ``R >= 2``.
        keys: image keys to perturb.
        mask_keys: keys that follow the spatial transform only (segmentation masks).
        max_rotation_deg, max_translation, max_zoom, intensity_scale, noise_std: perturbation
            strengths (see above; 0 switches a part off).
        gamma_range: ``(low, high)`` gamma of the contrast change; ``(1, 1)`` switches it off.
        seed: base seed of the simulation.
        transform: optional transform applied to every copy after the perturbation.
        patient_key, visit_key: the id keys written (and read if present).

    Raises:
        ValueError: bad parameters; TypeError: an item is not a dict or an image is not loaded.
    """

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]] | Dataset,
        num_repeats: int = 2,
        keys: str | Sequence[str] = ("image",),
        mask_keys: str | Sequence[str] = (),
        max_rotation_deg: float = 3.0,
        max_translation: float = 0.02,
        max_zoom: float = 0.03,
        intensity_scale: float = 0.05,
        gamma_range: tuple[float, float] = (0.9, 1.1),
        noise_std: float = 0.02,
        seed: int = 0,
        transform: Callable | None = None,
        patient_key: str = "patient_id",
        visit_key: str = "visit_id",
    ) -> None:
        if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
            raise TypeError(f"data must be a sequence or map-style dataset, got {type(data).__name__}")
        if isinstance(num_repeats, bool) or not isinstance(num_repeats, int) or num_repeats < 2:
            raise ValueError(f"num_repeats must be an integer >= 2 (repeatability needs repeats), got {num_repeats!r}")
        self.keys = tuple(ensure_tuple(keys))
        self.mask_keys = tuple(ensure_tuple(mask_keys))
        if not self.keys:
            raise ValueError("keys must name at least one image key")
        if set(self.keys) & set(self.mask_keys):
            raise ValueError(f"keys and mask_keys overlap: {sorted(set(self.keys) & set(self.mask_keys))}")
        self.max_rotation_deg = _non_negative("max_rotation_deg", max_rotation_deg)
        self.max_translation = _non_negative("max_translation", max_translation)
        self.max_zoom = _non_negative("max_zoom", max_zoom)
        if self.max_zoom >= 1:
            raise ValueError(f"max_zoom must be < 1, got {max_zoom}")
        self.intensity_scale = _non_negative("intensity_scale", intensity_scale)
        self.noise_std = _non_negative("noise_std", noise_std)
        gamma = tuple(float(g) for g in ensure_tuple(gamma_range))
        if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
            raise ValueError(f"gamma_range must be (low, high) with 0 < low <= high, got {gamma_range!r}")
        self.gamma_range = gamma
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.data = data
        self.num_repeats = num_repeats
        self.seed = int(seed)
        self.transform = transform
        self.patient_key = patient_key
        self.visit_key = visit_key

    def __len__(self) -> int:
        return len(self.data) * self.num_repeats

    def copy_seed(self, source_index: int, repeat_index: int) -> int:
        """The seed of copy ``repeat_index`` of source item ``source_index`` (from ``numpy.random.SeedSequence``)."""
        return int(np.random.SeedSequence([self.seed, source_index, repeat_index]).generate_state(1)[0])

    def _perturbation(self, item: Mapping[str, Any], copy_seed: int) -> Compose:
        image = item[self.keys[0]]
        spatial_dims = image.ndim - 1
        if spatial_dims not in (2, 3):
            raise ValueError(
                f"{self.keys[0]!r} must be a channel-first 2D or 3D image (C, H, W[, D]), "
                f"got shape {tuple(image.shape)}"
            )
        spatial_keys = self.keys + self.mask_keys
        rotation = math.radians(self.max_rotation_deg)
        transforms: list[Callable] = [
            RandAffined(
                keys=spatial_keys,
                prob=1.0,
                rotate_range=(rotation,) if spatial_dims == 2 else (rotation,) * 3,
                translate_range=[self.max_translation * s for s in image.shape[1:]],
                scale_range=(self.max_zoom,) * spatial_dims,
                mode=["bilinear"] * len(self.keys) + ["nearest"] * len(self.mask_keys),
                padding_mode="border",
            ),
            RandScaleIntensityd(keys=self.keys, factors=self.intensity_scale, prob=1.0),
            RandAdjustContrastd(keys=self.keys, gamma=self.gamma_range, prob=1.0),
        ]
        for key in self.keys:
            std = float(torch.as_tensor(item[key]).float().std()) if self.noise_std > 0 else 0.0
            transforms.append(RandGaussianNoised(keys=key, std=self.noise_std * std, prob=1.0, sample_std=False))
        compose = Compose(transforms)
        compose.set_random_state(seed=copy_seed)
        return compose

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index = int(index) % n
        source, repeat = divmod(index, self.num_repeats)
        item = self.data[source]
        if not isinstance(item, Mapping):
            raise TypeError(
                f"RepeatAcquisitions needs dict items (MONAI dictionary data), item {source} is {type(item).__name__}"
            )
        for key in self.keys + self.mask_keys:
            if key not in item:
                raise KeyError(f"item {source} has no key {key!r} (has {sorted(item)})")
            if isinstance(item[key], (str, bytes, PathLike)):
                raise TypeError(
                    f"item {source}[{key!r}] is a file name, not an image: load images before RepeatAcquisitions, "
                    "e.g. wrap monai.data.Dataset(datalist, transform=Compose([LoadImaged, EnsureChannelFirstd]))"
                )
        out = dict(item)
        out = self._perturbation(out, self.copy_seed(source, repeat))(out)
        out[self.patient_key] = _id_string(item[self.patient_key]) if self.patient_key in item else str(source)
        out[self.visit_key] = _id_string(item[self.visit_key]) if self.visit_key in item else str(source)
        out["repeat_index"] = repeat
        out["source_index"] = source
        if self.transform is not None:
            out = apply_transform(self.transform, out)
        return out
