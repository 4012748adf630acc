"""The allowed values of the bundles' numeric overrides, in one table, checked before any work.

A value out of range used to reach the code that uses it: ``--num_epochs 1.5`` trained 2 epochs,
``--batch_size 0`` failed in PyTorch's ``DataLoader`` 80 lines into a traceback after start-up, ``--learning_rate
-1`` in Adam's constructor. :data:`OVERRIDE_RULES` states, once, what each top-level numeric key of the bundles
accepts; :func:`check_override_values` (called by :func:`~monai_imbalance.workflow.check_overrides`, the first
entry of every bundle's ``initialize``) refuses a value outside it in one line that names the key, the value
and the range. The bundles' ``docs/README.md`` list the same table (:func:`override_rules_markdown`).

Rules apply to the values a run receives, as Fire parses the command line (``1.5`` a float, ``abc`` a string)
or as Python passes them. Integers must be integers (``True`` is not a number here, ``2.0`` is not an integer);
numbers must be finite. A string that starts with ``$``, ``@`` or ``%`` is a config expression, reference or
macro, evaluated later by MONAI, and is not checked here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from monai_imbalance.errors import UserError

__all__ = [
    "OVERRIDE_RULES",
    "OverrideValueError",
    "ValueRule",
    "check_override_value",
    "check_override_values",
    "override_rules_markdown",
]


class OverrideValueError(UserError, ValueError):
    """An override's value is outside the range its key accepts."""


