"""Command-line overrides of ``python -m monai.bundle run``: read them back and refuse misspelt keys.

``monai.bundle run`` merges every ``--key value`` into the config, and a key that names nothing simply adds a
new, unused entry: ``--loss_nmae focal`` trains the default loss without a word. The config cannot tell an
override from its own content after the merge, so :func:`check_overrides` (the first entry of the bundles'
``initialize``) reads the command again (``sys.argv``, and the ``--args_file`` it names, parsed the way MONAI
and Fire parse them) and compares each override's key, ``#``-paths included, against the config files as
they are on disk. A key that names nothing stops the run before any work, with the closest existing keys
(:mod:`difflib`).

One kind of new key is accepted: an entry of a dict that is empty in the config, such as
``--loss_kwargs#delta 0.2`` under ``loss_kwargs: {}`` (free-form keyword arguments).

A bundle run made in Python rather than from the command line (``monai_imbalance.compare``'s tables run the
bundles in their own process) has no ``sys.argv`` to read: :func:`bundle_run_in_process` tells
:func:`bundle_command` its config files and overrides for the duration of the run, so that they are checked and
recorded the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fire.parser import DefaultParseValue
from monai.bundle import ConfigParser

from monai_imbalance.errors import UserError

__all__ = [
    "RUN_SWITCHES",
    "UnknownOverrideError",
    "bundle_command",
    "bundle_run_in_process",
    "check_override_keys",
    "check_overrides",
    "parse_override_value",
]

RUN_SWITCHES = ("resume", "overwrite")
"""Overrides that say what to do with the run folder, not how to train; left out of the recorded settings."""


_SEP = "#"  # MONAI accepts "#" and "::" between the levels of an id; messages use the command line's "#"
_IN_PROCESS_RUN: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = contextvars.ContextVar(
    "monai_imbalance_bundle_run", default=None
)


def _parts(key: str) -> list[str]:
    return key.replace("::", _SEP).split(_SEP)


class UnknownOverrideError(UserError, KeyError):
    """An override names no key of the bundle's configs."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0]) if self.args else ""


def _run_arguments() -> set[str]:
    """Argument names of ``monai.bundle run`` / ``run_workflow`` / ``ConfigWorkflow``: not config overrides."""
    from monai.bundle import ConfigWorkflow
    from monai.bundle.scripts import create_workflow, run

    names = {"workflow_name"}
    for function in (run, create_workflow, ConfigWorkflow.__init__):
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) and parameter.name != "self":
                names.add(parameter.name)
    return names


def parse_override_value(text: str) -> Any:
    """A command-line value as ``python -m monai.bundle run`` receives it: parsed by Fire, which reads Python
    literals and YAML-like ones with bare words as strings (``{train: 0.6}`` is ``{"train": 0.6}``); other words,
    ``true`` and ``false`` included, stay strings (the bundles read switches with ``as_bool``)."""
    return DefaultParseValue(text)


def _flags(tokens: Sequence[str]) -> dict[str, Any]:
    """``--key value``, ``--key=value`` and bare ``--flag`` (True) pairs of a Fire command line, in order."""
    flags: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or token == "--":
            continue  # a positional argument (e.g. the run_id)
        name, sep, value = token[2:].partition("=")
        if not sep:
            if i < len(tokens) and not tokens[i].startswith("--"):
                value = tokens[i]
                i += 1
            else:
                value = "True"
        flags[name.replace("-", "_")] = parse_override_value(value)
    return flags


