"""Class-balancing index samplers: batch-balanced sampling, random over-sampling and under-sampling.

The batch-balanced focal loss paper (BBFL) trains with batches that hold every class equally and
compares against random over-sampling (ROS) and random under-sampling (RUS). The three samplers
here draw *dataset indices* from the class labels of the datalist alone (no image is loaded), so
they plug into any MONAI ``Dataset``/``DataLoader``:

- :class:`BatchBalancedSampler`: every group of ``batch_size`` consecutive indices holds
  ``batch_size // C`` samples of every class (the remainder is spread as described below);
- :class:`OverSampler` (ROS): one epoch holds every class ``max_c n_c`` times, randomly ordered;
- :class:`UnderSampler` (RUS): one epoch holds every class ``min_c n_c`` times, randomly ordered.

Pairing with a data loader
--------------------------
State the batch size once, in the sampler, and hand the loader its whole batches (``sampler.batch_sampler``, a
:class:`ClassBatchSampler`); PyTorch then refuses any ``batch_size``/``shuffle``/``sampler`` given to the loader
as well::

    sampler = BatchBalancedSampler(labels, batch_size=32, seed=0)
    loader = monai.data.DataLoader(dataset, batch_sampler=sampler.batch_sampler, num_workers=2)

The older form ``DataLoader(dataset, sampler=sampler, batch_size=32, shuffle=False)`` still works with the *same*
batch size; a different one would cut the sampler's groups into unbalanced batches (a batch size of 16 under
``batch_size=32`` gave ``[7, 9], [9, 7], [10, 6]``), so it is refused (:class:`SamplerBatchSizeError`) when the
loader starts drawing: the sampler checks the ``torch.utils.data.BatchSampler`` that draws from it.
``len(sampler)`` is always a multiple of ``batch_size``, so no partial batch occurs. In a bundle config
(``get_sampler`` returns ``None`` for ``"none"``, which restores plain shuffling)::

    imports: ["$import monai_imbalance"]
    sampler_name: batch_balanced   # none | batch_balanced | over | under
    train:
      sampler: "$monai_imbalance.data.get_sampler(@sampler_name, [d['label'] for d in @train_datalist],
                 @batch_size, seed=@seed)"
      batch_sampler: "$getattr(@train#sampler, 'batch_sampler', None)"
      dataloader:
        _target_: DataLoader
        dataset: "@train#dataset"
        batch_sampler: "@train#batch_sampler"
        batch_size: "$@batch_size if @train#batch_sampler is None else 1"
        shuffle: "$@train#sampler is None"
    run:
    - "$@train#batch_sampler is None or @train#batch_sampler.attach(@train#trainer)"   # set_epoch every epoch

Epochs and determinism
----------------------
The samplers subclass :class:`torch.utils.data.DistributedSampler`; MONAI's ``Workflow`` (e.g.
``SupervisedTrainer``) detects that type on ``data_loader.sampler`` and calls ``set_epoch(epoch)`` when
every epoch starts. In the ``batch_sampler`` form ``data_loader.sampler`` is PyTorch's default, so
``sampler.batch_sampler.attach(trainer)`` registers the same call (``set_epoch(engine.state.epoch)`` at
``EPOCH_STARTED``: both forms give the same batches). With plain PyTorch loops, call ``set_epoch`` yourself.
The indices are a deterministic function of ``(seed, epoch)`` and change from epoch to epoch.

Class streams. The indices of class ``c`` (``N_c`` samples) are taken from a stream, and an epoch
consumes ``q_c`` of them:

- if ``q_c <= N_c`` (a majority class for this sampler) the stream is an endless sequence of random
  permutations of the class, continued *across* epochs: samples are drawn without replacement until
  the class is exhausted, then a fresh permutation starts. Every majority sample is used before any
  is repeated, even when one epoch only takes a fraction of the class.
- if ``q_c > N_c`` (a minority class) every epoch draws with replacement, stratified: the epoch's
  ``q_c`` indices are ``ceil(q_c / N_c)`` concatenated random permutations of the class, truncated, so
  every sample appears ``floor(q_c / N_c)`` or ``ceil(q_c / N_c)`` times (less variance than
  independent draws).

Remainders. When the slots of an epoch (or, for :class:`BatchBalancedSampler`, of a batch) do not
divide by ``C``, every class gets the integer share and the ``r`` remaining slots go to classes in a
cyclic order continued across batches and epochs: remainder slot ``k`` (counted from the first
epoch) goes to class ``k mod C``. Within a batch these are ``r`` distinct classes, so every class
has ``batch_size // C`` or ``batch_size // C + 1`` samples in every batch, and the totals stay
balanced to within one sample over each epoch.

Distributed training
--------------------
An epoch is a sequence of global batches generated identically on every rank; rank ``r`` of ``R``
takes batches ``r, r + R, r + 2R, ...`` (whole batches, so each rank's batches stay balanced). The
number of global batches is rounded *up* to a multiple of ``R`` so every rank runs the same number of
iterations (as ``DistributedDataParallel`` requires); the union of the ranks' batches is then the
single-replica epoch of that many batches. ``num_replicas``/``rank`` default to the initialised
``torch.distributed`` process group, else one replica.

Segmentation counterpart
------------------------
For patch-based segmentation the balancing happens at the patch level, and MONAI already does it:
``RandCropByPosNegLabeld`` (binary: ``pos``/``neg`` set the ratio of patches centred on foreground
and background voxels) and ``RandCropByLabelClassesd`` (multiclass: ``ratios`` per class, ``None``
for equal). The segmentation bundles use them in the training transforms instead of a sampler::

    - _target_: RandCropByPosNegLabeld
      keys: [image, label]
      label_key: label
      spatial_size: [48, 48]
      pos: 1
      neg: 1
      num_samples: 4
    # multiclass labels (channel-first index map):
    - _target_: RandCropByLabelClassesd
      keys: [image, label]
      label_key: label
      spatial_size: [48, 48]
      num_classes: 3
      ratios: [1, 1, 1]
      num_samples: 4
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import
from torch.utils.data import BatchSampler, DistributedSampler

from monai_imbalance.data.class_weights import as_class_indices
from monai_imbalance.errors import UserError, check_choice

__all__ = [
    "SAMPLER_NAMES",
    "BatchBalancedSampler",
    "ClassBatchSampler",
    "OverSampler",
    "SamplerBatchSizeError",
    "UnderSampler",
    "get_sampler",
]

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

SAMPLER_NAMES = ("none", "batch_balanced", "over", "under")

# tags that keep the random streams of one seed independent of each other
_CARRY_STREAM, _CYCLE_STREAM, _LAYOUT_STREAM = 0, 1, 2

LabelsLike = Sequence[int] | np.ndarray | torch.Tensor


class SamplerBatchSizeError(UserError, ValueError):
    """A data loader draws batches of another size than the class sampler's ``batch_size``."""


