"""Cache-size estimate, cache_rate 'auto' and num_workers 'auto' (monai_imbalance.data.loading)."""

from __future__ import annotations

import logging

import pytest
from monai.transforms import Compose, EnsureTyped, RandFlipd, ScaleIntensityd

from monai_imbalance.data import loading
from monai_imbalance.data.loading import (
    available_memory_bytes,
    cache_size_bytes,
    cpu_count,
    local_processes,
    random_after_cache,
    resolve_cache_rate,
    resolve_num_workers,
)

MB = 10**6


def test_available_memory_reads_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683520 kB\nMemFree:  1000 kB\nMemAvailable:   21800000 kB\n")
    assert available_memory_bytes(meminfo) == 21800000 * 1024


def test_available_memory_falls_back_to_sysconf(tmp_path, monkeypatch):
    values = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(loading.os, "sysconf", lambda name: values[name])
    assert available_memory_bytes(tmp_path / "absent") == 4096000
    no_line = tmp_path / "meminfo"
    no_line.write_text("MemTotal: 100 kB\n")
    assert available_memory_bytes(no_line) == 4096000

    def unsupported(name):
        raise ValueError(name)

    monkeypatch.setattr(loading.os, "sysconf", unsupported)
    assert available_memory_bytes(tmp_path / "absent") is None


def test_cache_size_estimate():
    per_image = 1 * 64 * 64 * 4 + 1024  # float32 values plus the per-item overhead
    assert cache_size_bytes(5778, channels=1, spatial_size=64) == 5778 * per_image
    assert cache_size_bytes(10, channels=4, spatial_size=[256, 128]) == 10 * (4 * 256 * 128 * 4 + 1024)
    assert cache_size_bytes(2, channels=1, spatial_size=8, spatial_dims=3) == 2 * (8**3 * 4 + 1024)
    assert cache_size_bytes(0, channels=3, spatial_size=224) == 0
    with pytest.raises(ValueError, match="spatial_size"):
        cache_size_bytes(1, channels=1, spatial_size=[64, 0])
    with pytest.raises(ValueError, match="channels"):
        cache_size_bytes(1, channels=0, spatial_size=64)


def test_auto_caches_everything_that_fits_and_says_so(caplog):
    total = cache_size_bytes(5778, channels=1, spatial_size=64)  # about 101 MB
    with caplog.at_level(logging.INFO, logger=loading.__name__):
        rate = resolve_cache_rate(
            "auto", num_items=5778, channels=1, spatial_size=64, available_bytes=2 * total, what="training images"
        )
    assert rate == 1.0
    assert "caching 5778 training images, about 101 MB" in caplog.text


def test_auto_caches_the_share_that_fits(caplog):
    per_item = cache_size_bytes(1, channels=3, spatial_size=224)
    with caplog.at_level(logging.INFO, logger=loading.__name__):
        rate = resolve_cache_rate(
            "AUTO", num_items=1000, channels=3, spatial_size=224, available_bytes=500 * per_item, memory_fraction=0.5
        )
    assert rate == 250 / 1000
    assert "caching 250 of 1000 training images" in caplog.text
    assert resolve_cache_rate("auto", num_items=10, channels=1, spatial_size=64, available_bytes=10) == 0.0
    assert resolve_cache_rate("auto", num_items=0, channels=1, spatial_size=64, available_bytes=10) == 1.0


def test_auto_with_unknown_memory_uses_the_fixed_limit(monkeypatch):
    monkeypatch.setattr(loading, "available_memory_bytes", lambda: None)
    per_item = cache_size_bytes(1, channels=1, spatial_size=64)
    small = resolve_cache_rate("auto", num_items=100, channels=1, spatial_size=64, unknown_memory_limit=100 * per_item)
    assert small == 1.0
    half = resolve_cache_rate("auto", num_items=200, channels=1, spatial_size=64, unknown_memory_limit=100 * per_item)
    assert half == 0.5


