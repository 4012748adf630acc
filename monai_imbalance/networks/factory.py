"""One call that builds the classification networks of the bundles: MONAI DenseNet121, ResNet,
EfficientNetBN or a small CNN, with dropout, a linear or cosine head, and optional pretrained weights.

In a bundle config the network is one entry that a single override switches::

    network_def:
      _target_: monai_imbalance.networks.get_network
      name: "@network_name"          # densenet121 | resnet18 | resnet34 | resnet50 | efficientnet-b0 ... | small_cnn
      spatial_dims: 2
      in_channels: 3
      out_channels: "@num_classes"
      dropout_prob: 0.1
      head: linear                   # cosine for LDAM/LMF (see monai_imbalance.networks.heads)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import DenseNet121, EfficientNetBN, resnet18, resnet34, resnet50
from monai.networks.nets.efficientnet import url_map as _efficientnet_urls
from torch import nn

from monai_imbalance.errors import check_choice
from monai_imbalance.networks.dropout import add_dropout, find_dropout_modules
from monai_imbalance.networks.heads import replace_with_cosine_head
from monai_imbalance.networks.small_cnn import SmallCNN
from monai_imbalance.switches import as_bool

__all__ = ["NETWORK_NAMES", "PretrainedWeightsUnavailableError", "get_network"]

_RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
_EFFICIENTNETS = tuple(f"efficientnet-b{i}" for i in range(8))

#: names accepted by :func:`get_network` (``_`` may replace ``-``; case is ignored)
NETWORK_NAMES: tuple[str, ...] = ("densenet121", *_RESNETS, *_EFFICIENTNETS, "small_cnn")

#: where MONAI (through ``torch.hub``) downloads ImageNet weights from, for ``pretrained=True``
_PRETRAINED_URLS: dict[str, str] = {
    "densenet121": "https://download.pytorch.org/models/densenet121-a639ec97.pth",
    **{name: _efficientnet_urls[name] for name in _EFFICIENTNETS},
}


class PretrainedWeightsUnavailableError(RuntimeError):
    """``pretrained=True`` asked for weights that are neither in the torch hub cache nor downloadable."""


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"network name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = "small_cnn" if key == "small-cnn" else key
    check_choice(key, NETWORK_NAMES, "network")
    return key


def _hub_checkpoint(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _check_pretrained_available(name: str, spatial_dims: int, in_channels: int) -> None:
    """Refuse ``pretrained=True`` where no weights exist; warn where part of them cannot be used."""
    if name not in _PRETRAINED_URLS:
        reason = (
            "MONAI's ResNet weights are MedicalNet 3D feature extractors (no classification head, no 2D)"
            if name in _RESNETS
            else "no pretrained weights exist for this network"
        )
        raise ValueError(
            f"pretrained=True is not available for {name}: {reason}. Pass pretrained='/path/to/state_dict.pt' "
            f"to load your own weights, or use one of {', '.join(_PRETRAINED_URLS)}"
        )
    if spatial_dims != 2:
        raise ValueError(f"pretrained=True: the ImageNet weights of {name} are 2D; got spatial_dims={spatial_dims}")
    if in_channels != 3:
        warnings.warn(
            f"ImageNet weights for {name} have 3 input channels; with in_channels={in_channels} the first "
            "convolution keeps its random initialisation (repeat grey images to 3 channels to use it)",
            stacklevel=3,
        )


def _build(name: str, spatial_dims: int, in_channels: int, out_channels: int, download: bool, **kwargs: Any):
    if name == "densenet121":
        return DenseNet121(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            pretrained=download,
            **kwargs,
        )
    if name in _RESNETS:
        return _RESNETS[name](
            pretrained=False,
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            num_classes=out_channels,
            **kwargs,
        )
    if name in _EFFICIENTNETS:
        return EfficientNetBN(
            name,
            pretrained=download,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            num_classes=out_channels,
            **kwargs,
        )
    return SmallCNN(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)


def _build_with_download(name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any):
    """Build with MONAI's own ImageNet loader: the torch hub cache if the file is there, else a download."""
    url = _PRETRAINED_URLS[name]
    cached = _hub_checkpoint(url)
    try:
        return _build(name, spatial_dims, in_channels, out_channels, download=True, **kwargs)
    except (OSError, RuntimeError) as e:  # URLError, HTTPError, socket errors are OSErrors; hash/zip errors Runtime
        raise PretrainedWeightsUnavailableError(
            f"could not obtain the ImageNet weights of {name}: {type(e).__name__}: {e}. They are read from the "
            f"torch hub cache ({cached}) or downloaded from {url}. Offline, download that file on a connected "
            f"machine and copy it to {cached} (or set TORCH_HOME), or pass pretrained='/path/to/weights.pth'"
        ) from e


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"could not read pretrained weights from {path}: {type(e).__name__}: {e}") from e
    if isinstance(content, nn.Module):
        content = content.state_dict()
    if isinstance(content, dict) and not any(isinstance(v, torch.Tensor) for v in content.values()):
        # a checkpoint holding several objects, e.g. MONAI CheckpointSaver's {"network": ..., "optimizer": ...}
        for key in ("network", "model", "state_dict", "net"):
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not any(isinstance(v, torch.Tensor) for v in content.values()):
        raise ValueError(
            f"{path} holds no state dict (expected a dict of tensors, or a checkpoint with a 'network'/'model' entry)"
        )
    return {k.removeprefix("module."): v for k, v in content.items() if isinstance(v, torch.Tensor)}