@contextlib.contextmanager
def bundle_run_in_process(config_file: Any, overrides: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, :func:`bundle_command` (without ``argv``) returns ``(config_file, overrides)``.

    For bundle runs made in Python (``ConfigWorkflow(config_file=..., **overrides)``): the bundles'
    :func:`check_overrides` then refuses a misspelt key and the recorded settings name the overrides, as for
    ``python -m monai.bundle run``. Run-level arguments among ``overrides`` (``bundle_root`` aside, which every
    bundle has as a key) are left out as on the command line.
    """
    run_arguments = _run_arguments()
    kept = {key: value for key, value in overrides.items() if key not in run_arguments}
    token = _IN_PROCESS_RUN.set((config_file, kept))
    try:
        yield
    finally:
        _IN_PROCESS_RUN.reset(token)


def bundle_command(argv: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]] | None:
    """``(config_file, overrides)`` of a ``python -m monai.bundle run ...`` command line, else ``None``.

    ``argv`` defaults to ``sys.argv``, unless a :func:`bundle_run_in_process` block is active: then its config
    files and overrides. Arguments of ``run`` itself (``--config_file``, ``--meta_file``, ``--logging_file``,
    ...) are not overrides; those of an ``--args_file`` come first and the command line's replace them, as in
    ``monai.bundle.scripts.update_kwargs``.
    """
    if argv is None and (in_process := _IN_PROCESS_RUN.get()) is not None:
        return in_process[0], dict(in_process[1])
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py"):
        return None
    if argv[1] not in ("run", "run_workflow"):
        return None
    flags = _flags(argv[2:])
    args: dict[str, Any] = {}
    if flags.get("args_file"):
        args.update(ConfigParser.load_config_file(str(flags["args_file"])))
    args.update(flags)
    config_file = args.get("config_file")
    run_arguments = _run_arguments()
    overrides = {key: value for key, value in args.items() if key not in run_arguments}
    return config_file, overrides


def _ids(content: object, prefix: str = "") -> list[str]:
    """Every config id of ``content`` (``a``, ``a#b``, ``a#0``, ...)."""
    ids = []
    if isinstance(content, Mapping):
        items: Any = content.items()
    elif isinstance(content, list):
        items = enumerate(content)
    else:
        return []
    for key, value in items:
        full = f"{prefix}{_SEP}{key}" if prefix else str(key)
        ids.append(full)
        ids.extend(_ids(value, full))
    return ids


def _missing_part(content: object, key: str) -> tuple[str, list[str]] | None:
    """``None`` when the id ``key`` exists in ``content`` (or extends an empty dict), else where it breaks off."""
    node = content
    parts = _parts(key)
    for depth, part in enumerate(parts):
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            if depth > 0 and not node:
                return None  # a new entry of free-form keyword arguments, e.g. loss_kwargs#delta
            siblings = [str(k) for k in node]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        elif isinstance(node, list):
            siblings = [str(i) for i in range(len(node))]
        else:
            siblings = []
        parent = _SEP.join(parts[:depth])
        return parent, siblings
    return None


def check_override_keys(config: Mapping[str, Any], keys: Sequence[str], *, source: str = "the configs") -> None:
    """Raise :class:`UnknownOverrideError` for the first key of ``keys`` that names nothing in ``config``.

    Args:
        config: the configs' merged content as read from disk (before any override).
        keys: override keys, ``#``-paths allowed (``train#dataloader#num_workers``).
        source: how the error names the configs (e.g. their file names).
    """
    all_ids = _ids(config)
    for key in keys:
        if key.startswith("_meta_"):  # metadata.json content, merged by MONAI under _meta_
            continue
        key = _SEP.join(_parts(key))
        missing = _missing_part(config, key)
        if missing is None:
            continue
        parent, siblings = missing
        prefix = f"{parent}{_SEP}" if parent else ""
        close = [prefix + s for s in difflib.get_close_matches(key[len(prefix) :], siblings, n=3, cutoff=0.6)]
        close += [i for i in difflib.get_close_matches(key, all_ids, n=3, cutoff=0.75) if i not in close]
        where = f"'{parent}' has no such entry" if parent else "no such key"
        hint = "did you mean " + " or ".join(f"--{c}" for c in close[:3]) + "?" if close else "check the spelling"
        raise UnknownOverrideError(
            f"unknown override --{key}: {where} in {source}; {hint} (an override that names nothing would "
            "be silently ignored)"
        )


def check_overrides(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Refuse a ``monai.bundle run`` command whose overrides name no key of its config files; return them.

    Outside a ``monai.bundle run`` command (a test, a notebook, ``ConfigWorkflow`` in Python) there is no
    command line to check, and the result is ``{}``.

    Returns:
        the overrides, ``{key: value}``, as Fire parsed them.

    Raises:
        UnknownOverrideError: an override's key (or ``#``-path) is not in the configs.
    """
    command = bundle_command(argv)
    if command is None:
        return {}
    config_file, overrides = command
    if config_file is None:
        return overrides
    config = ConfigParser.load_config_files(config_file)
    files = config_file if isinstance(config_file, (list, tuple)) else [config_file]
    check_override_keys(config, list(overrides), source=", ".join(str(f) for f in files))
    return overrides
