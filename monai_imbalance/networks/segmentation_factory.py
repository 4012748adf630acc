"""One call that builds the segmentation networks of the bundles: MONAI's U-Net or FocusNet, with dropout.

The ALL paper compares two networks: "a generic U-Net enhanced with batch normalization, dropout and
strided downsampling" and FocusNet. In a bundle config the network is one entry that a single override
switches::

    network_def: "$monai_imbalance.networks.get_segmentation_network(@network_name, in_channels=3, out_channels=1)"

=========== ====================================================================================================
name        network (defaults)
=========== ====================================================================================================
``unet``    :class:`UNetWithHead`: :class:`monai.networks.nets.UNet` with ``channels=(16, 32, 64, 128, 256)``,
            stride-2 convolutions for every downsampling (``strides=(2,) * (len(channels) - 1)``),
            ``num_res_units=2`` (two conv-norm-dropout-act units per level, as the two convolutions of the
            original U-Net, with a residual shortcut), batch norm, ReLU, dropout in every unit, giving
            ``channels[0]`` feature maps to a 1x1 convolution that outputs the logits (see
            :class:`UNetWithHead` for why).
``focusnet`` :class:`monai_imbalance.networks.FocusNet`: ``channels=(16, 32, 64, 128)``, batch norm, ReLU,
            dropout in every residual unit.
=========== ====================================================================================================

Both return logits ``(B, out_channels, *spatial)`` (no norm or activation after the last convolution) for an
input ``(B, in_channels, *spatial)``; every spatial size must be a multiple of :func:`segmentation_size_divisor`
(16 for both defaults). Widths are a quarter of the original U-Net's (64..1024) so that the bundles train on a
CPU; pass ``channels`` for the full width.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.layers import Conv
from monai.networks.nets import UNet
from torch import nn

from monai_imbalance.errors import check_choice
from monai_imbalance.networks.focusnet import FocusNet

__all__ = [
    "SEGMENTATION_NETWORK_NAMES",
    "TRACE_ONLY_NETWORK_NAMES",
    "UNetWithHead",
    "get_segmentation_network",
    "segmentation_size_divisor",
]

#: names accepted by :func:`get_segmentation_network` (case is ignored)
SEGMENTATION_NETWORK_NAMES: tuple[str, ...] = ("unet", "focusnet")

#: networks that ``torch.jit.script`` cannot compile, so that TorchScript export (MONAI's ``ckpt_export``) traces
#: them (``--use_trace true --input_shape [1, C, H, W]``): FocusNet's forward indexes its ``nn.ModuleList`` levels
#: with loop variables, in reverse order, which TorchScript does not support. Every other network and head of the
#: package scripts.
TRACE_ONLY_NETWORK_NAMES: tuple[str, ...] = ("focusnet",)

_DEFAULT_CHANNELS = {"unet": (16, 32, 64, 128, 256), "focusnet": (16, 32, 64, 128)}


class UNetWithHead(nn.Module):
    """MONAI's :class:`~monai.networks.nets.UNet` giving feature maps, then a 1x1 convolution to the logits.

    MONAI's U-Net with residual units (``num_res_units > 0``) ends in a transposed convolution to its
    ``out_channels`` followed by norm, dropout and activation, and a residual unit whose identity shortcut adds
    that activated map to the output. With one output channel (a binary mask with a sigmoid) every logit then
    comes from a single normalised, ReLU-ed feature map, and training stalls: on the DSB 2018 nuclei the
    background probability stayed near 0.4 under binary cross-entropy, Dice and focal losses alike, and the
    network could not even fit an all-background target. Here the U-Net outputs ``unet.out_channels``
    feature maps (the bundles use ``channels[0]``) and a 1x1 convolution, with no norm or activation after it,
    maps them to ``out_channels`` logits.

    Args:
        unet: the MONAI U-Net (its ``out_channels`` are the head's input channels).
        out_channels: channels of the logits.

    Shapes:
        input ``(B, in_channels, *spatial)``, output ``(B, out_channels, *spatial)``.
    """

    def __init__(self, unet: UNet, out_channels: int) -> None:
        super().__init__()
        if not isinstance(unet, UNet):
            raise TypeError(f"unet must be a monai.networks.nets.UNet, got {type(unet).__name__}")
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}")
        self.unet = unet
        self.out_channels = out_channels
        self.head = Conv[Conv.CONV, unet.dimensions](unet.out_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, out_channels, *spatial)``."""
        return self.head(self.unet(x))


def get_segmentation_network(
    name: str = "unet",
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    channels: Sequence[int] | None = None,
    dropout: float = 0.1,
    norm: str | tuple = "batch",
    act: str | tuple = "relu",
    **kwargs: Any,
) -> nn.Module:
    """Build the segmentation network ``name`` (see the module docstring for the table of defaults).

    Args:
        name: ``"unet"`` or ``"focusnet"`` (case-insensitive).
        spatial_dims: 2 (the paper) or 3.
        in_channels: image channels (3 for RGB dermoscopy and fundus, 1 for grey).
        out_channels: output channels (1: a binary mask with a sigmoid, the bundles' setting).
        channels: feature widths per level (``None``: the default of the network, see the table).
        dropout: dropout rate in ``[0, 1)`` of every unit (MC dropout needs it above 0).
        norm: normalisation, a MONAI ``Norm`` name or ``(name, args)``.
        act: activation, a MONAI ``Act`` name or ``(name, args)``.
        kwargs: further constructor arguments, e.g. ``strides``, ``num_res_units``, ``kernel_size`` (U-Net) or
            ``se_reduction``, ``side_channels``, ``side_sigmoid`` (FocusNet).

    Raises:
        ValueError: unknown ``name``, bad sizes or dropout rate.
        TypeError: an argument the chosen constructor does not take (the message names the accepted ones).
    """
    key = str(name).strip().lower()
    check_choice(key, SEGMENTATION_NETWORK_NAMES, "segmentation network")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    widths = tuple(_DEFAULT_CHANNELS[key] if channels is None else (int(c) for c in channels))
    if len(widths) < 2 or any(c < 1 for c in widths):
        raise ValueError(f"channels must list at least two positive widths (one per level), got {channels!r}")

    if key == "unet":
        options = {"strides": (2,) * (len(widths) - 1), "num_res_units": 2, **kwargs}
        _check_keywords(UNet, key, options)
        unet = UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=widths[0],
            channels=widths,
            dropout=float(dropout),
            norm=norm,
            act=act,
            **options,
        )
        return UNetWithHead(unet, out_channels)
    _check_keywords(FocusNet, key, kwargs)
    return FocusNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=widths,
        dropout=float(dropout),
        norm=norm,
        act=act,
        **kwargs,
    )