def _load_weights_file(network: nn.Module, path: Path) -> None:
    """Copy the tensors of ``path`` whose names and shapes match ``network``; warn about the rest."""
    state = _read_state_dict(path)
    own = network.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(
            f"no tensor in {path} matches the network by name and shape (file has e.g. {list(state)[:3]}, "
            f"network expects e.g. {list(own)[:3]}); is it a state dict of this architecture?"
        )
    skipped = sorted(set(state) - set(matched))
    missing = sorted(set(own) - set(matched))
    if skipped or missing:
        warnings.warn(
            f"loaded {len(matched)} tensors from {path}; kept the initialisation of {len(missing)} "
            f"(e.g. {missing[:3]}) and ignored {len(skipped)} from the file (e.g. {skipped[:3]}), "
            "usually the classification layer when the number of classes differs",
            stacklevel=3,
        )
    network.load_state_dict(matched, strict=False)


def get_network(
    name: str = "densenet121",
    spatial_dims: int = 2,
    in_channels: int = 3,
    out_channels: int = 2,
    dropout_prob: float | None = None,
    head: str = "linear",
    pretrained: bool | str | os.PathLike = False,
    head_scale: float = 1.0,
    **kwargs: Any,
) -> nn.Module:
    """Build a classification network that maps ``(B, in_channels, *spatial)`` to logits ``(B, out_channels)``.

    Networks (``name``):

    - ``"densenet121"``: MONAI ``DenseNet121`` (default; the LMF and repeatability papers' network).
    - ``"resnet18"``, ``"resnet34"``, ``"resnet50"``: MONAI ``ResNet`` with MONAI's defaults
      (stem stride 1; pass ``conv1_t_stride=2`` for the ImageNet-style stem).
    - ``"efficientnet-b0"`` ... ``"efficientnet-b7"``: MONAI ``EfficientNetBN``.
    - ``"small_cnn"``: :class:`~monai_imbalance.networks.small_cnn.SmallCNN`, for quick CPU runs.

    Args:
        name: one of :data:`NETWORK_NAMES`.
        spatial_dims: 2 for images, 3 for volumes.
        in_channels: image channels.
        out_channels: number of classes.
        dropout_prob: dropout rate for Monte Carlo dropout, through
            :func:`monai_imbalance.networks.add_dropout`: DenseNet gets dropout after every dense layer
            (as ``DenseNet121(dropout_prob=p)``), ResNet and the small CNN before the final linear
            layer, EfficientNet's own dropout before ``_fc`` is set to ``p``. ``None`` keeps the
            architecture's own dropout (EfficientNet: 0.2 to 0.5 by size; the others: none); ``0``
            removes its effect.
        head: ``"linear"`` (the network's own final layer; the official LMF setting) or ``"cosine"``
            (:class:`~monai_imbalance.networks.heads.NormedLinear`, LDAM-DRW's normalised head,
            logits in ``[-head_scale, head_scale]``).
        pretrained: ``False``; ``True`` for ImageNet weights (``densenet121`` and ``efficientnet-b*``,
            2D only) read from the torch hub cache or downloaded by MONAI -- raises
            :class:`PretrainedWeightsUnavailableError` when neither works (e.g. offline) and
            ``ValueError`` where no such weights exist (ResNet, small CNN, 3D); or a path to a state
            dict / checkpoint file, whose tensors are copied where names and shapes match (a
            warning lists what was not).
        head_scale: ``scale`` of the cosine head; keep 1 with LDAM/LMF (they multiply by ``s=30``).
        kwargs: further arguments of the MONAI constructor (e.g. ``growth_rate``, ``conv1_t_stride``,
            ``adv_prop``) or of ``SmallCNN`` (``channels``).

    Raises:
        ValueError: unknown ``name`` or ``head``, bad sizes or dropout rate, unavailable pretrained weights.
        TypeError: an argument the chosen constructor does not take.
    """
    key = _canonical_name(name)
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if head not in ("linear", "cosine"):
        raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
    if dropout_prob is not None and (
        isinstance(dropout_prob, bool) or not isinstance(dropout_prob, (int, float)) or not 0 <= dropout_prob < 1
    ):
        raise ValueError(f"dropout_prob must be None or a number in [0, 1), got {dropout_prob!r}")
    for reserved in ("pretrained", "dropout_prob", "num_classes", "n_input_channels", "model_name"):
        if reserved in kwargs:
            raise TypeError(f"{reserved!r} is set by get_network; pass name/in_channels/out_channels/dropout_prob")

    weights_file: Path | None = None
    if isinstance(pretrained, str) and pretrained.strip().lower() in ("true", "false"):
        pretrained = as_bool(pretrained)  # a command-line switch, not a file name
    if isinstance(pretrained, (str, os.PathLike)):
        weights_file = Path(pretrained).expanduser()
        if not weights_file.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {weights_file}")
        network = _build(key, spatial_dims, in_channels, out_channels, download=False, **kwargs)
    elif pretrained is True:
        _check_pretrained_available(key, spatial_dims, in_channels)
        network = _build_with_download(key, spatial_dims, in_channels, out_channels, **kwargs)
    elif pretrained is False or pretrained is None:
        network = _build(key, spatial_dims, in_channels, out_channels, download=False, **kwargs)
    else:
        raise TypeError(f"pretrained must be a bool or a path, got {type(pretrained).__name__}")

    if head == "cosine":
        replace_with_cosine_head(network, scale=head_scale)
    if weights_file is not None:  # after the head swap, so that a checkpoint of a cosine-head network loads fully
        _load_weights_file(network, weights_file)
    # the single place where dropout is set: add_dropout sets the rate of existing dropout layers and
    # otherwise adds them (after the head swap, so that ResNet's input dropout sits on the final head)
    if dropout_prob is not None and (dropout_prob > 0 or find_dropout_modules(network)):
        add_dropout(network, p=float(dropout_prob))
    return network
