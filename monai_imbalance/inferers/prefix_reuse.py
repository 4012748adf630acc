"""Prefix reuse for MC dropout: run once what no dropout influences, repeat only the rest.

In MC mode only the dropout modules are random. Split a network ``f`` at the first dropout call in
execution order, ``f = g \\circ h``: the prefix ``h`` (everything computed before that call) is then a
deterministic function of the input, and the ``S`` stochastic passes are

.. math::

    f_s(x) = g_s(h(x)), \\qquad s = 1, \\dots, S,

so ``h(x)`` is computed once per input sample and only ``g_s`` is repeated. The dropout masks are
drawn in the same order and with the same shapes as in full passes (the prefix draws nothing), so with
the same seed the passes equal the full passes up to floating-point rounding. For a network whose
dropout sits before the final linear layer (MONAI ResNet, EfficientNet, the package's small CNN with
``dropout_prob``) ``g`` is that layer alone and ``S`` passes cost little more than one.

How:

- :func:`split_at_first_dropout` traces the network with ``torch.fx`` (dropout modules and modules with
  forward hooks -- e.g. the input dropout of :func:`monai_imbalance.networks.add_dropout` -- stay
  whole) and cuts the graph before the first node that is random: a module containing dropout, or a
  random function such as ``torch.rand_like`` or ``F.dropout``. The prefix returns the values the
  suffix needs (``(N, ...)`` tensors); the suffix takes them as arguments.
- :class:`PrefixReuse` stands in for the network inside any MONAI inferer (``SimpleInferer``,
  ``SlidingWindowInferer``...): it remembers the prefix output of every input *sample* by its content
  (a fingerprint of up to 2048 evenly spaced elements, confirmed by exact comparison), so the repeated
  copies of a batch (``mc_batch_size``) and the same sliding windows in later passes reuse it. With
  ``SimpleInferer`` the ``mc_batch_size`` copies are made of the prefix outputs instead of the input.
  Before its first use it checks the split on one or two samples: the traced graph gives the
  network's own output under the same random state, the prefix draws no random numbers and treats
  every sample on its own.

Networks that cannot be split exactly fall back to full passes with a ``logging`` debug message that
says why: tracing fails (data-dependent control flow), the prefix is empty (dropout on the input),
batch norm uses batch statistics in the prefix, the network has forward hooks of its own, takes extra
arguments, or one of the checks above fails.

Caveat: the traced graph replaces the network's ``forward``, so Python side effects inside it (appending
to a list, storing an attribute) do not happen during the passes; switch reuse off
(``MCDropoutInferer(reuse_prefix=False)``) when they matter.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from monai_imbalance.networks.dropout import DROPOUT_TYPES

__all__ = ["PrefixReuse", "PrefixSplit", "split_at_first_dropout"]

logger = logging.getLogger(__name__)

#: functions whose traced call draws random numbers (the graph is cut before the first of them)
_RANDOM_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    {
        torch.rand,
        torch.rand_like,
        torch.randn,
        torch.randn_like,
        torch.randint,
        torch.randint_like,
        torch.randperm,
        torch.bernoulli,
        torch.multinomial,
        torch.normal,
        torch.poisson,
        torch.dropout,
        torch.alpha_dropout,
        torch.feature_alpha_dropout,
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.dropout3d,
        F.alpha_dropout,
        F.feature_alpha_dropout,
        F.rrelu,
        F.gumbel_softmax,
    }
)
#: tensor methods that draw random numbers
_RANDOM_METHODS = frozenset(
    {"bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_", "cauchy_", "log_normal_"}
    | {"geometric_", "multinomial"}
)

#: elements of a sample that enter its fingerprint
_FINGERPRINT_SIZE = 2048

#: default bound on the memory of remembered prefix outputs (and their inputs) in one ``predict`` call
DEFAULT_CACHE_LIMIT_BYTES = 1 << 30


class _NotExact(Exception):
    """The split cannot reproduce the full network exactly (the message says why)."""


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


class _DropoutLeafTracer(fx.Tracer):
    """``torch.fx`` tracer that keeps dropout modules, hooked modules and script modules whole (as calls).

    A module with forward hooks must stay one call: tracing through it would drop its hooks (the input
    dropout of ``add_dropout`` is such a hook).
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, DROPOUT_TYPES) or _has_hooks(m) or isinstance(m, torch.jit.ScriptModule):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _is_random(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return any(isinstance(m, DROPOUT_TYPES) for m in modules[node.target].modules())
    if node.op == "call_function":
        return node.target in _RANDOM_FUNCTIONS
    if node.op == "call_method":
        return node.target in _RANDOM_METHODS
    return False


def _uses_batch_statistics(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) and (m.training or m.running_mean is None) for m in module.modules())


