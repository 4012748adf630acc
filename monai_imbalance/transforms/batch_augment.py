"""Random augmentation of whole batches on their device, after collation, as a trainer's ``prepare_batch``.

Why: MONAI's dictionary transforms augment one sample at a time in the DataLoader workers. At 224 px a
``RandFlipd`` + ``RandAffined`` costs about as much CPU time as decoding and resizing the image, so the
workers, not the network, set the training speed; and it forbids caching the pre-processed images with no
work left per sample. Here the deterministic part of the pipeline is cached and the random part runs once per
batch, on the device the batch is moved to (the GPU when there is one), with one ``affine_grid`` +
``grid_sample`` for all the samples that get an affine transform.

:class:`BatchRandAugment` draws, per sample and independently (the ranges of the bundles' per-sample
transforms):

- a flip of each spatial axis in ``flip_axes`` with probability ``flip_prob`` (MONAI ``RandFlipd``);
- a rotation by ``k * 90`` degrees, ``k`` uniform in {1, 2, 3}, with probability ``rotate90_prob``
  (MONAI ``RandRotate90d`` with ``max_k=3``; square images only, as there);
- with probability ``affine_prob`` an affine map ``A = R(theta) T(t) S(s)`` from output to input pixel
  positions around the image centre (MONAI ``RandAffined``'s composition and convention), with
  ``theta ~ U(-rotate_range, rotate_range)`` radians, ``t_i ~ U(-translate_range_i, translate_range_i)``
  pixels and ``s_i = 1 + U(-scale_range_i, scale_range_i)`` per spatial axis, sampled bilinearly for images
  and by nearest neighbour for masks, values outside the image taken from ``padding_mode`` (``border``).

Flips and 90-degree rotations are exact index permutations; samples without an affine draw are returned
unchanged (bit for bit). In normalised ``affine_grid`` coordinates (``align_corners=False``, vectors in
``(x, y) = (column, row)`` order) the map is ``theta_n = D^-1 A D`` with ``D = diag(W / 2, H / 2)``, so the
rotation is a true rotation on non-square images too.

The random numbers come from the object's own CPU ``torch.Generator`` seeded with ``seed`` (the run's seed):
the same draws on any device, independent of the global generators (dropout, shuffling), and saved and
restored by ``state_dict()`` / ``load_state_dict()`` so that a resumed run augments exactly as the
uninterrupted one. Every call draws the same amount of random numbers for a given batch size, whatever the
probabilities and whether a mask is given.

In a bundle's ``train.yaml``::

    batch_augment:
      _target_: monai_imbalance.transforms.BatchRandAugment
      flip_axes: [1]
      affine_prob: 0.5
      rotate_range: 0.17
      scale_range: 0.1
      seed: '@seed'
    train:
      trainer:
        _target_: SupervisedTrainer
        prepare_batch: {_target_: monai_imbalance.transforms.PrepareBatchAugment, augment: '@batch_augment'}

and ``batch_augment: '@batch_augment'`` in the "last" checkpoint's ``save_dict`` for exact resumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.engines.utils import PrepareBatch, default_prepare_batch

__all__ = ["AUGMENT_ON", "BatchRandAugment", "PrepareBatchAugment", "augment_placement"]

PADDING_MODES = ("border", "zeros", "reflection")
AUGMENT_ON = ("batch", "sample")


def augment_placement(augment: bool, augment_on: str) -> str:
    """Where a bundle's random augmentation runs: ``"none"``, ``"batch"`` or ``"sample"``.

    ``augment`` switches it on; ``augment_on`` is ``batch`` (:class:`PrepareBatchAugment`: whole batches on the
    device, after collation; the pre-processed images stay cached) or ``sample`` (MONAI's per-sample
    transforms in the DataLoader, as before 0.2).
    """
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}: write --augment_on batch")
    return augment_on if augment else "none"


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """``value`` for both spatial axes (rows, columns); a non-negative float or two of them."""
    pair = (float(value), float(value)) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(pair) != 2 or any(not math.isfinite(v) or v < 0 for v in pair):
        raise ValueError(f"{name} must be a non-negative number or two of them (rows, columns), got {value!r}")
    return pair  # type: ignore[return-value]


def _probability(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A MONAI ``MetaTensor`` as a plain tensor (no metadata bookkeeping in the per-batch operations)."""
    as_tensor = getattr(tensor, "as_tensor", None)
    return as_tensor() if callable(as_tensor) else tensor


def _affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, C, height, width), align_corners=False)`` by broadcasting.

    The same sampling positions (pixel centres ``(2 i + 1) / W - 1``), without the batched matrix product of
    ``affine_grid``, which is several times slower on the CPU for a 3-vector per pixel.
    """
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    t = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    grid = t[:, :, 0] * xs[None, None, None, :] + t[:, :, 1] * ys[None, None, :, None] + t[:, :, 2]  # (N, 2, H, W)
    return grid.permute(0, 2, 3, 1)


def _rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(N, 2, 2) rotation matrices in (row, column) order."""
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