def _drawing_batch_sampler() -> BatchSampler | None:
    """The ``torch.utils.data.BatchSampler`` whose ``__iter__`` is iterating the caller (two frames up), if any.

    A ``DataLoader(sampler=s, batch_size=b)`` draws ``s`` through ``BatchSampler(s, b)``; this is the one place the
    loader's batch size meets the sampler, so the sampler looks there. ``None`` when not found (another caller, or
    a Python without frame access): nothing is checked then.
    """
    try:
        frame = sys._getframe(2)
    except (AttributeError, ValueError):
        return None
    owner = frame.f_locals.get("self")
    return owner if isinstance(owner, BatchSampler) else None


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``num_replicas``/``rank`` given, else from the initialised process group, else ``(1, 0)``."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    num_replicas = _check_int("num_replicas", num_replicas, 1)
    rank = _check_int("rank", rank, 0)
    if rank >= num_replicas:
        raise ValueError(f"rank must lie in [0, num_replicas={num_replicas}), got {rank}")
    return num_replicas, rank


def _cyclic_share(total: int, cls: np.ndarray, num_classes: int) -> np.ndarray:
    """How many of the slots ``0 .. total-1`` go to each class when slot ``k`` goes to class ``k mod C``."""
    return (total - cls + num_classes - 1) // num_classes