@dataclass
class PrefixSplit:
    """A network cut before its first random node: ``network(x) == suffix(*prefix(x))`` in MC mode.

    Attributes:
        prefix: graph module ``x -> tuple`` of the ``(N, ...)`` values the suffix needs.
        suffix: graph module ``(*values) -> output``; it holds every random node.
        cut_before: name of the first random node (e.g. ``"fc"``, ``"features_denseblock1_..._dropout"``).
        prefix_nodes: number of operations in the prefix (what is reused).
        checked: ``None`` until :class:`PrefixReuse` has checked the split on a sample, then ``True``
            or the reason it failed.
    """

    prefix: fx.GraphModule
    suffix: fx.GraphModule
    cut_before: str
    prefix_nodes: int
    checked: bool | str | None = field(default=None)


def _signature(network: nn.Module) -> tuple:
    """What a traced split depends on: module identities, modes and hooks, parameter and buffer identities."""
    modules = tuple(
        (name, id(m), m.training, tuple(m._forward_pre_hooks), tuple(m._forward_hooks))
        for name, m in network.named_modules()
    )
    tensors = tuple(id(t) for t in network.parameters()) + tuple(id(t) for t in network.buffers())
    return modules, tensors


_SPLITS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, PrefixSplit | str]] = weakref.WeakKeyDictionary()


def split_at_first_dropout(network: nn.Module) -> PrefixSplit | str:
    """Split ``network`` (in MC mode: dropout modules in train mode) before its first random operation.

    The split is cached per network and traced again when its modules, modes, hooks or parameters change.

    Returns:
        the :class:`PrefixSplit`, or a sentence saying why the network cannot be split exactly.
    """
    signature = _signature(network)
    cached = _SPLITS.get(network)
    if cached is not None and cached[0] == signature:
        return cached[1]
    result = _split(network)
    _SPLITS[network] = (signature, result)
    return result


def _split(network: nn.Module) -> PrefixSplit | str:
    if _has_hooks(network):
        return "the network itself has forward hooks, which a traced graph would not run"
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:  # tracing runs forward; a random call without tensor arguments would draw numbers: keep the state as it was
        with torch.random.fork_rng(devices=cuda_devices):
            graph = _DropoutLeafTracer().trace(network)
    except Exception as e:  # TraceError, TypeError...: data-dependent control flow and the like
        return f"torch.fx cannot trace it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    modules = dict(network.named_modules())
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return f"its forward takes {len(placeholders)} arguments (prefix reuse supports one input tensor)"
    first = next((i for i, n in enumerate(nodes) if _is_random(n, modules)), None)
    if first is None:
        return "no dropout module or random operation is called in its traced graph"
    before, after = nodes[:first], nodes[first:]
    work = [n for n in before if n.op in ("call_module", "call_function", "call_method")]
    if not work:
        return f"its first random operation ({nodes[first].name}) acts on the input: there is nothing to reuse"
    for n in work:
        if n.op == "call_module" and _uses_batch_statistics(modules[n.target]):
            return f"batch norm uses batch statistics before the first dropout ({n.target})"
    after_set = set(after)
    live = [n for n in before if n.op != "get_attr" and any(u in after_set for u in n.users)]

    prefix_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in before:
        env[n] = prefix_graph.node_copy(n, lambda a: env[a])
    prefix_graph.output(tuple(env[n] for n in live))

    suffix_graph = fx.Graph()
    env = {n: suffix_graph.placeholder(n.name) for n in live}
    for n in before:  # parameters and constants the suffix reads are fetched there, not passed along
        if n.op == "get_attr" and any(u in after_set for u in n.users):
            env[n] = suffix_graph.node_copy(n)
    for n in after:
        env[n] = suffix_graph.node_copy(n, lambda a: env[a])
    return PrefixSplit(
        prefix=fx.GraphModule(network, prefix_graph),
        suffix=fx.GraphModule(network, suffix_graph),
        cut_before=nodes[first].name,
        prefix_nodes=len(work),
    )


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _rng_states(device: torch.device) -> list[tuple[Callable[[torch.Tensor], None], torch.Tensor]]:
    """(setter, state) of the CPU generator and of ``device``'s default generator."""
    states = [(torch.set_rng_state, torch.get_rng_state())]
    if device.type == "cuda":
        states.append((lambda s, d=device: torch.cuda.set_rng_state(s, d), torch.cuda.get_rng_state(device)))
    elif device.type != "cpu" and hasattr(getattr(torch, device.type, None), "get_rng_state"):  # mps, xpu...
        backend = getattr(torch, device.type)
        states.append((backend.set_rng_state, backend.get_rng_state()))
    return states