class BatchRandAugment:
    """Per-sample random flips, 90-degree rotations and affine maps of a 2D batch ``(B, C, H, W)``, in one pass.

    Args:
        flip_axes: spatial axes (0 = rows, 1 = columns) each flipped independently with ``flip_prob``.
        flip_prob: probability of each flip.
        rotate90_prob: probability of a rotation by 90, 180 or 270 degrees (equally likely); needs ``H == W``.
        affine_prob: probability of the random affine map.
        rotate_range: largest rotation angle in radians (MONAI ``rotate_range``).
        scale_range: largest relative scale change, per axis (rows, columns) or one for both; ``s = 1 + U(-r, r)``.
        translate_range: largest shift in pixels, per axis (rows, columns) or one for both.
        padding_mode: ``grid_sample`` padding outside the image: ``border`` (MONAI's ``padding_mode: border``),
            ``zeros`` or ``reflection``.
        seed: seed of the generator (the run's seed).

    Call with ``(image, mask=None)``; returns ``(image, mask)`` as new tensors on the input's device.
    """

    def __init__(
        self,
        *,
        flip_axes: Sequence[int] = (),
        flip_prob: float = 0.5,
        rotate90_prob: float = 0.0,
        affine_prob: float = 0.0,
        rotate_range: float = 0.0,
        scale_range: float | Sequence[float] = 0.0,
        translate_range: float | Sequence[float] = 0.0,
        padding_mode: str = "border",
        seed: int = 0,
    ) -> None:
        self.flip_axes = tuple(int(axis) for axis in flip_axes)
        if any(axis not in (0, 1) for axis in self.flip_axes) or len(set(self.flip_axes)) != len(self.flip_axes):
            raise ValueError(
                f"flip_axes must be distinct spatial axes of a 2D image (0 rows, 1 columns), got {flip_axes!r}"
            )
        self.flip_prob = _probability(flip_prob, "flip_prob")
        self.rotate90_prob = _probability(rotate90_prob, "rotate90_prob")
        self.affine_prob = _probability(affine_prob, "affine_prob")
        if not (math.isfinite(float(rotate_range)) and float(rotate_range) >= 0):
            raise ValueError(f"rotate_range must be a non-negative angle in radians, got {rotate_range!r}")
        self.rotate_range = float(rotate_range)
        self.scale_range = _pair(scale_range, "scale_range")
        if any(r >= 1 for r in self.scale_range):
            raise ValueError(f"scale_range must be below 1 (a scale of 1 - r must stay positive), got {scale_range!r}")
        self.translate_range = _pair(translate_range, "translate_range")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    # ------------------------------------------------------------------ random state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator's state (a CPU ``uint8`` tensor: safe for ``torch.load(weights_only=True)``)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the random draws from a :meth:`state_dict`."""
        if "generator" not in state:
            raise KeyError(f"a BatchRandAugment state needs the key 'generator', got keys {sorted(state)}")
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())

    # ------------------------------------------------------------------ the draws
    def draw(self, batch_size: int) -> dict[str, torch.Tensor]:
        """This batch's random parameters (CPU tensors), a fixed number of draws per call.

        Returns ``flip`` (B, 2) bool per axis (rows, columns), ``rotate90`` (B,) int in {0, 1, 2, 3},
        ``affine`` (B,) bool, ``angle`` (B,) radians, ``scale`` (B, 2) and ``shift`` (B, 2) pixels (rows, columns).
        """
        g = self.generator
        uniform = torch.rand(batch_size, 9, generator=g, dtype=torch.float64)
        flip = torch.zeros(batch_size, 2, dtype=torch.bool)
        for axis in self.flip_axes:
            flip[:, axis] = uniform[:, axis] < self.flip_prob
        rotate = uniform[:, 2] < self.rotate90_prob
        rotate90 = torch.where(rotate, 1 + (uniform[:, 3] * 3).long().clamp(max=2), 0)
        affine = uniform[:, 4] < self.affine_prob
        angle = (2 * uniform[:, 5] - 1) * self.rotate_range
        scale = 1 + (2 * uniform[:, 6:8] - 1) * torch.tensor(self.scale_range, dtype=torch.float64)
        shift = (2 * torch.rand(batch_size, 2, generator=g, dtype=torch.float64) - 1) * torch.tensor(
            self.translate_range, dtype=torch.float64
        )
        return {"flip": flip, "rotate90": rotate90, "affine": affine, "angle": angle, "scale": scale, "shift": shift}

    @staticmethod
    def theta(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``affine_grid``'s (N, 2, 3) matrices of ``A = R(angle) T(shift) S(scale)`` in normalised coordinates.

        ``A`` maps output to input pixel positions, centred on the image, in MONAI's (row, column) order; it is
        reordered to ``(x, y) = (column, row)`` and conjugated with ``D = diag(W / 2, H / 2)``.
        """
        rotation = _rotation(torch.cos(angle), torch.sin(angle))  # (N, 2, 2), (row, column) order
        linear = rotation * scale[:, None, :]  # R @ diag(s)
        offset = torch.einsum("nij,nj->ni", rotation, shift)  # R @ t
        half = torch.tensor([height / 2, width / 2], dtype=torch.float64)  # D in (row, column) order
        linear = linear * half[None, None, :] / half[None, :, None]  # D^-1 A D
        offset = offset / half
        swap = [1, 0]  # (row, column) -> (x, y)
        theta = torch.empty(angle.shape[0], 2, 3, dtype=torch.float64)
        theta[:, :, :2] = linear[:, swap][:, :, swap]
        theta[:, :, 2] = offset[:, swap]
        return theta

    # ------------------------------------------------------------------ the call
    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment ``image`` (B, C, H, W), floating point, and the same way ``mask`` (B, C', H, W), any dtype."""
        image = _plain(image)
        if image.ndim != 4 or not image.is_floating_point():
            raise ValueError(
                f"BatchRandAugment needs a floating-point 2D batch (B, C, H, W), got {tuple(image.shape)} {image.dtype}"
            )
        batch, _, height, width = image.shape
        if mask is not None:
            mask = _plain(mask)
            if mask.ndim != 4 or mask.shape[0] != batch or mask.shape[2:] != image.shape[2:]:
                raise ValueError(
                    f"the mask must be (B, C', H, W) with the image's B, H, W {(batch, height, width)}, "
                    f"got {tuple(mask.shape)}"
                )
        if self.rotate90_prob > 0 and height != width:
            raise ValueError(
                f"90-degree rotations need square images, got {height}x{width}: "
                "resize to a square or set rotate90_prob 0"
            )
        params = self.draw(batch)
        device = image.device
        image = image.clone()  # one copy; the samples drawn for a change are replaced in place
        if mask is not None:
            mask = mask.clone()

        for axis in self.flip_axes:  # exact: index permutations
            index = params["flip"][:, axis].nonzero().squeeze(1).to(device)
            if index.numel():
                image.index_copy_(0, index, image.index_select(0, index).flip(2 + axis))
                if mask is not None:
                    mask.index_copy_(0, index, mask.index_select(0, index).flip(2 + axis))
        for k in (1, 2, 3):
            index = (params["rotate90"] == k).nonzero().squeeze(1).to(device)
            if index.numel():
                image.index_copy_(0, index, torch.rot90(image.index_select(0, index), k, dims=(2, 3)))
                if mask is not None:
                    mask.index_copy_(0, index, torch.rot90(mask.index_select(0, index), k, dims=(2, 3)))

        selected = params["affine"].nonzero().squeeze(1)
        if selected.numel():
            theta = self.theta(
                params["angle"][selected], params["scale"][selected], params["shift"][selected], height, width
            )
            index = selected.to(device)
            chosen = image.index_select(0, index)
            grid = _affine_grid(theta.to(device, chosen.dtype), height, width)
            warped = F.grid_sample(chosen, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)
            image.index_copy_(0, index, warped)
            if mask is not None:
                chosen_mask = mask.index_select(0, index)
                values = chosen_mask if chosen_mask.is_floating_point() else chosen_mask.float()
                warped_mask = F.grid_sample(
                    values, grid.to(values.dtype), mode="nearest", padding_mode=self.padding_mode, align_corners=False
                )
                mask.index_copy_(0, index, warped_mask.to(mask.dtype))
        return image, mask

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(flip_axes={self.flip_axes}, flip_prob={self.flip_prob}, "
            f"rotate90_prob={self.rotate90_prob}, affine_prob={self.affine_prob}, rotate_range={self.rotate_range}, "
            f"scale_range={self.scale_range}, translate_range={self.translate_range}, "
            f"padding_mode={self.padding_mode!r}, seed={self.seed})"
        )


class PrepareBatchAugment(PrepareBatch):
    """MONAI's default ``prepare_batch`` (image and label to the device), then a :class:`BatchRandAugment`.

    For ``SupervisedTrainer(prepare_batch=...)``: the batch is augmented after collation, on the trainer's
    device. With ``augment_label`` the label is a mask (segmentation) and gets the same geometric transform
    (nearest neighbour); otherwise it is a class label and passes unchanged. ``augment=None`` is MONAI's
    default behaviour. ``state_dict()`` / ``load_state_dict()`` are the augmentation's (for checkpoints).
    """

    def __init__(self, augment: BatchRandAugment | None = None, *, augment_label: bool = False) -> None:
        if augment is not None and not isinstance(augment, BatchRandAugment):
            raise TypeError(f"augment must be a BatchRandAugment or None, got {type(augment).__name__}")
        self.augment = augment
        self.augment_label = bool(augment_label)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor] | torch.Tensor | Sequence[torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if self.augment is None:
            return image, label
        if self.augment_label:
            return self.augment(image, label)
        return self.augment(image)[0], label

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.augment is None else self.augment.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.augment is not None:
            self.augment.load_state_dict(state)
