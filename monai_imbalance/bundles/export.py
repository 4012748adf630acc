"""Write rendered bundles to disk: ``export_bundle`` for users, ``sync_bundles`` / ``stale_files`` for the
repository's committed ``bundles/`` folder."""

from __future__ import annotations

import os
from pathlib import Path

from monai_imbalance.bundles.render import bundle_names, render_bundle

__all__ = ["export_bundle", "stale_files", "sync_bundles"]


def export_bundle(name: str, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write bundle ``name`` into ``directory`` (created if needed), ready for ``python -m monai.bundle run``.

    Args:
        name: a bundle name (see :func:`~monai_imbalance.bundles.bundle_names`).
        directory: the bundle folder to write.
        overwrite: allow writing into a ``directory`` that already holds files (the bundle's files are
            replaced; other files, e.g. ``models/``, stay).

    Returns:
        The bundle folder.

    Raises:
        ValueError: ``name`` is not a bundle.
        FileExistsError: ``directory`` exists, is not empty and ``overwrite`` is false.
        NotADirectoryError: ``directory`` is a file.
    """
    files = render_bundle(name)  # raises for an unknown name before anything is written
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is a file; give a folder to export bundle {name!r} into")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{root} is not empty; choose a new folder, or pass overwrite=True (--overwrite) to replace the "
            f"bundle's files there"
        )
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def stale_files(bundles_dir: str | os.PathLike) -> list[Path]:
    """The files under ``bundles_dir`` that differ from what the sources render (or are missing), sorted."""
    root = Path(bundles_dir)
    stale = []
    for name in bundle_names():
        for relative, text in render_bundle(name).items():
            path = root / name / relative
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
    return sorted(stale)


def sync_bundles(bundles_dir: str | os.PathLike) -> list[Path]:
    """Re-render every bundle into ``bundles_dir/<name>/``; returns the files that changed."""
    changed = stale_files(bundles_dir)
    for name in bundle_names():
        export_bundle(name, Path(bundles_dir) / name, overwrite=True)
    return changed