def _restore(states: list[tuple[Callable[[torch.Tensor], None], torch.Tensor]]) -> None:
    for setter, state in states:
        setter(state)


def _same_rng(a: list[tuple[Any, torch.Tensor]], b: list[tuple[Any, torch.Tensor]]) -> bool:
    return all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5, equal_nan=True)


def _batch_first(values: tuple[Any, ...], n: int) -> tuple[torch.Tensor, ...]:
    if not all(isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n for v in values):
        kinds = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values]
        raise _NotExact(f"the values passed across the cut are not all (N, ...) tensors for N={n}: {kinds}")
    return tuple(_plain(v) for v in values)


class PrefixReuse:
    """Callable that stands in for ``network`` in an inferer: ``suffix(prefix(x))``, prefix remembered per sample.

    One instance serves one ``MCDropoutInferer.predict`` call (its memory is freed with it). A sample's
    prefix output is looked up by a fingerprint of the sample (a fixed random projection) and used only
    when the stored sample equals the new one exactly; new samples are computed together, each distinct
    sample once. Memory: the distinct input samples and their prefix outputs, up to ``limit_bytes``
    (beyond it new samples are computed but not stored; the result stays exact).

    Args:
        network: the network, in MC mode.
        split: its :class:`PrefixSplit`.
        limit_bytes: bound on the remembered inputs and prefix outputs.
    """

    def __init__(self, network: nn.Module, split: PrefixSplit, limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES) -> None:
        self.network = network
        self.split = split
        self.limit_bytes = limit_bytes
        self.stored_bytes = 0
        self.prefix_samples = 0  #: samples the prefix has run on (reused: fewer than the passes times the batch)
        self._rows: dict[float, list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]] = {}
        self._projection: tuple[tuple[int, torch.device], torch.Tensor, torch.Tensor] | None = None

    @property
    def active(self) -> bool:
        """Whether the split passed its check (before the first call: whether it is still to be checked)."""
        return self.split.checked in (None, True)

    def __call__(self, x: torch.Tensor, copies: int = 1) -> torch.Tensor:
        """``network(x)``; ``copies > 1``: ``network(x.repeat(copies, ...))`` with the prefix run on ``x`` alone."""
        if self.split.checked is None and x.ndim > 0 and x.shape[0] > 0:
            self._check(x)
        if self.split.checked is True and x.ndim > 0 and x.shape[0] > 0:
            try:
                values = self._prefix_outputs(_plain(x))
                if copies > 1:
                    values = tuple(v.repeat(copies, *([1] * (v.ndim - 1))) for v in values)
                return self.split.suffix(*values)
            except _NotExact as e:  # the prefix drew nothing, so a full pass from here on stays exact
                self.split.checked = str(e)
                logger.debug("MC dropout: %s runs full passes: %s", type(self.network).__name__, e)
        if copies > 1:
            x = _plain(x)
            x = x.repeat(copies, *([1] * (x.ndim - 1)))
        return self.network(x)

    def _check(self, x: torch.Tensor) -> None:
        """Compare the split with the network on one or two samples under the same random state; keep the verdict."""
        sample = _plain(x)[:2]
        before = _rng_states(sample.device)
        try:
            with torch.no_grad():
                expected = self.network(sample)
                _restore(before)
                values = self.split.prefix(sample)
                if not _same_rng(before, _rng_states(sample.device)):
                    raise _NotExact("the part before the first dropout draws random numbers")
                values = _batch_first(values, sample.shape[0])
                got = self.split.suffix(*values)
                if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)):
                    raise _NotExact(f"the network returns a {type(expected).__name__}, not a tensor")
                if not _close(_plain(expected), _plain(got)):
                    raise _NotExact("the traced graph does not reproduce the network's output")
                if sample.shape[0] > 1:
                    alone = _batch_first(self.split.prefix(sample[:1]), 1)
                    if not all(_close(a, v[:1]) for a, v in zip(alone, values, strict=True)):
                        raise _NotExact("the part before the first dropout mixes the samples of a batch")
            self.split.checked = True
            logger.debug(
                "MC dropout: %s reuses its first %d operations, cut before %s",
                type(self.network).__name__,
                self.split.prefix_nodes,
                self.split.cut_before,
            )
        except _NotExact as e:
            self.split.checked = str(e)
            logger.debug("MC dropout: %s runs full passes: %s", type(self.network).__name__, e)
        finally:
            _restore(before)

    def _fingerprints(self, x: torch.Tensor) -> list[float]:
        """One number per sample: a fixed random projection of at most ``_FINGERPRINT_SIZE`` evenly spaced elements.

        Only a first filter: a sample's stored prefix output is used only after an exact comparison.
        """
        flat = x.reshape(x.shape[0], -1)
        size = flat.shape[1]
        if self._projection is None or self._projection[0] != (size, x.device):
            generator = torch.Generator().manual_seed(0)  # its own generator: the MC random state is untouched
            count = min(size, _FINGERPRINT_SIZE)
            positions = torch.linspace(0, size - 1, count).round().long().to(x.device)
            weights = torch.rand(count, generator=generator, dtype=torch.float64).to(x.device)
            self._projection = ((size, x.device), positions, weights)
        _, positions, weights = self._projection
        return (flat[:, positions].double() * weights).sum(dim=1).tolist()

    def _lookup(self, key: float, sample: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        for stored, values in self._rows.get(key, ()):
            if stored.shape == sample.shape and torch.equal(stored, sample):
                return values
        return None

    def _prefix_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The prefix outputs for every sample of ``x`` (``(N, ...)`` each), computing only new distinct samples."""
        keys = self._fingerprints(x)
        rows: list[tuple[torch.Tensor, ...] | None] = [self._lookup(k, x[i]) for i, k in enumerate(keys)]
        new: dict[float, list[int]] = {}  # fingerprint -> positions of distinct new samples
        pending: list[tuple[int, int]] = []  # (position, position of its distinct twin)
        for i, row in enumerate(rows):
            if row is not None:
                continue
            twin = next((j for j in new.get(keys[i], ()) if torch.equal(x[j], x[i])), None)
            if twin is None:
                new.setdefault(keys[i], []).append(i)
                twin = i
            pending.append((i, twin))
        if pending:
            distinct = [i for positions in new.values() for i in positions]
            inputs = x[distinct]
            values = _batch_first(self.split.prefix(inputs), len(distinct))
            self.prefix_samples += len(distinct)
            computed = {}
            for j, i in enumerate(distinct):
                computed[i] = tuple(v[j] for v in values)
                size = inputs[j].nbytes + sum(v[j].nbytes for v in values)
                if self.stored_bytes + size <= self.limit_bytes:
                    self._rows.setdefault(keys[i], []).append((inputs[j], computed[i]))
                    self.stored_bytes += size
            for i, twin in pending:
                rows[i] = computed[twin]
        return tuple(torch.stack([row[k] for row in rows]) for k in range(len(rows[0])))  # type: ignore[index]
