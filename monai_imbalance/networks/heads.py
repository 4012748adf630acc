"""Cosine (normalised-linear) classifier head, and the swap of a network's final linear layer for it.

LDAM-DRW (Cao et al. 2019) classifies with the cosine similarity between the feature vector and one
weight vector per class:

.. math::

    z_{n,c} = s \\, \\frac{\\langle x_n, w_c \\rangle}{\\lVert x_n \\rVert \\, \\lVert w_c \\rVert} \\in [-s, s]

``NormedLinear`` computes it with ``s = scale`` (default 1, logits in ``[-1, 1]``). LDAM multiplies
its logits by its own ``s = 30`` (``LDAMLoss(s=30)``), so keep ``scale=1`` with LDAM/LMF; with a loss
that does not rescale (cross-entropy, focal) logits bounded by 1 cap the softmax confidence, so set
``scale`` to 16-30 there.

Which head to use: the official LMF code trains with the network's plain linear head (and no
deferred re-weighting); LDAM-DRW uses this cosine head. In small CPU trials here, LDAM and LMF on a
plain linear head were unstable and below cross-entropy in macro-F1 on DermaMNIST, and the cosine
head removed the instability (``docs/papers.md#cosine-head`` in the repository). The bundles keep the
official linear head by default and switch with one override (``head: cosine`` in ``get_network``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from monai_imbalance.networks.dropout import DROPOUT_TYPES, INPUT_DROPOUT_NAME, add_dropout

__all__ = ["NormedLinear", "find_final_linear", "replace_with_cosine_head"]


class NormedLinear(nn.Module):
    """Cosine classifier: ``logits = scale * normalize(x) @ normalize(weight).T`` (no bias).

    The math runs in float32 with autocast disabled (the normalisation loses precision in float16)
    and the output is float32.

    Args:
        in_features: feature size ``F``.
        out_features: number of classes ``C``.
        scale: factor ``s`` on the cosine similarities; 1 for LDAM/LMF (they apply their own ``s``).
        eps: lower bound on the norms (a zero feature vector gives zero logits, not NaN).

    Shapes:
        input ``(B, F)``, weight ``(C, F)`` (the ``nn.Linear`` layout), output ``(B, C)`` in ``[-scale, scale]``.

    The weights are initialised as in LDAM-DRW: uniform in ``[-1, 1]``, then every class vector
    scaled to unit norm.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 1.0, eps: float = 1e-12) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not float(scale) > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.in_features = in_features
        self.out_features = out_features
        self.scale = float(scale)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).renorm_(2, 0, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"NormedLinear expects input of shape (B, {self.in_features}), got {list(x.shape)}")
        if torch.jit.is_scripting():  # TorchScript runs without autocast (and needs a constant autocast device)
            return self._cosine(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._cosine(x)

    def _cosine(self, x: torch.Tensor) -> torch.Tensor:
        features = F.normalize(x.float(), dim=1, eps=self.eps)
        weight = F.normalize(self.weight.float(), dim=1, eps=self.eps)
        return self.scale * features @ weight.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}"


def find_final_linear(network: nn.Module) -> str:
    """Name (in ``network.named_modules()``) of the network's final linear classification layer.

    MONAI ``DenseNet``: ``class_layers.out``; MONAI ``ResNet``: ``fc``; MONAI ``EfficientNet``:
    ``_fc``; any other network: its last registered ``nn.Linear``.

    Raises:
        ValueError: the network has no ``nn.Linear`` layer.
    """
    from monai.networks.nets import DenseNet, EfficientNet, ResNet

    known = {DenseNet: "class_layers.out", ResNet: "fc", EfficientNet: "_fc"}
    modules = dict(network.named_modules())
    for cls, name in known.items():
        if isinstance(network, cls) and isinstance(modules.get(name), nn.Linear):
            return name
    linear = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer to replace with a cosine head")
    return linear[-1]


def replace_with_cosine_head(network: nn.Module, layer_name: str | None = None, scale: float = 1.0) -> nn.Module:
    """Replace the final ``nn.Linear`` of ``network`` with a :class:`NormedLinear` of the same size (in place).

    The new head sits on the old layer's device with float32 weights; the old bias is dropped (a
    cosine head has none). Input dropout that :func:`monai_imbalance.networks.add_dropout` attached
    to the old layer is re-attached to the new one at the same rate.

    Args:
        network: the network to change.
        layer_name: name of the ``nn.Linear`` to replace; default :func:`find_final_linear`.
        scale: see :class:`NormedLinear`.

    Returns:
        the same network object.

    Raises:
        TypeError: ``network`` is not an ``nn.Module``.
        ValueError: ``layer_name`` does not name an ``nn.Linear`` of the network.
    """
    if not isinstance(network, nn.Module):
        raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
    name = layer_name if layer_name is not None else find_final_linear(network)
    old = dict(network.named_modules()).get(name)
    if not isinstance(old, nn.Linear):
        found = "nothing" if old is None else type(old).__name__
        raise ValueError(f"{name!r} must name an nn.Linear layer of {type(network).__name__}, found {found}")
    head = NormedLinear(old.in_features, old.out_features, scale=scale).to(device=old.weight.device)
    parent_name, _, child_name = name.rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    setattr(parent, child_name, head)
    input_dropout = getattr(old, INPUT_DROPOUT_NAME, None)
    if isinstance(input_dropout, DROPOUT_TYPES):
        add_dropout(network, p=input_dropout.p, before=name)
    return network
