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

__all__ = ["UserError"]


class UserError(Exception):
    """Base (or mix-in) class of errors whose message alone tells the user what to fix."""