@dataclass(frozen=True)
class ValueRule:
    """What one override accepts.

    Attributes:
        kind: ``"int"`` (an integer) or ``"float"`` (any real number, integers included).
        low, high: the bounds (``None``: unbounded on that side).
        low_open, high_open: whether the bound itself is excluded (``> low`` rather than ``>= low``).
        words: words accepted besides numbers (e.g. ``("auto",)``).
        none: whether ``None`` (``null`` / ``None`` on the command line) is accepted.
        sequence: whether a list of such numbers is accepted too (e.g. ``image_size: [192, 256]``).
        meaning: what the key sets, for the error message and the docs.
    """

    kind: Literal["int", "float"]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    words: tuple[str, ...] = ()
    none: bool = False
    sequence: bool = False
    meaning: str = ""

    def describe(self) -> str:
        """The accepted values in words, e.g. ``an integer >= 1``, ``a number in [0, 1), or auto``."""
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            text = f"{noun} in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
            text += ")" if self.high_open else "]"
        elif self.low is not None:
            text = f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        elif self.high is not None:
            text = f"{noun} {'<' if self.high_open else '<='} {_number(self.high)}"
        else:
            text = noun
        if self.sequence:
            text += " or a list of them"
        extras = [*self.words, *(["null"] if self.none else [])]
        return text + "".join(f", or {word}" for word in extras)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (one value, or a list where :attr:`sequence`) is allowed."""
        if value is None:
            return self.none
        if isinstance(value, str):
            return value in self.words
        if self.sequence and isinstance(value, (list, tuple)):
            return len(value) > 0 and all(self._number_ok(item) for item in value)
        return self._number_ok(value)

    def _number_ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


_COUNT = {"kind": "int", "low": 1}
_SIZE = {"kind": "int", "low": 1, "sequence": True}
_PROBABILITY = {"kind": "float", "low": 0, "high": 1}

OVERRIDE_RULES: dict[str, ValueRule] = {
    # training
    "num_epochs": ValueRule(**_COUNT, meaning="number of training epochs"),
    "batch_size": ValueRule(**_COUNT, meaning="training batch size"),
    "learning_rate": ValueRule("float", low=0, low_open=True, meaning="optimiser's learning rate"),
    "weight_decay": ValueRule("float", low=0, meaning="optimiser's L2 weight decay"),
    "lr_step_size": ValueRule(**_COUNT, meaning="number of epochs between learning-rate decays (StepLR)"),
    "lr_gamma": ValueRule("float", low=0, low_open=True, meaning="learning-rate decay factor (StepLR)"),
    "val_interval": ValueRule(**_COUNT, meaning="number of epochs between validations"),
    "seed": ValueRule("int", low=0, high=2**32 - 1, meaning="seed of the run"),
    "split_seed": ValueRule("int", low=0, high=2**32 - 1, meaning="seed of the data split"),
    "focal_gamma": ValueRule("float", low=0, meaning="focal loss gamma"),
    "focal_alpha": ValueRule(**_PROBABILITY, none=True, meaning="focal loss alpha"),
    "patches_per_image": ValueRule(**_COUNT, meaning="number of training patches per image and epoch"),
    "fov_patch_fraction": ValueRule(**_PROBABILITY, meaning="share of patches centred inside the field of view"),
    # network and input
    "image_size": ValueRule(**_SIZE, meaning="network input size in pixels"),
    "patch_size": ValueRule(**_SIZE, meaning="training patch and sliding-window size"),
    "sw_roi_size": ValueRule(**_SIZE, meaning="sliding-window size"),
    "network_channels": ValueRule(**_SIZE, none=True, meaning="feature widths per network level"),
    "in_channels": ValueRule(**_COUNT, meaning="number of image channels"),
    "dropout": ValueRule("float", low=0, high=1, high_open=True, meaning="dropout probability"),
    "dropout_prob": ValueRule("float", low=0, high=1, high_open=True, meaning="dropout probability"),
    # data
    "num_workers": ValueRule("int", low=0, words=("auto",), meaning="number of data-loading processes"),
    "cache_rate": ValueRule(**_PROBABILITY, words=("auto",), meaning="share of the images kept in memory"),
    "max_items_per_split": ValueRule(**_COUNT, none=True, meaning="number of items per split"),
    "mask_threshold": ValueRule("float", none=True, meaning="mask threshold (foreground = value > mask_threshold)"),
    "ignore_index": ValueRule("int", none=True, meaning="label value excluded from the metrics"),
    # evaluation and inference
    "val_batch_size": ValueRule(**_COUNT, meaning="validation and evaluation batch size"),
    "threshold": ValueRule(**_PROBABILITY, meaning="foreground probability threshold"),
    "sw_batch_size": ValueRule(**_COUNT, meaning="number of sliding windows per forward pass"),
    "sw_overlap": ValueRule("float", low=0, high=1, high_open=True, meaning="overlap of the sliding windows"),
    "mc_samples": ValueRule(**_COUNT, meaning="number of MC-dropout passes per image"),
    "mc_batch_size": ValueRule(**_COUNT, meaning="number of MC-dropout passes run together"),
    "n_boot": ValueRule(**_COUNT, meaning="number of bootstrap replicates"),
}
"""Top-level override -> its :class:`ValueRule`; every numeric override of the bundles has one."""


def _is_config_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("$", "@", "%"))


def check_override_value(key: str, value: Any, rules: Mapping[str, ValueRule] = OVERRIDE_RULES) -> None:
    """Raise :class:`OverrideValueError` when ``value`` is outside ``rules[key]``; other keys pass.

    The message names the override, its value and what it accepts, e.g. ``--num_epochs 1.5: the number of training
    epochs must be an integer >= 1``.
    """
    rule = rules.get(key)
    if rule is None or _is_config_expression(value) or rule.accepts(value):
        return
    shown = "None" if value is None else repr(value) if isinstance(value, str) else str(value)
    raise OverrideValueError(f"--{key} {shown}: the {rule.meaning} must be {rule.describe()}")


def check_override_values(overrides: Mapping[str, Any], rules: Mapping[str, ValueRule] = OVERRIDE_RULES) -> None:
    """:func:`check_override_value` for every ``{key: value}`` of ``overrides`` (``#``-paths are not checked)."""
    for key, value in overrides.items():
        check_override_value(key, value, rules)


def override_rules_markdown(keys: Iterable[str], rules: Mapping[str, ValueRule] = OVERRIDE_RULES) -> str:
    """A Markdown table of the rules of ``keys`` (those with a rule, in the table's order), for a bundle's docs."""
    wanted = set(keys)
    rows = [f"| `--{key}` | {rule.describe()} | {rule.meaning} |" for key, rule in rules.items() if key in wanted]
    return "\n".join(["| override | accepted values | sets |", "|---|---|---|", *rows])