class _ClassBalancedSampler(DistributedSampler):
    """Shared machinery: label checks, per-class index streams, epoch layout and sharding into whole batches.

    Subclasses set ``self._base_quota`` (slots of every class per epoch), ``self._remainder`` (extra slots
    per epoch, spread cyclically over the classes) and implement :meth:`_layout`.
    """

    #: every group of ``batch_size`` indices is balanced, so a data loader must keep the groups (refused otherwise)
    _balanced_batches = False

    def __init__(
        self,
        labels: LabelsLike,
        batch_size: int,
        num_batches: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.labels = as_class_indices(labels, num_classes)
        self.num_classes = int(self.labels.max()) + 1 if num_classes is None else int(num_classes)
        counts = np.bincount(self.labels, minlength=self.num_classes)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            shown = ", ".join(str(c) for c in empty[:10]) + (f", ... ({empty.size} in all)" if empty.size > 10 else "")
            present = {int(c): int(counts[c]) for c in np.flatnonzero(counts)[:10]}
            raise ValueError(
                f"class(es) {shown} of {self.num_classes} have no samples (counts of the classes present: {present}); "
                "a class sampler needs every class in [0, num_classes) present: fix num_classes or the datalist "
                "(labels must be the class indices 0..C-1)"
            )
        self.class_counts: list[int] = counts.tolist()
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if num_batches is not None:
            num_batches = _check_int("num_batches", num_batches, 1)
        self._check_batch_size()
        seed = _check_int("seed", seed, 0)
        num_replicas, rank = _resolve_replicas(num_replicas, rank)
        super().__init__(self.labels, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)

        requested = self._default_num_batches() if num_batches is None else num_batches
        #: global batches per epoch (all ranks together), a multiple of ``num_replicas``
        self.num_batches = math.ceil(requested / num_replicas) * num_replicas
        self.total_size = self.num_batches * self.batch_size
        self.num_samples = self.total_size // num_replicas
        self._set_quotas()
        ends = np.cumsum(counts)
        order = np.argsort(self.labels, kind="stable")
        self._members = [order[end - n : end] for n, end in zip(counts, ends, strict=True)]
        largest_quota = self._base_quota + math.ceil(self._remainder / self.num_classes)
        self._carries = [largest_quota <= n for n in counts]
        self._pass_cache: dict[int, tuple[tuple[int, int], np.ndarray]] = {}

    # --- hooks for the subclasses -------------------------------------------------------------------------------
    def _check_batch_size(self) -> None:
        """Raise if ``batch_size`` does not suit the sampler."""

    def _default_num_batches(self) -> int:
        raise NotImplementedError

    def _set_quotas(self) -> None:
        """Per epoch: every class gets ``T // C`` slots, the ``T mod C`` others go round the classes."""
        self._base_quota, self._remainder = divmod(self.total_size, self.num_classes)

    def _layout(self, streams: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Arrange the classes' indices of one epoch into a ``(num_batches, batch_size)`` array."""
        raise NotImplementedError

    # --- class streams ------------------------------------------------------------------------------------------
    def _class_stream(self, cls: int, start: int, size: int) -> np.ndarray:
        """Indices ``start .. start+size-1`` of the stream of class ``cls`` in this epoch (see module docs)."""
        members = self._members[cls]
        n = members.size
        if size == 0:
            return members[:0]
        if self._carries[cls]:
            parts = []
            for p in range(start // n, (start + size - 1) // n + 1):
                lo, hi = max(start - p * n, 0), min(start + size - p * n, n)
                parts.append(self._carry_pass(cls, p)[lo:hi])
            return np.concatenate(parts)
        rng = np.random.default_rng([self.seed, _CYCLE_STREAM, cls, self.epoch])
        passes = np.broadcast_to(members, (math.ceil(size / n), n))
        return rng.permuted(passes, axis=1).ravel()[:size]

    def _carry_pass(self, cls: int, p: int) -> np.ndarray:
        """Pass ``p`` of the stream of class ``cls``: a permutation of its members, a function of ``(seed, cls, p)``.

        The latest pass of every class is cached: a large class is usually consumed over several epochs.
        """
        key = (self.seed, p)
        cached = self._pass_cache.get(cls)
        if cached is None or cached[0] != key:
            members = self._members[cls]
            perm = np.random.default_rng([self.seed, _CARRY_STREAM, cls, p]).permutation(members.size)
            cached = self._pass_cache[cls] = (key, members[perm])
        return cached[1]

    def _epoch_streams(self) -> list[np.ndarray]:
        cls = np.arange(self.num_classes)
        before = _cyclic_share(self.epoch * self._remainder, cls, self.num_classes)
        after = _cyclic_share((self.epoch + 1) * self._remainder, cls, self.num_classes)
        return [
            self._class_stream(c, self.epoch * self._base_quota + int(before[c]), self._base_quota + int(e))
            for c, e in enumerate(after - before)
        ]

    # --- public -------------------------------------------------------------------------------------------------
    def index_batches(self) -> np.ndarray:
        """This rank's batches of this epoch: ``int64`` ``(num_batches // num_replicas, batch_size)``."""
        rng = np.random.default_rng([self.seed, _LAYOUT_STREAM, self.epoch])
        batches = self._layout(self._epoch_streams(), rng)
        return batches[self.rank :: self.num_replicas]

    @property
    def batch_sampler(self) -> ClassBatchSampler:
        """This sampler's whole batches, for ``DataLoader(dataset, batch_sampler=sampler.batch_sampler)``."""
        view = self.__dict__.get("_batch_view")
        if view is None:
            view = self.__dict__["_batch_view"] = ClassBatchSampler(self)
        return view

    def __iter__(self) -> Iterator[int]:
        """The indices of this rank's batches, batch after batch (the ``DataLoader(sampler=...)`` form).

        Raises:
            SamplerBatchSizeError: the ``BatchSampler`` drawing from a :class:`BatchBalancedSampler` has another
                batch size (the over- and under-samplers balance the epoch, not each batch: any loader batch size
                keeps that).
        """
        drawer = _drawing_batch_sampler() if self._balanced_batches else None
        if drawer is not None and drawer.sampler is self and drawer.batch_size != self.batch_size:
            raise SamplerBatchSizeError(
                f"the data loader's batch_size={drawer.batch_size} differs from the sampler's "
                f"batch_size={self.batch_size}: its batches would cut the balanced groups apart; pass the sampler "
                "as DataLoader(dataset, batch_sampler=sampler.batch_sampler) (the batch size stated once), or give "
                "the loader the sampler's batch size"
            )
        return iter(self.index_batches().ravel().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dataset_size={len(self.labels)}, class_counts={self.class_counts}, "
            f"batch_size={self.batch_size}, num_batches={self.num_batches}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank})"
        )


class ClassBatchSampler(BatchSampler):
    """The whole batches of a class sampler, for ``DataLoader(dataset, batch_sampler=...)``: get it as
    ``sampler.batch_sampler``.

    Yields this rank's batches (lists of dataset indices) of the sampler's current epoch; ``len`` is their number.
    It is a ``torch.utils.data.BatchSampler`` (``batch_size`` and ``sampler`` attributes), so ignite's
    ``ReproducibleBatchSampler`` accepts it. MONAI's trainer sets the epoch of ``data_loader.sampler`` only, which
    is PyTorch's default sampler in this form: :meth:`attach` the view to the trainer (the bundles do it in ``run``).

    Args:
        sampler: a :class:`BatchBalancedSampler`, :class:`OverSampler` or :class:`UnderSampler`.
    """

    def __init__(self, sampler: _ClassBalancedSampler) -> None:
        if not isinstance(sampler, _ClassBalancedSampler):
            raise TypeError(f"sampler must be a class sampler of this module, got {type(sampler).__name__}")
        super().__init__(sampler, sampler.batch_size, drop_last=False)
        self.sampler: _ClassBalancedSampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.sampler.index_batches().tolist()

    def __len__(self) -> int:
        return self.sampler.num_samples // self.sampler.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the sampler's epoch (its batches are a function of ``(seed, epoch)``)."""
        self.sampler.set_epoch(epoch)

    def epoch_started(self, engine: Any) -> None:
        """``set_epoch(engine.state.epoch)``, what MONAI's ``Workflow`` does for ``data_loader.sampler``."""
        self.set_epoch(engine.state.epoch)

    def attach(self, engine: Any) -> None:
        """Call :meth:`epoch_started` at every ``EPOCH_STARTED`` of ``engine`` (the trainer); attaching twice
        registers once. A resumed run restores the trainer's epoch first, so it continues with that epoch's
        batches."""
        if not engine.has_event_handler(self.epoch_started, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)

    def __repr__(self) -> str:
        return f"ClassBatchSampler({self.sampler!r})"


class BatchBalancedSampler(_ClassBalancedSampler):
    """Yields dataset indices in groups of ``batch_size`` that hold every class equally (BBFL's batch balancing).

    Each group holds ``k = batch_size // C`` indices of every class. If ``r = batch_size mod C > 0``, ``r``
    distinct classes get one more, in a cyclic order over batches (see the module docs), so global batch ``b``
    of epoch ``e`` has ``k + 1`` samples of class ``c`` iff ``(c - (e * num_batches + b) * r) mod C < r``.
    Minority classes repeat (drawn with replacement, stratified); majority classes are drawn without
    replacement, continuing across epochs until exhausted. The order within a batch is shuffled.

    Use with ``DataLoader(dataset, batch_sampler=sampler.batch_sampler)`` (and :meth:`ClassBatchSampler.attach` to a
    MONAI trainer), or ``DataLoader(dataset, sampler=sampler, batch_size=batch_size, shuffle=False)``; another
    loader batch size is refused (:class:`SamplerBatchSizeError`).

    Args:
        labels: one class index per dataset item, e.g. ``[d["label"] for d in datalist]`` (list, array or
            tensor of shape ``(N,)`` or ``(N, 1)``); no image is loaded.
        batch_size: the data loader's batch size (per rank); at least ``C``.
        num_batches: global batches per epoch (all ranks together); default ``max(1, N // batch_size)``.
            Rounded up to a multiple of ``num_replicas``.
        seed: non-negative seed; the indices are a function of ``(seed, epoch)``.
        num_replicas: number of distributed ranks; default the process group's world size, else 1.
        rank: this rank; default the process group's rank, else 0.
        num_classes: ``C``; default ``max(labels) + 1`` (a label of ``MAX_INFERRED_CLASSES`` or more is refused
            before anything is allocated). Every class must have samples.

    Raises:
        ValueError: labels outside ``[0, C)`` or not one per sample, an empty class, ``batch_size < C``,
            a non-positive ``batch_size``/``num_batches``, a negative seed or a rank outside ``[0, num_replicas)``.
        TypeError: non-integer labels or arguments.
    """

    _balanced_batches = True

    def _check_batch_size(self) -> None:
        if self.batch_size < self.num_classes:
            raise ValueError(
                f"batch_size={self.batch_size} is smaller than the number of classes {self.num_classes}: "
                "a batch cannot hold every class; increase batch_size"
            )

    def _default_num_batches(self) -> int:
        return max(1, len(self.labels) // self.batch_size)

    def _set_quotas(self) -> None:
        self._per_batch, self._per_batch_remainder = divmod(self.batch_size, self.num_classes)
        self._base_quota = self.num_batches * self._per_batch
        self._remainder = self.num_batches * self._per_batch_remainder

    def _layout(self, streams: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        base = self._base_quota
        columns = [s[:base].reshape(self.num_batches, self._per_batch) for s in streams]
        if self._remainder:
            extras = np.empty(self._remainder, dtype=np.int64)
            first = self.epoch * self._remainder  # remainder slots used by the previous epochs
            for c, s in enumerate(streams):
                extras[(c - first) % self.num_classes :: self.num_classes] = s[base:]
            columns.append(extras.reshape(self.num_batches, self._per_batch_remainder))
        return rng.permuted(np.concatenate(columns, axis=1), axis=1)


class OverSampler(_ClassBalancedSampler):
    """Random over-sampling (ROS): every epoch holds every class ``max_c n_c`` times, in random order.

    The largest class appears once per epoch (each sample once); smaller classes are repeated up to that
    count, each sample ``floor`` or ``ceil`` of ``max_c n_c / n_c`` times. The epoch is padded to whole batches
    (and to a multiple of ``num_replicas`` batches) with further class-balanced draws, so class ``c`` appears
    ``T // C`` or ``T // C + 1`` times in an epoch of ``T = num_batches * batch_size`` indices. Reshuffled every
    epoch; the batches are *not* individually balanced (that is :class:`BatchBalancedSampler`).

    Same arguments, pairing and errors as :class:`BatchBalancedSampler`, except that any ``batch_size >= 1``
    works and the default epoch is ``ceil(C * max_c n_c / batch_size)`` global batches.
    """

    def _default_num_batches(self) -> int:
        return math.ceil(self.num_classes * max(self.class_counts) / self.batch_size)

    def _layout(self, streams: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        flat = np.concatenate(streams)
        return flat[rng.permutation(flat.size)].reshape(self.num_batches, self.batch_size)


class UnderSampler(OverSampler):
    """Random under-sampling (RUS): every epoch holds every class ``min_c n_c`` times, in random order.

    Larger classes are drawn without replacement, continuing across epochs, so every sample of a large class
    is used once before any is used again. Padding to whole batches as in :class:`OverSampler`; the default
    epoch is ``ceil(C * min_c n_c / batch_size)`` global batches.
    """

    def _default_num_batches(self) -> int:
        return math.ceil(self.num_classes * min(self.class_counts) / self.batch_size)


_SAMPLERS = {"batch_balanced": BatchBalancedSampler, "over": OverSampler, "under": UnderSampler}


def get_sampler(
    name: str,
    labels: LabelsLike,
    batch_size: int,
    seed: int = 0,
    num_batches: int | None = None,
    num_classes: int | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DistributedSampler | None:
    """The sampler called ``name`` for a bundle's ``train#dataloader#sampler``; ``"none"`` gives ``None``.

    Args:
        name: ``"none"`` (plain shuffling: pair with ``shuffle=True``), ``"batch_balanced"``
            (:class:`BatchBalancedSampler`), ``"over"`` (:class:`OverSampler`) or ``"under"`` (:class:`UnderSampler`).
        labels, batch_size, seed, num_batches, num_classes, num_replicas, rank: passed to the sampler.

    Raises:
        ValueError: an unknown name (and the sampler's own errors).
    """
    check_choice(name, SAMPLER_NAMES, "sampler")
    if name == "none":
        return None
    return _SAMPLERS[name](
        labels,
        batch_size,
        num_batches=num_batches,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
        num_classes=num_classes,
    )
