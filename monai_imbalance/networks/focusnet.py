"""FocusNet: a residual U-Net whose decoder attention gates a squeeze-and-excitation encoder-decoder.

Kaul, Manandhar and Pears, "FocusNet: an attention-based fully convolutional network for medical
image segmentation", ISBI 2019 (the second network of the Adaptive Logarithmic Loss paper).

Architecture (``D = len(channels)`` levels, ``c_s = channels[s]``, scale ``s`` = resolution ``H / 2**s``)::

    branch 1 (attention, residual U-Net, D-1 downsamplings)
        a_0 = RU(x)                         c_0    at scale 0
        a_s = RU_stride2(a_{s-1})           c_s    at scale s = 1..D-1   (a_{D-1}: bottleneck)
        decoder, s = D-2..0:  u_s = RU(cat(up(u_{s+1}), a_s))   c_s at scale s   (u_{D-1} = a_{D-1})
        gate_s = sigmoid(u_s)               values in (0, 1), one map per channel

    branch 2 (squeeze-and-excitation encoder-decoder, D downsamplings)
        f = Conv7x7(x)                      c_0    at scale 0  (the stem, also the last skip)
        for s = 0..D-1:
            f = SE(RU(f))                   c_s    at scale s
            f = SE(f * gate_s)              only for s <= D-2: the attention gates the recalibrated features
            f = skip_{s+1} = RU_stride2(f)  c_s    at scale s + 1
        decoder, s = D-1..0:  g_s = RU(cat(up(g_{s+1}), skip_s))   d_s at scale s
                              (g_D = skip_D, skip_0 = stem; d_s = c_{s-1}, d_0 = c_0 // 2)
        side_s = up_{2**s}(Conv1x1(Conv3x3(g_s)))                out_channels at scale 0
        logits = Conv1x1(Conv3x3(cat(side_{D-1}, ..., side_0)))  (B, out_channels, H, W)

``RU`` is MONAI's :class:`~monai.networks.blocks.ResidualUnit` (two conv-norm-dropout-act units and
an additive shortcut, strided for downsampling), ``SE`` MONAI's
:class:`~monai.networks.blocks.ChannelSELayer`, ``up`` MONAI's
:class:`~monai.networks.blocks.UpSample` (transposed convolution in the decoders, bilinear for the
side outputs).

What is reconstructed, not taken from the paper: the ISBI paper and the ALL paper describe the
structure only in words (summarised in ``docs/papers.md#focusnet`` of the repository); the layout above follows the
authors' public Keras code for FocusNet (``focusnet()`` in ``models.py`` of the FocusNet series),
with these deliberate changes, each a documented default:

- Widths are a ``channels`` argument (MONAI style); the authors' network is roughly
  ``channels=(64, 128, 256, 512)`` with a branch 1 of half that width in its encoder. Here
  branch 1 uses ``c_s`` at every scale so that ``gate_s`` matches branch 2 channel for channel
  (as in the authors' code, where the decoder widths match). The default ``(16, 32, 64, 128)``
  keeps the network small enough for CPU training.
- Residual blocks are MONAI's ``ResidualUnit`` (post-activation, norm and act configurable);
  the authors used Keras ResNet basic blocks with batch norm and ReLU.
- Side outputs: the authors upsample decoder features by nearest neighbour and convolve at full
  resolution; here the 3x3 and 1x1 convolutions run at the decoder's scale and only the
  ``out_channels`` map is upsampled (bilinear), which is far cheaper. The full-resolution side
  output uses the same head (the authors stacked three residual blocks of 32, 16 and 4 filters).
- Dropout: the authors had one dropout layer (rate 0.2) after the attention bottleneck; here
  every residual unit of both branches has dropout ``dropout`` (default 0.1) so that Monte Carlo
  dropout gives a useful spread.
- The SE reduction ratio defaults to 8 (the authors' Keras SE block used 16, which leaves one
  hidden unit at 16 channels); configurable through ``se_reduction``.
- The network returns logits; apply ``sigmoid`` (or ``softmax`` for ``out_channels > 1`` with a
  mutually exclusive labelling) outside, as for any MONAI network.
- The side outputs enter the fusion as logits. The authors passed each through a sigmoid first
  (``side_sigmoid=True`` restores that); on a toy problem here the sigmoid slowed training
  markedly (the fused input starts near a constant 0.5), so it is off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ChannelSELayer, Convolution, ResidualUnit, UpSample
from torch import nn

__all__ = ["FocusNet"]


class FocusNet(nn.Module):
    """FocusNet (Kaul et al. 2019) in MONAI style; see the module docstring for the layout.

    Args:
        spatial_dims: number of spatial dimensions, 2 (the paper) or 3.
        in_channels: channels of the input image (1 for grey, 3 for RGB).
        out_channels: channels of the output logits (1 for a binary mask with a sigmoid).
        channels: feature widths ``c_0, ..., c_{D-1}`` of the ``D`` encoder levels, at least two.
            Spatial sizes of the input must be divisible by ``2**D``.
        dropout: dropout rate inside every residual unit (0 disables it; > 0 is what MC dropout needs).
        norm: normalisation of every convolution, a MONAI ``Norm`` name or ``(name, args)`` tuple.
        act: activation, a MONAI ``Act`` name or ``(name, args)`` tuple.
        se_reduction: reduction ratio of the squeeze-and-excitation layers; ``channels[0] //
            se_reduction`` must be at least 1.
        side_channels: width of the 3x3 convolution of each side-output head and of the fusion head.
        side_sigmoid: pass each side output through a sigmoid before the fusion, as in the authors'
            code (default ``False``: fuse the side logits).

    Shapes:
        input ``(B, in_channels, *spatial)``, output logits ``(B, out_channels, *spatial)``.

    Note:
        With batch normalisation in training mode, a batch of one image at the smallest valid size
        (``2**D`` pixels a side) leaves a single value per channel at the bottleneck, which batch
        norm rejects; train with a batch of at least two or use ``norm="instance"``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        dropout: float = 0.1,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        se_reduction: int = 8,
        side_channels: int = 16,
        side_sigmoid: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if spatial_dims not in (2, 3):
            raise ValueError(f"FocusNet supports spatial_dims 2 or 3, got {spatial_dims}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if len(channels) < 2 or any(not isinstance(c, int) or c < 2 for c in channels):
            raise ValueError(f"channels must list at least two ints >= 2 (one per level), got {channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not isinstance(se_reduction, int) or se_reduction < 1 or min(channels) // se_reduction < 1:
            raise ValueError(
                f"se_reduction must be a positive int with min(channels) // se_reduction >= 1, "
                f"got se_reduction={se_reduction} and channels={channels}"
            )
        if not isinstance(side_channels, int) or side_channels < 1:
            raise ValueError(f"side_channels must be a positive int, got {side_channels!r}")

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels
        self.side_sigmoid = bool(side_sigmoid)
        self.depth = len(channels)
        depth = self.depth

        def residual(c_in: int, c_out: int, stride: int = 1) -> ResidualUnit:
            return ResidualUnit(spatial_dims, c_in, c_out, strides=stride, act=act, norm=norm, dropout=dropout or None)

        def squeeze_excite(c: int) -> ChannelSELayer:
            return ChannelSELayer(spatial_dims, c, r=se_reduction)

        def upsample(c_in: int, c_out: int) -> UpSample:
            return UpSample(spatial_dims, c_in, c_out, scale_factor=2, mode="deconv")

        # branch 1: residual U-Net with depth - 1 downsamplings; decoder features become the gates
        self.attention_encoder = nn.ModuleList(
            [residual(in_channels, channels[0])]
            + [residual(channels[s - 1], channels[s], stride=2) for s in range(1, depth)]
        )
        self.attention_upsample = nn.ModuleList([upsample(channels[s + 1], channels[s]) for s in range(depth - 1)])
        self.attention_decoder = nn.ModuleList([residual(2 * channels[s], channels[s]) for s in range(depth - 1)])

        # branch 2: squeeze-and-excitation encoder gated by branch 1, then a decoder with side outputs
        self.stem = Convolution(spatial_dims, in_channels, channels[0], kernel_size=7, act=act, norm=norm)
        self.encoder = nn.ModuleList(
            [residual(channels[0], channels[0])] + [residual(channels[s - 1], channels[s]) for s in range(1, depth)]
        )
        self.recalibrate = nn.ModuleList([squeeze_excite(c) for c in channels])
        self.recalibrate_gated = nn.ModuleList([squeeze_excite(channels[s]) for s in range(depth - 1)])
        self.downsample = nn.ModuleList([residual(c, c, stride=2) for c in channels])

        decoder_channels = [max(channels[0] // 2, 1), *channels[:-1]]  # d_s
        skip_channels = [channels[0], *channels[:-1]]  # stem, then skip_s = output of downsample[s - 1]
        below = [*decoder_channels[1:], channels[-1]]  # width arriving from scale s + 1
        self.decoder_upsample = nn.ModuleList([upsample(below[s], decoder_channels[s]) for s in range(depth)])
        self.decoder = nn.ModuleList(
            [residual(decoder_channels[s] + skip_channels[s], decoder_channels[s]) for s in range(depth)]
        )
        self.side_outputs = nn.ModuleList(
            [
                nn.Sequential(
                    Convolution(spatial_dims, decoder_channels[s], side_channels, act=act, norm=None),
                    Convolution(spatial_dims, side_channels, out_channels, kernel_size=1, conv_only=True),
                    UpSample(
                        spatial_dims,
                        scale_factor=2**s,
                        mode="nontrainable",
                        pre_conv=None,
                        interp_mode="linear",
                        align_corners=False,
                    )
                    if s > 0
                    else nn.Identity(),
                )
                for s in range(depth)
            ]
        )
        self.fusion = nn.Sequential(
            Convolution(spatial_dims, depth * out_channels, side_channels, act=act, norm=None),
            Convolution(spatial_dims, side_channels, out_channels, kernel_size=1, conv_only=True),
        )

    @property
    def divisor(self) -> int:
        """Every spatial size of the input must be a multiple of this (``2**len(channels)``)."""
        return 1 << self.depth  # an int also in TorchScript, where ``2**n`` is a float

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"FocusNet expects input of shape (B, {self.in_channels}, {', '.join(['N'] * self.spatial_dims)}), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"FocusNet was built for {self.in_channels} input channels, got {x.shape[1]}")
        spatial = tuple(x.shape[2:])
        if any(n % self.divisor for n in spatial):
            raise ValueError(
                f"FocusNet with {self.depth} levels needs spatial sizes divisible by {self.divisor}, got {spatial}; "
                f"resize or pad the input (e.g. monai.transforms.DivisiblePad(k={self.divisor}))"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, out_channels, *spatial)`` for input ``(B, in_channels, *spatial)``."""
        self._check_input(x)
        depth = self.depth

        # branch 1: attention maps gate_s (scale s = 0..depth-2)
        encoded = []
        a = x
        for block in self.attention_encoder:
            a = block(a)
            encoded.append(a)
        gates: list[torch.Tensor] = [x] * (depth - 1)  # placeholders, all overwritten below
        for s in reversed(range(depth - 1)):
            a = self.attention_decoder[s](torch.cat([self.attention_upsample[s](a), encoded[s]], dim=1))
            gates[s] = torch.sigmoid(a)

        # branch 2 encoder: SE recalibration, gated by branch 1, then strided residual downsampling
        stem = self.stem(x)
        skips = [stem]  # skips[s] lives at scale s
        f = stem
        for s in range(depth):
            f = self.recalibrate[s](self.encoder[s](f))
            if s < depth - 1:
                f = self.recalibrate_gated[s](f * gates[s])
            f = self.downsample[s](f)
            skips.append(f)

        # branch 2 decoder with one side output per scale, fused into the logits
        sides = []
        for s in reversed(range(depth)):
            f = self.decoder[s](torch.cat([self.decoder_upsample[s](f), skips[s]], dim=1))
            side = self.side_outputs[s](f)
            sides.append(torch.sigmoid(side) if self.side_sigmoid else side)
        return self.fusion(torch.cat(sides, dim=1))
