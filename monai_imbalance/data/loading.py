"""How the bundles load data: the cache of pre-processed images and the number of DataLoader workers.

The deterministic part of a bundle's pipeline (decode, scale, resize) gives the same tensor every epoch, so
it is worth keeping in memory whenever it fits: MONAI's ``CacheDataset`` does that for a ``cache_rate`` share
of the items. :func:`resolve_cache_rate` turns ``cache_rate: auto`` into that share from an estimate of the
cache's size,

    bytes = N * C * prod(spatial_size) * bytes_per_value        (float32: 4 bytes per value),

against the memory available now (``MemAvailable`` of ``/proc/meminfo``, else the free pages of
``os.sysconf``), and says so in the log. With the random augmentation on batches
(:class:`monai_imbalance.transforms.BatchRandAugment`) an entirely cached data set leaves a memory copy per
sample, which the main process does faster than worker processes can hand it over; :func:`resolve_num_workers`
then chooses 0 workers, otherwise ``min(max_workers, cores - 1)``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "available_memory_bytes",
    "cache_size_bytes",
    "cpu_count",
    "local_processes",
    "random_after_cache",
    "resolve_cache_rate",
    "resolve_num_workers",
]

logger = logging.getLogger(__name__)

AUTO = "auto"


def available_memory_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Memory available to new allocations without swapping, in bytes; ``None`` when it cannot be read.

    Linux's ``MemAvailable`` (free memory plus reclaimable caches) when ``meminfo`` has it, otherwise the
    free pages reported by ``os.sysconf('SC_AVPHYS_PAGES')`` (an underestimate: caches not counted).
    """
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def cpu_count() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def local_processes() -> int:
    """Training processes on this machine (``torchrun`` sets ``LOCAL_WORLD_SIZE``; 1 otherwise).

    Each of them builds its own cache and its own DataLoader workers, so memory and cores are shared.
    """
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def random_after_cache(transform: object) -> bool:
    """Whether a ``CacheDataset`` with ``transform`` still runs a random transform per sample.

    The same test as MONAI's ``CacheDataset``, which caches up to the first step that is random
    (``RandomizableTrait``) or not a MONAI ``Transform`` and runs the rest on every access. A transform that is
    not a ``Compose`` counts as one step.
    """
    from monai.transforms import Compose, RandomizableTrait, Transform

    steps = transform.flatten().transforms if isinstance(transform, Compose) else (transform,)
    return any(isinstance(t, RandomizableTrait) or not isinstance(t, Transform) for t in steps)


def _spatial(spatial_size: int | Sequence[int]) -> tuple[int, ...]:
    size = (spatial_size,) if isinstance(spatial_size, int) else tuple(spatial_size)
    if not size or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in size):
        raise ValueError(f"spatial_size must be a positive int or a sequence of them, got {spatial_size!r}")
    return size


def cache_size_bytes(
    num_items: int, *, channels: int, spatial_size: int | Sequence[int], spatial_dims: int = 2, bytes_per_value: int = 4
) -> int:
    """Estimated memory of ``num_items`` cached items of ``channels`` x ``spatial_size`` values.

    ``spatial_size`` is one side (repeated ``spatial_dims`` times, a bundle's ``image_size: 224``) or the full
    size; ``channels`` counts every cached array's channels (image channels + 1 for a segmentation mask).
    Python and metadata overhead (about 1 kB per item) is included.
    """
    if num_items < 0 or channels < 1 or bytes_per_value < 1:
        raise ValueError(
            "need num_items >= 0, channels >= 1 and bytes_per_value >= 1, "
            f"got {num_items}, {channels}, {bytes_per_value}"
        )
    size = _spatial(spatial_size)
    if len(size) == 1:
        size = size * spatial_dims
    return num_items * (channels * math.prod(size) * bytes_per_value + 1024)


def _megabytes(num_bytes: float) -> str:
    return f"{num_bytes / 1e6:,.0f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e6:.1f} MB"


