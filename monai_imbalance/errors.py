"""Errors a person can fix: the marker class that turns a bundle's traceback chain into one readable line.

MONAI's bundle runner evaluates every ``$expression`` of a config inside ``ConfigExpression.evaluate``,
which re-raises any failure as ``RuntimeError: Failed to evaluate ConfigExpression`` chained to the
original one. A wrong override, a missing data file or a corrupt checkpoint thus ends in 75-460 lines of
nested tracebacks, with the sentence that says what to do somewhere in the middle.

An exception class that derives from :class:`UserError` declares "the message alone tells the user what to
fix". The bundle runs install :func:`monai_imbalance.workflow.install_excepthook`, which finds such an
exception anywhere in the ``__cause__``/``__context__`` chain of the failure and prints only
``error: <message>``. Anything else (a bug) keeps its full traceback.

Subclass it together with the builtin that callers catch, so existing ``except ValueError`` code keeps
working::

    class DataCheckError(UserError, ValueError):
        '''The data set does not match what the bundle expects.'''
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "DataDownloadError",
    "DataError",
    "DataNotFoundError",
    "OutputExistsError",
    "UnknownChoiceError",
    "UserError",
    "check_choice",
    "closest_names",
    "data_errors_for_users",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class UserError(Exception):
    """Base (or mix-in) class of errors whose message alone tells the user what to fix."""


class DataError(UserError, ValueError):
    """The data set (its files, labels or options) does not match what was asked for."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data file or folder that was named does not exist."""


class DataDownloadError(UserError, ConnectionError):
    """A public data set could not be downloaded (offline, or the server failed); the message says how to provide a
    local copy instead."""


class OutputExistsError(UserError, FileExistsError):
    """An output (predictions, masks) is already there and the run was not told to replace it."""


class UnknownChoiceError(UserError, ValueError):
    """A setting names none of its choices (a loss, network, sampler, class weighting, ... name)."""


def closest_names(value: Any, known: Iterable[Any], limit: int = 3) -> str:
    """A hint naming the known values closest to a misspelt ``value``: ``" (closest: 'melanoma')"``, or ``""``.

    Similarity is :class:`difflib.SequenceMatcher`'s ratio (at least 0.6), case-insensitive.
    """
    by_lower = {str(k).lower(): str(k) for k in known}
    close = difflib.get_close_matches(str(value).strip().lower(), list(by_lower), n=limit, cutoff=0.6)
    return f" (closest: {', '.join(repr(by_lower[c]) for c in close)})" if close else ""


def check_choice(value: Any, choices: Iterable[Any], what: str) -> None:
    """Raise :class:`UnknownChoiceError` (``unknown <what> 'x'; choose one of [...] (closest: ...)``) unless
    ``value`` is one of ``choices``: the one wording of every name a bundle override selects."""
    choices = list(choices)
    if value not in choices:
        raise UnknownChoiceError(f"unknown {what} {value!r}; choose one of {choices}{closest_names(value, choices)}.")


def data_errors_for_users(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a public data entry point: its ``ValueError``/``FileNotFoundError`` become user errors.

    The data loaders validate at the boundary and word every error for the user (file, row, value, what to
    write instead); a bundle run should end with that sentence, not with a traceback chain. The raised
    :class:`DataError` / :class:`DataNotFoundError` still subclass ``ValueError`` / ``FileNotFoundError``, so
    callers' ``except`` clauses keep working, and the original exception is kept as ``__cause__``.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except UserError:
            raise
        except FileNotFoundError as error:
            raise DataNotFoundError(str(error)) from error
        except ValueError as error:
            raise DataError(str(error)) from error

    return wrapper
