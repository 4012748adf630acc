"""Overrides of a bundle run: read them back from the run itself and refuse misspelt keys and bad values.

``monai.bundle run`` merges every ``--key value`` into the config, and a key that names nothing simply adds a
new, unused entry: ``--loss_nmae focal`` trains the default loss without a word. The config cannot tell an
override from its own content after the merge, so :func:`bundle_command` reads the overrides back from the
call that made the workflow, and :func:`check_overrides` (the first entry of the bundles' ``initialize``)
compares each override's key, ``#``-paths included, against the config files as they are on disk. A key that
names nothing stops the run before any work, with the closest existing keys (:mod:`difflib`); a value outside
its documented range (:data:`~monai_imbalance.workflow.override_values.OVERRIDE_RULES`) stops it too, and so does
``--key None`` where the config holds another value (MONAI drops overrides of ``None`` without a word).

Where the overrides come from, first match wins:

1. a :func:`bundle_run_in_process` block (``ConfigWorkflow(...)`` made directly in Python, as
   ``monai_imbalance.compare`` does);
2. the call of ``monai.bundle.scripts.run``, ``run_workflow`` or ``create_workflow`` that is running this code
   (found on the call stack, by its code object): its keyword arguments merged over its ``args_file`` with
   MONAI's own ``update_kwargs``, exactly what the workflow received. This one source serves
   ``python -m monai.bundle run ...`` (Fire calls ``run``), ``monai.bundle.run(config_file=..., key=value)``
   in Python, and ``--args_file``, so all three are checked alike;
3. ``sys.argv``, when it is a ``python -m monai.bundle run`` command line (code that runs outside those calls,
   e.g. the error hook installed at import).

One kind of new key is accepted: an entry of a dict that is empty in the config, such as
``--loss_kwargs#delta 0.2`` under ``loss_kwargs: {}`` (free-form keyword arguments).

MONAI applies the overrides in the workflow's constructor, before ``initialize``: an override under a parent key
that does not exist (``--format_kwargs#knee_foldr#x 1``) fails there with ``KeyError: 'query key: knee_foldr'``.
:func:`explain_override_failure` turns that failure into the same :class:`UnknownOverrideError` (the error hook
and :func:`~monai_imbalance.workflow.find_user_error` call it).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import difflib
import inspect
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fire.parser import DefaultParseValue
from monai.bundle import ConfigParser

from monai_imbalance.errors import UserError
from monai_imbalance.workflow.override_values import OverrideValueError, check_override_values

__all__ = [
    "RUN_SWITCHES",
    "UnknownOverrideError",
    "bundle_command",
    "bundle_run_in_process",
    "check_override_keys",
    "check_overrides",
    "command_line_flags",
    "explain_override_failure",
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


def command_line_flags(tokens: Sequence[str]) -> dict[str, Any]:
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


def _monai_run_codes() -> dict[Any, tuple[str, bool]]:
    """Code objects of MONAI's run calls -> (name of their ``**kwargs``, whether ``config_file`` is a parameter)."""
    from monai.bundle import scripts

    return {
        scripts.run.__code__: ("override", True),
        scripts.run_workflow.__code__: ("kwargs", False),
        scripts.create_workflow.__code__: ("kwargs", True),
    }


_CACHE_ATTRIBUTE = "_monai_imbalance_run_arguments"  # set on the workflow: its run call's arguments


def _workflow_codes() -> set[Any]:
    from monai.bundle import ConfigWorkflow

    return {getattr(ConfigWorkflow, name).__code__ for name in ("initialize", "run", "finalize", "_run_expr")}


def _run_call_arguments(frame: Any) -> dict[str, Any] | None:
    """What the innermost ``monai.bundle`` run call on ``frame``'s stack gave its workflow, or ``None``.

    ``run``, ``run_workflow`` and ``create_workflow`` merge their keyword arguments over the ``args_file``'s with
    ``update_kwargs`` and pass the result to the workflow, which applies every entry that is not one of its own
    arguments as an override; the same merge is made here from the call's locals (keeping the overrides of
    ``None``, which MONAI leaves out, so that :func:`check_overrides` can refuse them).
    The result is kept on the ``ConfigWorkflow`` running this code, so that its ``run`` and ``finalize`` find it
    when they are called after ``create_workflow`` returned (as ``create_workflow(...).run()`` does).
    """
    from monai.bundle.scripts import update_kwargs

    codes = _monai_run_codes()
    workflow_codes = _workflow_codes()
    workflow = None
    while frame is not None:
        if workflow is None and frame.f_code in workflow_codes:
            workflow = frame.f_locals.get("self")
            if hasattr(workflow, _CACHE_ATTRIBUTE):
                return dict(getattr(workflow, _CACHE_ATTRIBUTE))
        found = codes.get(frame.f_code)
        if found is not None:
            kwargs_name, has_config_file = found
            local = frame.f_locals
            args_file = local.get("args_file")
            if isinstance(args_file, Mapping):  # update_kwargs updates a dict in place
                args_file = copy.deepcopy(dict(args_file))
            named = {"config_file": local.get("config_file")} if has_config_file else {}
            # None values kept, unlike update_kwargs's default (MONAI drops them): check_overrides refuses an
            # override of None that MONAI would silently ignore; run arguments of None are MONAI's defaults
            run_arguments = _run_arguments()
            given = {**named, **dict(local.get(kwargs_name) or {})}
            given = {k: v for k, v in given.items() if v is not None or k not in run_arguments}
            arguments = update_kwargs(args_file, ignore_none=False, **given)
            if workflow is not None:
                setattr(workflow, _CACHE_ATTRIBUTE, dict(arguments))
            return arguments
        frame = frame.f_back
    return None


