"""Dropout in MONAI networks: find it, set its rate, add it where a network has none, switch it on for MC dropout.

Monte Carlo (MC) dropout keeps the dropout layers stochastic at inference time while every other
layer (batch norm above all) stays in eval mode, and averages several stochastic passes
(see :class:`monai_imbalance.inferers.MCDropoutInferer`). It needs dropout layers in the network:

- :func:`set_dropout` changes the rate ``p`` of the dropout layers a network already has
  (MONAI ``EfficientNetBN._dropout``, the ``ADN`` dropout of MONAI ``UNet`` -- present even when
  built with ``dropout=0.0`` -- and any ``torch.nn`` dropout layer).
- :func:`add_dropout` sets the rate where dropout layers exist and otherwise adds them:

  ======================================  ===============================================================
  network                                 what is added
  ======================================  ===============================================================
  MONAI ``DenseNet`` (``DenseNet121``...)  one dropout layer at the end of every dense layer, exactly what
                                          ``DenseNet(dropout_prob=p)`` builds (``Dropout2d`` in 2D)
  MONAI ``ResNet``                        ``nn.Dropout(p)`` applied to the input of the final ``fc`` layer
  ``nn.Sequential``                       ``nn.Dropout(p)`` applied to the input of its last ``nn.Linear``
                                          (or, without one, of its last layer that has parameters)
  any module, ``before="name"``           ``nn.Dropout(p)`` applied to the input of submodule ``name``
  ======================================  ===============================================================

  "Applied to the input of" a layer is done without renaming anything: the ``nn.Dropout`` is
  registered as a child ``mc_dropout`` of that layer and called by a forward pre-hook. Dropout
  has no parameters or buffers, so the ``state_dict`` keys are unchanged and checkpoints load
  into the network with or without the added dropout.

  Both functions change the network in place and return it, so that a bundle config can switch
  MC dropout on with one override, e.g.::

      network:
        _target_: monai_imbalance.networks.add_dropout
        network: {_target_: monai.networks.nets.DenseNet121, spatial_dims: 2, in_channels: 1, out_channels: 5}
        p: 0.1

- :func:`mc_dropout_mode` is the context manager that puts only the dropout layers in train mode
  and restores every module's own mode on exit (also after an exception).

Dropout written as a function call inside ``forward`` (``F.dropout(x, training=self.training)``)
is not a module: it cannot be found, set or switched here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

__all__ = [
    "DROPOUT_TYPES",
    "INPUT_DROPOUT_NAME",
    "add_dropout",
    "find_dropout_modules",
    "mc_dropout_mode",
    "set_dropout",
]

#: Module types treated as dropout. ``_DropoutNd`` covers ``Dropout``, ``Dropout1d/2d/3d``,
#: ``AlphaDropout`` and ``FeatureAlphaDropout``; ``AlphaDropout`` is listed for clarity.
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (_DropoutNd, nn.AlphaDropout)

#: Name of the child module that :func:`add_dropout` registers on a layer to drop out its input.
INPUT_DROPOUT_NAME = "mc_dropout"


def _check_network(network: object) -> nn.Module:
    if not isinstance(network, nn.Module):
        raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
    return network


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"dropout rate p must be a number in [0, 1), got {type(p).__name__}")
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout rate p must be in [0, 1), got {p}")
    return float(p)


def find_dropout_modules(network: nn.Module) -> list[nn.Module]:
    """All dropout modules of ``network`` (instances of :data:`DROPOUT_TYPES`), in ``modules()`` order."""
    return [m for m in _check_network(network).modules() if isinstance(m, DROPOUT_TYPES)]


def set_dropout(network: nn.Module, p: float) -> nn.Module:
    """Set the rate ``p`` of every dropout module in ``network`` (in place) and return the network.

    Args:
        network: a network that already has dropout modules.
        p: dropout rate in ``[0, 1)``. ``p=0`` keeps the modules (MC dropout then reproduces the
            deterministic output exactly).

    Raises:
        ValueError: ``p`` is outside ``[0, 1)``, or the network has no dropout module (use
            :func:`add_dropout`).
    """
    p = _check_p(p)
    modules = find_dropout_modules(network)
    if not modules:
        raise ValueError(
            f"{type(network).__name__} has no dropout module to set; add one with "
            "monai_imbalance.networks.add_dropout(network, p) (or build the network with its dropout "
            "argument, e.g. DenseNet121(dropout_prob=p), UNet(dropout=p))"
        )
    for module in modules:
        module.p = p
    return network


def _dropout_input_pre_hook(module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """Forward pre-hook: pass the first positional input of ``module`` through its ``mc_dropout`` child.

    Typed and written so that ``torch.jit.script`` compiles it with the network (the Model Zoo's ``ckpt_export``
    scripts it): the child is called by its name (:data:`INPUT_DROPOUT_NAME`); further inputs pass unchanged."""
    return (module.mc_dropout(args[0]),) + args[1:]  # noqa: RUF005 (TorchScript has no starred tuples)


def _add_input_dropout(layer: nn.Module, p: float) -> None:
    """Drop out the input of ``layer``: a ``nn.Dropout`` child called by a forward pre-hook (state_dict unchanged)."""
    existing = getattr(layer, INPUT_DROPOUT_NAME, None)
    if isinstance(existing, DROPOUT_TYPES):
        existing.p = p
        return
    if existing is not None:
        raise ValueError(f"{type(layer).__name__} already has an attribute {INPUT_DROPOUT_NAME!r} that is not dropout")
    layer.add_module(INPUT_DROPOUT_NAME, nn.Dropout(p))
    layer.register_forward_pre_hook(_dropout_input_pre_hook)


def _last_layer_of_sequential(network: nn.Sequential) -> nn.Module:
    children = list(network.children())
    linear = [m for m in children if isinstance(m, nn.Linear)]
    if linear:
        return linear[-1]
    with_params = [m for m in children if any(True for _ in m.parameters())]
    if with_params:
        return with_params[-1]
    raise ValueError("the nn.Sequential has no layer with parameters before which dropout could be added")


def _densenet_dropout_type(network: nn.Module) -> type[nn.Module]:
    """The dropout type ``DenseNet(dropout_prob=...)`` uses for the network's spatial dimensions."""
    from monai.networks.layers.factories import Dropout

    conv = next((m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if conv is None:
        raise ValueError("could not find a convolution in the DenseNet to infer its spatial dimensions")
    return Dropout[Dropout.DROPOUT, len(conv.kernel_size)]


def _add_densenet_dropout(network: nn.Module, p: float) -> None:
    from monai.networks.nets.densenet import _DenseLayer

    dropout_type = _densenet_dropout_type(network)
    layers = [m for m in network.modules() if isinstance(m, _DenseLayer)]
    if not layers:
        raise ValueError("the DenseNet has no dense layer to add dropout to")
    for layer in layers:
        layer.layers.add_module("dropout", dropout_type(p))


def add_dropout(network: nn.Module, p: float = 0.1, before: str | None = None) -> nn.Module:
    """Give ``network`` dropout at rate ``p`` (in place) and return it.

    Without ``before``: if the network already has dropout modules, their rate is set to ``p``
    (as :func:`set_dropout`); otherwise dropout is added for the architectures in the module
    docstring (MONAI ``DenseNet``: as ``dropout_prob``; MONAI ``ResNet``: before ``fc``;
    ``nn.Sequential``: before its last ``nn.Linear``). Calling it again only changes the rate.

    With ``before="<submodule name>"`` (a name from ``network.named_modules()``, e.g.
    ``"class_layers.out"``), the input of that submodule is dropped out, whatever else the network
    has.

    Args:
        network: the network to change.
        p: dropout rate in ``[0, 1)``; the MC-dropout papers use 0.1.
        before: optional name of the submodule whose input gets dropout.

    Raises:
        ValueError: bad ``p``; ``before`` names no submodule; or the architecture is not known and
            has no dropout (then pass ``before``).
    """
    network = _check_network(network)
    p = _check_p(p)
    if before is not None:
        modules = dict(network.named_modules())
        if before not in modules or before == "":
            raise ValueError(
                f"{type(network).__name__} has no submodule named {before!r}; "
                f"choose one of network.named_modules(), e.g. {list(modules)[-3:]}"
            )
        _add_input_dropout(modules[before], p)
        return network
    if find_dropout_modules(network):
        return set_dropout(network, p)

    from monai.networks.nets import DenseNet, ResNet

    if isinstance(network, DenseNet):
        _add_densenet_dropout(network, p)
    elif isinstance(network, ResNet):
        if network.fc is None:
            raise ValueError("this MONAI ResNet has no fc layer (feed_forward=False); pass before=<layer name>")
        _add_input_dropout(network.fc, p)
    elif isinstance(network, nn.Sequential):
        _add_input_dropout(_last_layer_of_sequential(network), p)
    else:
        raise ValueError(
            f"don't know where to add dropout to a {type(network).__name__}: pass before=<name of the layer whose "
            "input should be dropped out> (a name from network.named_modules(), usually the final linear layer)"
        )
    return network


@contextmanager
def mc_dropout_mode(network: nn.Module) -> Iterator[nn.Module]:
    """Context manager for MC dropout: only dropout modules in train mode, everything else in eval.

    On entry the ``training`` flag of every module is recorded, the whole network is put in eval
    mode (batch norm uses its running statistics) and the dropout modules in train mode. On exit,
    also after an exception, every module gets back its own recorded flag.

    Raises:
        TypeError: ``network`` is not an ``nn.Module``.
        ValueError: the network has no dropout module; the message names :func:`add_dropout`.
    """
    network = _check_network(network)
    dropout = find_dropout_modules(network)
    if not dropout:
        raise ValueError(
            f"MC dropout needs dropout layers, but {type(network).__name__} has none. Add them with "
            "monai_imbalance.networks.add_dropout(network, p=0.1), or build the network with its dropout argument "
            "(e.g. DenseNet121(dropout_prob=0.1), UNet(dropout=0.1))"
        )
    modes = [(m, m.training) for m in network.modules()]
    try:
        network.eval()
        for m in dropout:
            m.train()
        yield network
    finally:
        for m, training in modes:
            m.training = training