def resolve_cache_rate(
    cache_rate: float | str,
    *,
    num_items: int,
    channels: int,
    spatial_size: int | Sequence[int],
    spatial_dims: int = 2,
    what: str = "training images",
    memory_fraction: float = 0.5,
    available_bytes: int | None = None,
    unknown_memory_limit: int = 2**30,
    processes: int | None = None,
) -> float:
    """The share of ``num_items`` items to cache: ``cache_rate`` itself, or for ``"auto"`` as much as fits.

    ``"auto"`` caches everything when :func:`cache_size_bytes` is at most ``memory_fraction`` of the available
    memory (:func:`available_memory_bytes`, or ``available_bytes`` when given; ``unknown_memory_limit`` bytes
    when it cannot be read) divided among ``processes`` (default :func:`local_processes`: every DDP process on
    this machine caches its own copy), else the share that fits (0 when not one item does). It is logged, e.g.
    ``caching 5778 training images, about 95 MB (of 21,000 MB available)``. A number (0 to 1, also as a string
    from the command line: ``--cache_rate 0``) is returned unchanged.
    """
    if isinstance(cache_rate, str) and cache_rate.strip().lower() != AUTO:
        try:
            cache_rate = float(cache_rate)
        except ValueError:
            raise ValueError(f"cache_rate must be 'auto' or a number from 0 to 1, got {cache_rate!r}") from None
    if not isinstance(cache_rate, str):
        if isinstance(cache_rate, bool) or not 0.0 <= float(cache_rate) <= 1.0:
            raise ValueError(f"cache_rate must be 'auto' or a number from 0 to 1, got {cache_rate!r}")
        return float(cache_rate)
    if not 0.0 < memory_fraction <= 1.0:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
    if num_items == 0:
        return 1.0
    per_item = cache_size_bytes(1, channels=channels, spatial_size=spatial_size, spatial_dims=spatial_dims)
    total = per_item * num_items
    available = available_memory_bytes() if available_bytes is None else available_bytes
    processes = local_processes() if processes is None else max(1, processes)
    budget = (unknown_memory_limit if available is None else memory_fraction * available) / processes
    where = (
        "available memory unknown"
        if available is None
        else f"of {_megabytes(available)} available, at most {memory_fraction:.0%} used"
    ) + (f", {processes} processes" if processes > 1 else "")
    if total <= budget:
        logger.info("caching %d %s, about %s (%s)", num_items, what, _megabytes(total), where)
        return 1.0
    fitting = int(budget // per_item)
    if fitting == 0:
        logger.info(
            "not caching the %s: they need about %s (%s); loading every image each epoch",
            what,
            _megabytes(total),
            where,
        )
        return 0.0
    logger.info(
        "caching %d of %d %s, about %s (all would need %s, %s)",
        fitting,
        num_items,
        what,
        _megabytes(fitting * per_item),
        _megabytes(total),
        where,
    )
    return fitting / num_items


def resolve_num_workers(
    num_workers: int | str,
    *,
    cache_rate: float = 0.0,
    random_per_sample: bool = True,
    cores: int | None = None,
    processes: int | None = None,
    max_workers: int = 4,
) -> int:
    """DataLoader worker processes: ``num_workers`` itself, or for ``"auto"`` a choice from the machine.

    ``"auto"`` gives 0 (load in the main process) when every item is cached (``cache_rate >= 1``) and no
    random transform runs per sample (``random_per_sample`` false: augmentation on batches, or none;
    :func:`random_after_cache` tells), because what is left per sample is a memory copy; otherwise
    ``min(max_workers, cores // processes - 1)``, keeping one core per training process (0 on a single core).
    ``cores`` defaults to :func:`cpu_count`, ``processes`` (training processes on this machine) to
    :func:`local_processes`. Without ``cache_rate`` (evaluation, inference) nothing is assumed cached.
    """
    if isinstance(num_workers, str) and num_workers.strip().lower() != AUTO:
        try:
            num_workers = int(num_workers)
        except ValueError:
            raise ValueError(f"num_workers must be 'auto' or a whole number >= 0, got {num_workers!r}") from None
    if not isinstance(num_workers, str):
        if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be 'auto' or a whole number >= 0, got {num_workers!r}")
        return int(num_workers)
    if cache_rate >= 1.0 and not random_per_sample:
        logger.info("num_workers auto: 0 (every image cached, nothing random per sample)")
        return 0
    cores = cpu_count() if cores is None else cores
    processes = local_processes() if processes is None else max(1, processes)
    workers = max(0, min(max_workers, cores // processes - 1))
    logger.info("num_workers auto: %d (%d CPU cores, %d training processes)", workers, cores, processes)
    return workers