def _split_run_arguments(args: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    run_arguments = _run_arguments()
    return args.get("config_file"), {key: value for key, value in args.items() if key not in run_arguments}


def bundle_command(argv: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]] | None:
    """``(config_file, overrides)`` of the bundle run this code is part of, else ``None``.

    With ``argv``: that ``python -m monai.bundle run ...`` command line, parsed as Fire parses it. Without: a
    :func:`bundle_run_in_process` block's config files and overrides, else those of the ``monai.bundle`` run
    call on the call stack (``run``, ``run_workflow``, ``create_workflow``: the command line, Python keyword
    arguments and ``--args_file`` alike), else ``sys.argv`` when it is a ``monai.bundle run`` command. Arguments
    of ``run`` itself (``--config_file``, ``--meta_file``, ``--logging_file``, ...) are not overrides; those of
    an ``--args_file`` come first and the call's replace them, as in ``monai.bundle.scripts.update_kwargs``.
    """
    if argv is None:
        if (in_process := _IN_PROCESS_RUN.get()) is not None:
            return in_process[0], dict(in_process[1])
        if (call := _run_call_arguments(sys._getframe())) is not None:
            return _split_run_arguments(call)
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or Path(argv[0]).parts[-3:] != ("monai", "bundle", "__main__.py"):
        return None
    if argv[1] not in ("run", "run_workflow"):
        return None
    flags = command_line_flags(argv[2:])
    args: dict[str, Any] = {}
    if flags.get("args_file"):
        args.update(ConfigParser.load_config_file(str(flags["args_file"])))
    args.update(flags)
    return _split_run_arguments(args)


def explain_override_failure(error: BaseException) -> UnknownOverrideError | None:
    """The :class:`UnknownOverrideError` behind MONAI's failure to apply an override, or ``None``.

    ``ConfigWorkflow`` applies the overrides in its constructor with ``ConfigParser.update``; an override under a
    parent that does not exist (``--format_kwargs#knee_foldr#x 1``) ends there in ``KeyError: 'query key:
    knee_foldr'`` and a 46-line traceback. When ``error``'s traceback runs through that ``update`` inside a
    workflow constructor, the key being set is checked against the workflow's config files, which names the
    missing part and the closest existing keys.
    """
    from monai.bundle import ConfigWorkflow

    if not isinstance(error, (KeyError, IndexError, ValueError, TypeError)):
        return None
    key, config_file = None, None
    traceback = error.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code is ConfigWorkflow.__init__.__code__:
            config_file = traceback.tb_frame.f_locals.get("config_file")
        elif code is ConfigParser.update.__code__:
            key = traceback.tb_frame.f_locals.get("k")
        traceback = traceback.tb_next
    if key is None or config_file is None:
        return None
    try:
        check_override_keys(ConfigParser.load_config_files(config_file), [str(key)], source=_source(config_file))
    except UnknownOverrideError as unknown:
        unknown.__cause__ = error
        return unknown
    return None


def _source(config_file: Any) -> str:
    files = config_file if isinstance(config_file, (list, tuple)) else [config_file]
    return ", ".join(str(f) for f in files)


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
    """Refuse a bundle run whose overrides name no key of its config files or hold a value out of range; return
    the overrides.

    The overrides are those of :func:`bundle_command`: a command line, ``monai.bundle.run(...)`` keyword
    arguments, an ``--args_file``, or a :func:`bundle_run_in_process` block. Outside a bundle run (a test, a
    notebook parsing a config) there is nothing to check, and the result is ``{}``.

    Returns:
        the overrides, ``{key: value}``, as the workflow received them.

    Raises:
        UnknownOverrideError: an override's key (or ``#``-path) is not in the configs.
        OverrideValueError: a top-level override's value is outside its range
            (:data:`~monai_imbalance.workflow.override_values.OVERRIDE_RULES`).
    """
    command = bundle_command(argv)
    if command is None:
        return {}
    config_file, overrides = command
    if config_file is not None:
        config = ConfigParser.load_config_files(config_file)
        check_override_keys(config, list(overrides), source=_source(config_file))
        _check_no_ignored_none(config, overrides)
    check_override_values(overrides)
    return overrides


def _check_no_ignored_none(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Refuse ``--key None`` where the config's value is not ``None``: ``monai.bundle run`` drops every override
    whose value is ``None`` (``update_kwargs(ignore_none=True)``), so the run would silently keep the default."""
    for key, value in overrides.items():
        if value is not None or key.startswith("_meta_"):
            continue
        node: Any = config
        for part in _parts(key):
            node = node[int(part)] if isinstance(node, list) else node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            raise OverrideValueError(
                f"--{key} None: monai.bundle run ignores an override whose value is None and would keep the config's "
                f"{node!r}; write --{key} '$None' to set None"
            )
