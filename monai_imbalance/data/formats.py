"""The registry of datalist formats: each format's loader registers itself here under its name.

:func:`monai_imbalance.data.load_datalists` looks the loader of its ``format`` up in this registry instead of
importing the format modules, and the format modules import the shared datalist helpers
(:mod:`monai_imbalance.data.datalist`) and this registry, so imports run one way only::

    datalist  ->  formats  <-  medmnist, folders, isic_classification, csv_datalist  ->  datalist

A loader is a function ``loader(dataset_dir, **options) -> Datalists``; registering one makes it a format
of ``load_datalists`` and of the bundles' ``--data_format``::

    @register_format("my_format")
    def load_my_format_datalists(dataset_dir, *, csv_file="list.csv") -> Datalists: ...

The built-in formats (:data:`DATA_FORMATS`) register when :mod:`monai_imbalance.data` is imported, which
Python does before any of its modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from monai_imbalance.errors import check_choice

__all__ = ["DATA_FORMATS", "format_loader", "register_format", "registered_formats"]

#: Names of the built-in data formats of :func:`monai_imbalance.data.load_datalists`, in documentation order.
DATA_FORMATS: tuple[str, ...] = ("medmnist", "class_folders", "knee_folders", "isic2018_task3", "csv")

_Loader = TypeVar("_Loader", bound=Callable[..., Any])
_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_format(name: str) -> Callable[[_Loader], _Loader]:
    """Decorator: register ``loader`` as the reader of data format ``name`` and return it unchanged.

    Raises:
        ValueError: ``name`` is empty or already taken by another function.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a data format needs a non-empty name, got {name!r}.")

    def register(loader: _Loader) -> _Loader:
        current = _REGISTRY.get(name)
        if current is not None and current is not loader:
            raise ValueError(f"data format {name!r} is already registered (by {current.__qualname__}).")
        _REGISTRY[name] = loader
        return loader

    return register


def registered_formats() -> dict[str, Callable[..., Any]]:
    """``{name: loader}`` of every registered format, built-in ones first in :data:`DATA_FORMATS` order."""
    ordered = {n: _REGISTRY[n] for n in DATA_FORMATS if n in _REGISTRY}
    ordered.update({n: f for n, f in _REGISTRY.items() if n not in ordered})
    return ordered


def format_loader(name: str) -> Callable[..., Any]:
    """The loader of data format ``name``.

    Raises:
        UnknownChoiceError: (a ``ValueError``) no format of that name; the message lists the formats and the
            closest names.
    """
    formats = registered_formats()
    check_choice(name, list(formats), "data format")
    return formats[name]
