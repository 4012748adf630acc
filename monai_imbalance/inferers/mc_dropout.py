"""Monte Carlo dropout around any MONAI inferer.

For an input batch ``x`` and a network ``f`` with dropout, MC dropout (Gal & Ghahramani 2016)
runs ``S`` stochastic passes with only the dropout layers in train mode (batch norm and all else
in eval) and averages the *activated* outputs:

.. math::

    p_s = \\sigma(f_s(x)), \\qquad \\bar p = \\frac{1}{S} \\sum_{s=1}^{S} p_s

where :math:`\\sigma` is softmax over the channel dimension, sigmoid, or the identity. The
uncertainty of the same run comes for free:

- ``variance``: :math:`\\frac{1}{S}\\sum_s (p_s - \\bar p)^2` per element (population variance);
- ``entropy`` (predictive entropy): softmax :math:`H[\\bar p] = -\\sum_c \\bar p_c \\log \\bar p_c`
  over channels; sigmoid: the binary entropy of every channel;
- ``mutual_information`` (BALD): :math:`H[\\bar p] - \\frac{1}{S}\\sum_s H[p_s] \\ge 0`, the part
  of the predictive entropy that comes from disagreement between the passes.

Prefix reuse (:mod:`monai_imbalance.inferers.prefix_reuse`): what runs before the first dropout is
deterministic, so it is computed once per input sample and only the rest of the network is repeated;
with the same seed the results equal those of full passes (up to floating-point rounding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer
from monai.utils import convert_to_dst_type, optional_import
from torch import nn

from monai_imbalance.inferers.prefix_reuse import DEFAULT_CACHE_LIMIT_BYTES, PrefixReuse, split_at_first_dropout
from monai_imbalance.metrics.uncertainty import entropy
from monai_imbalance.networks.dropout import mc_dropout_mode
from monai_imbalance.transforms.temperature import check_temperature
from monai_imbalance.workflow.switches import as_bool

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["MCDropoutInferer"]

_ACTIVATIONS = ("softmax", "sigmoid")

logger = logging.getLogger(__name__)


class MCDropoutInferer(Inferer):
    """Average ``num_samples`` stochastic dropout passes of any MONAI inferer; keep their uncertainty.

    Usable wherever MONAI takes an inferer, e.g. ``SupervisedEvaluator(inferer=MCDropoutInferer())``.
    A call returns the mean activated output :math:`\\bar p` of shape ``(B, C, ...)`` (float32), the
    prediction ``SupervisedEvaluator`` expects. Because it is already a probability, the
    evaluator's post-transforms must **not** apply softmax/sigmoid again (drop ``Activationsd``,
    keep ``AsDiscreted(argmax=True)`` / thresholding). With ``activation=None`` the raw outputs
    are averaged instead and post-transforms stay as they were.

    The whole result of the last call is in :attr:`last_output` (a dict, detached):
    ``"mean"`` ``(B, C, ...)``, ``"variance"`` ``(B, C, ...)``, ``"entropy"`` and
    ``"mutual_information"`` (``(B, 1, ...)`` for softmax, ``(B, C, ...)`` for sigmoid, ``None``
    without activation) and ``"samples"`` ``(S, B, C, ...)`` when ``keep_samples=True`` (else
    ``None``). :meth:`predict` returns the same dict directly.

    Only dropout modules (``torch.nn.modules.dropout._DropoutNd``, ``AlphaDropout``) are put in
    train mode; batch norm and everything else stay in eval. Every module's mode is restored
    afterwards, also when the forward pass raises. A network without dropout raises a
    ``ValueError`` that names :func:`monai_imbalance.networks.add_dropout`.

    Args:
        num_samples: number of stochastic passes ``S`` (the MC-dropout papers use 50; little
            changes beyond about 20).
        inferer: the MONAI inferer that runs one pass, default ``SimpleInferer()``; e.g.
            ``SlidingWindowInferer(roi_size=...)`` for segmentation.
        activation: ``"softmax"`` (over dim 1), ``"sigmoid"`` or ``None``, applied to every pass
            before averaging (in float32, also under autocast).
        mc_batch_size: stochastic passes run together in one forward by repeating the batch
            ``mc_batch_size`` times along dim 0 (dropout masks are drawn per element, so the
            copies are independent passes). Keeps a GPU busy; it bounds memory at
            ``mc_batch_size`` times one pass. ``None`` or 1: one pass per forward. With prefix
            reuse only the repeated part (after the first dropout) runs on the larger batch.
            Extra ``args``/``kwargs`` for the network are passed unchanged, so they must not
            depend on the batch size when ``mc_batch_size > 1``.
        seed: if given, every call re-seeds the random generators of the input's device (inside
            ``torch.random.fork_rng``, the global generator state is left as it was), so the same
            input gives the same output whatever ran before. Sequential and batched runs draw
            different masks, so their outputs differ (within MC error).
        keep_samples: keep all activated passes in ``last_output["samples"]`` (memory ``S`` times
            the output).
        reuse_prefix: run the part of the network before its first dropout once per input sample
            and repeat only the rest (:mod:`~monai_imbalance.inferers.prefix_reuse`). Exact: with the
            same seed, every output equals that of full passes up to floating-point rounding; networks
            that cannot be split exactly run full passes (a ``logging`` debug message says why). The
            network's ``forward`` is replaced by its ``torch.fx`` graph during the passes, so turn this
            off if Python side effects in ``forward`` matter. Memory: the distinct input samples (or
            sliding windows) of a call and their prefix outputs, at most :attr:`prefix_cache_limit_bytes`.
        progress: show a ``tqdm`` progress bar over the passes of every call.
        temperature: divide the raw output of every pass by ``T`` before the activation (temperature scaling,
            :mod:`monai_imbalance.transforms.temperature`); 1.0 leaves it as it is. The mean, variance and
            uncertainties are then those of the calibrated passes.

    Example::

        from monai.engines import SupervisedEvaluator
        from monai_imbalance.inferers import MCDropoutInferer
        from monai_imbalance.networks import add_dropout

        net = add_dropout(DenseNet121(spatial_dims=2, in_channels=1, out_channels=5), p=0.1)
        inferer = MCDropoutInferer(num_samples=50, activation="softmax", mc_batch_size=10, seed=0, progress=True)
        evaluator = SupervisedEvaluator(device, val_loader, net, inferer=inferer)
        evaluator.run()
        inferer.last_output["mutual_information"]  # uncertainty of the last batch
    """

    def __init__(
        self,
        num_samples: int = 50,
        inferer: Inferer | Callable[..., torch.Tensor] | None = None,
        activation: str | None = "softmax",
        mc_batch_size: int | None = None,
        seed: int | None = None,
        keep_samples: bool = False,
        reuse_prefix: bool = True,
        progress: bool = False,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if inferer is not None and not callable(inferer):
            raise TypeError(f"inferer must be a MONAI Inferer (callable), got {type(inferer).__name__}")
        if activation is not None:
            if not isinstance(activation, str) or activation.lower() not in _ACTIVATIONS:
                raise ValueError(f"activation must be 'softmax', 'sigmoid' or None, got {activation!r}")
            activation = activation.lower()
        if mc_batch_size is not None and (
            isinstance(mc_batch_size, bool) or not isinstance(mc_batch_size, int) or mc_batch_size < 1
        ):
            raise ValueError(f"mc_batch_size must be a positive integer or None, got {mc_batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.num_samples = num_samples
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.activation = activation
        self.mc_batch_size = min(mc_batch_size or 1, num_samples)
        self.seed = seed
        self.keep_samples = bool(keep_samples)
        self.reuse_prefix = as_bool(reuse_prefix)  # a bundle's "--progress_bar false" arrives as a string
        progress = as_bool(progress)
        if progress and not has_tqdm:
            raise ImportError("progress=True needs tqdm: pip install tqdm (or pass progress=False)")
        self.progress = progress
        self.temperature = check_temperature(temperature)
        #: bound on the memory of remembered prefix outputs and their inputs in one call
        self.prefix_cache_limit_bytes = DEFAULT_CACHE_LIMIT_BYTES
        self.last_output: dict[str, torch.Tensor | None] | None = None

    def _activate(self, outputs: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        if self.temperature != 1.0:
            outputs = outputs / self.temperature
        if self.activation == "softmax":
            return torch.softmax(outputs, dim=1)
        if self.activation == "sigmoid":
            return torch.sigmoid(outputs)
        return outputs

    def _runner(self, network: nn.Module, has_extra_arguments: bool) -> nn.Module | PrefixReuse:
        """What the inner inferer calls: the network, or :class:`PrefixReuse` where the network splits exactly."""
        if not self.reuse_prefix:
            return network
        if has_extra_arguments:
            logger.debug("MC dropout: full passes, the network gets extra arguments that prefix reuse cannot batch")
            return network
        split = split_at_first_dropout(network)
        if isinstance(split, str):
            logger.debug("MC dropout: %s runs full passes: %s", type(network).__name__, split)
            return network
        runner = PrefixReuse(network, split, limit_bytes=self.prefix_cache_limit_bytes)
        return runner if runner.active else network

    def _passes(
        self, inputs: torch.Tensor, network: nn.Module | PrefixReuse, *args: Any, **kwargs: Any
    ) -> Iterator[torch.Tensor]:
        """Yield activated stochastic passes, each ``(B, C, ...)`` float32, ``mc_batch_size`` per forward."""
        done = 0
        batch = inputs.shape[0]
        while done < self.num_samples:
            m = min(self.mc_batch_size, self.num_samples - done)
            if m > 1 and isinstance(network, PrefixReuse) and type(self.inferer) is SimpleInferer:
                out = network(inputs, copies=m)  # repeats the prefix's outputs, not the input
            else:
                if m == 1:
                    x = inputs
                else:
                    x = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
                    x = x.repeat(m, *([1] * (x.ndim - 1)))
                out = self.inferer(x, network, *args, **kwargs)
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"MCDropoutInferer needs a tensor output from the network/inferer, got {type(out).__name__} "
                    "(networks with several outputs, e.g. deep supervision, need a wrapper that returns one tensor)"
                )
            if isinstance(out, MetaTensor):
                out = out.as_tensor()
            if out.shape[0] != m * batch:
                raise ValueError(f"network output has batch size {out.shape[0]}, expected {m * batch}")
            probs = self._activate(out)
            yield from probs.reshape(m, batch, *probs.shape[1:]).unbind(0)
            done += m

    def predict(
        self,
        inputs: torch.Tensor,
        network: nn.Module,
        *args: Any,
        return_samples: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor | None]:
        """Run the MC passes and return ``mean``, ``variance``, ``entropy``, ``mutual_information``, ``samples``.

        Shapes are given in the class docstring. ``return_samples`` overrides ``keep_samples`` for
        this call. The result is also stored (detached) in :attr:`last_output`.

        The running means (of the outputs and of their entropies) and the variance use Welford's
        update, so identical passes (dropout rate 0) give exactly the deterministic activated
        output, zero variance and zero mutual information.
        """
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        keep = self.keep_samples if return_samples is None else bool(return_samples)
        device = inputs.device
        bar = tqdm(total=self.num_samples, desc="MC dropout", unit="pass", leave=False) if self.progress else None
        try:
            with mc_dropout_mode(network), self._seeded(device):
                runner = self._runner(network, bool(args or kwargs))
                mean: torch.Tensor | None = None
                m2: torch.Tensor | None = None
                mean_entropy: torch.Tensor | None = None
                samples: list[torch.Tensor] = []
                for count, probs in enumerate(self._passes(inputs, runner, *args, **kwargs), start=1):
                    if bar is not None:
                        bar.update(1)
                    if mean is None:
                        mean, m2 = probs.clone(), torch.zeros_like(probs)
                    else:
                        delta = probs - mean
                        mean = mean + delta / count
                        m2 = m2 + delta * (probs - mean)
                    if self.activation is not None:
                        h = entropy(probs, activation=self.activation)
                        mean_entropy = h if mean_entropy is None else mean_entropy + (h - mean_entropy) / count
                    if keep:
                        samples.append(probs)
        finally:
            if bar is not None:
                bar.close()
        assert mean is not None and m2 is not None  # num_samples >= 1
        result: dict[str, torch.Tensor | None] = {
            "mean": mean,
            "variance": m2 / self.num_samples,
            "entropy": None,
            "mutual_information": None,
            "samples": torch.stack(samples) if keep else None,
        }
        if self.activation is not None and mean_entropy is not None:
            predictive = entropy(mean, activation=self.activation)
            result["entropy"] = predictive
            result["mutual_information"] = (predictive - mean_entropy).clamp_min(0.0)
        if isinstance(inputs, MetaTensor):
            result["mean"] = convert_to_dst_type(mean, inputs, dtype=mean.dtype, device=device)[0]
        self.last_output = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}
        return result

    @contextmanager
    def _seeded(self, device: torch.device) -> Iterator[None]:
        """Seed the generators of CPU and ``device`` inside ``fork_rng`` when ``seed`` is set; else do nothing."""
        if self.seed is None:
            yield
            return
        devices = [] if device.type == "cpu" else [device]
        with torch.random.fork_rng(devices=devices, device_type=device.type if devices else None):
            torch.manual_seed(self.seed)
            yield

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Mean activated output over ``num_samples`` MC-dropout passes, ``(B, C, ...)``; see :attr:`last_output`."""
        return self.predict(inputs, network, *args, **kwargs)["mean"]  # type: ignore[return-value]