def _check_keywords(cls: type, name: str, kwargs: dict[str, Any]) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    fixed = {"spatial_dims", "in_channels", "out_channels", "channels", "dropout", "norm", "act"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(
            f"get_segmentation_network({name!r}): unknown argument(s) {unknown}; {cls.__name__} also accepts "
            f"{sorted(accepted - fixed)}"
        )


def segmentation_size_divisor(network: nn.Module) -> int:
    """The number every spatial input size of ``network`` must be a multiple of.

    MONAI ``UNet`` (also inside :class:`UNetWithHead`): the product of its strides (per level the largest, when
    strides differ by axis); :class:`~monai_imbalance.networks.FocusNet`: ``2**len(channels)`` (its ``divisor``).
    A ``DistributedDataParallel`` wrapper is looked through.

    Raises:
        TypeError: another network type.
    """
    module = getattr(network, "module", network)
    if isinstance(module, UNetWithHead):
        module = module.unet
    if isinstance(module, FocusNet):
        return module.divisor
    if isinstance(module, UNet):
        # a level's stride may be one int or one per spatial axis; the largest axis stride bounds the size
        return math.prod(max(s) if isinstance(s, Sequence) else int(s) for s in module.strides)
    raise TypeError(f"segmentation_size_divisor knows UNet, UNetWithHead and FocusNet, got {type(module).__name__}")