def test_auto_reads_the_machine_memory(monkeypatch):
    monkeypatch.setattr(loading, "available_memory_bytes", lambda: 1000 * MB)
    assert resolve_cache_rate("auto", num_items=1000, channels=1, spatial_size=64) == 1.0  # 17 MB of 500 MB
    assert resolve_cache_rate("auto", num_items=1000, channels=3, spatial_size=512) < 1.0  # 3.1 GB


def test_explicit_cache_rate_is_kept():
    assert resolve_cache_rate(0, num_items=5, channels=1, spatial_size=8) == 0.0
    assert resolve_cache_rate("0", num_items=5, channels=1, spatial_size=8) == 0.0  # --cache_rate 0
    assert resolve_cache_rate(0.25, num_items=5, channels=1, spatial_size=8) == 0.25
    for bad in (1.5, -0.1, "all", True):
        with pytest.raises(ValueError, match="cache_rate"):
            resolve_cache_rate(bad, num_items=5, channels=1, spatial_size=8)


@pytest.mark.parametrize("cores, expected", [(1, 0), (2, 1), (3, 2), (16, 4)])
def test_auto_workers_from_the_cores(cores, expected, monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_num_workers("auto", cache_rate=0.0, random_per_sample=False, cores=cores) == expected
    assert resolve_num_workers("auto", cache_rate=1.0, random_per_sample=True, cores=cores) == expected
    assert resolve_num_workers("auto", cache_rate=0.5, random_per_sample=False, cores=cores) == expected


def test_auto_workers_zero_when_everything_is_cached():
    assert resolve_num_workers("auto", cache_rate=1.0, random_per_sample=False, cores=16) == 0


def test_auto_workers_reads_the_machine(monkeypatch):
    monkeypatch.setattr(loading, "cpu_count", lambda: 9)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_num_workers("auto", cache_rate=0.0, random_per_sample=True, max_workers=6) == 6
    assert resolve_num_workers("auto", cache_rate=1.0, random_per_sample=False) == 0


def test_cpu_count_uses_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(loading.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert cpu_count() == 3

    def absent(pid):
        raise OSError

    monkeypatch.setattr(loading.os, "sched_getaffinity", absent, raising=False)
    monkeypatch.setattr(loading.os, "cpu_count", lambda: None)
    assert cpu_count() == 1


def test_explicit_workers_are_kept():
    assert resolve_num_workers(3, cache_rate=1.0, random_per_sample=False, cores=1) == 3
    assert resolve_num_workers("2", cache_rate=0.0, random_per_sample=True) == 2
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(ValueError, match="num_workers"):
            resolve_num_workers(bad, cache_rate=0.0, random_per_sample=True)


def test_processes_on_one_machine_share_memory_and_cores(monkeypatch):
    per_item = cache_size_bytes(1, channels=1, spatial_size=64)
    budget = {"num_items": 100, "channels": 1, "spatial_size": 64, "available_bytes": 400 * per_item}
    assert resolve_cache_rate("auto", **budget, processes=1) == 1.0  # 100 of 200 items' budget
    assert resolve_cache_rate("auto", **budget, processes=4) == 0.5  # 50 each
    assert resolve_num_workers("auto", cores=16, processes=4) == 3
    assert resolve_num_workers("auto", cores=4, processes=4) == 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert local_processes() == 8
    assert resolve_num_workers("auto", cores=16) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "x")
    assert local_processes() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert local_processes() == 1


def test_random_after_cache_follows_cache_dataset():
    load = ScaleIntensityd(keys="image")
    assert not random_after_cache(Compose([load, EnsureTyped(keys="image")]))
    assert random_after_cache(Compose([load, RandFlipd(keys="image", prob=0.5)]))
    assert random_after_cache(Compose([load, Compose([RandFlipd(keys="image", prob=0.5)])]))
    assert random_after_cache(Compose([load, lambda x: x]))  # not a Transform: CacheDataset stops there too
    assert not random_after_cache(load)
