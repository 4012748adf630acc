"""A small convolutional classifier for quick CPU runs (tests, demos, 28-64 px MedMNIST images)."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import nn

__all__ = ["SmallCNN"]


class SmallCNN(nn.Sequential):
    """Stages of two 3x3 convolutions (conv, batch norm, ReLU) and a 2x max pool, then global average
    pooling and a linear classifier.

    For ``channels=(16, 32, 64)`` and a 2D input ``(B, in_channels, H, W)``: the stages give
    ``(B, 16, H/2, W/2)``, ``(B, 32, H/4, W/4)``, ``(B, 64, H/8, W/8)``; pooling ``(B, 64)``;
    the output logits ``(B, out_channels)``. Any input size of at least ``2 ** len(channels)`` pixels
    per side works. About 70k parameters for the default widths and 3 input channels.

    It has no dropout of its own: ``monai_imbalance.networks.add_dropout(net, p)`` (or
    ``get_network("small_cnn", dropout_prob=p)``) adds ``nn.Dropout(p)`` before the final linear layer.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels.
        out_channels: number of classes.
        channels: output width of every stage.
    """

    def __init__(
        self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 2, channels: Sequence[int] = (16, 32, 64)
    ) -> None:
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        channels = tuple(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive integers, got {channels}")
        layers: list[nn.Module] = []
        width = in_channels
        for c in channels:
            for _ in range(2):
                layers.append(
                    Convolution(spatial_dims, width, c, kernel_size=3, act="RELU", norm="BATCH", adn_ordering="NA")
                )
                width = c
            layers.append(Pool[Pool.MAX, spatial_dims](kernel_size=2))
        layers += [Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1), nn.Linear(width, out_channels)]
        super().__init__(*layers)
