"""The allowed values of the bundles' numeric overrides: one table, checked before any work, listed in the docs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import (
    OVERRIDE_RULES,
    OverrideValueError,
    ValueRule,
    check_override_value,
    check_override_values,
    override_rules_markdown,
)

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [  # the inputs of issue 19: each ran for 74-81 lines, or trained 2 epochs for 1.5
        ("num_epochs", 1.5, "--num_epochs 1.5: the number of training epochs must be an integer >= 1"),
        ("num_epochs", 0, "--num_epochs 0: the number of training epochs must be an integer >= 1"),
        ("num_epochs", -1, "--num_epochs -1: "),
        ("batch_size", 0, "--batch_size 0: the training batch size must be an integer >= 1"),
        ("batch_size", -4, "--batch_size -4: "),
        ("learning_rate", -1, "--learning_rate -1: the optimiser's learning rate must be a number > 0"),
        ("learning_rate", "abc", "--learning_rate 'abc': the optimiser's learning rate must be a number > 0"),
        ("image_size", -32, "--image_size -32: the network input size in pixels must be an integer >= 1 or a list"),
        ("image_size", [256, 0], "--image_size [256, 0]: "),
        ("image_size", [], "--image_size []: "),
        ("num_epochs", True, "--num_epochs True: "),  # Fire reads a bare --num_epochs as True
        ("num_epochs", 2.0, "--num_epochs 2.0: "),  # integers are integers
        ("learning_rate", math.nan, "--learning_rate nan: "),
        ("learning_rate", math.inf, "--learning_rate inf: "),
        ("dropout_prob", 1.0, "--dropout_prob 1.0: the dropout probability must be a number in [0, 1)"),
        ("seed", 2**32, "--seed 4294967296: the seed of the run must be an integer in [0, 4294967295]"),
        ("num_workers", "many", "--num_workers 'many': the number of data-loading processes must be an integer >= 0, "),
        ("max_items_per_split", 0, "--max_items_per_split 0: "),
        ("num_epochs", None, "--num_epochs None: "),
    ],
)
def test_values_out_of_range_are_refused_in_one_line(key, value, message):
    with pytest.raises(OverrideValueError) as error:
        check_override_value(key, value)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_epochs", 1),
        ("num_epochs", np.int64(3)),
        ("learning_rate", 1e-4),
        ("learning_rate", 1),  # an integer is a number
        ("weight_decay", 0),
        ("image_size", 224),
        ("image_size", [192, 256]),
        ("num_workers", "auto"),
        ("num_workers", 0),
        ("cache_rate", 0.0),
        ("cache_rate", "auto"),
        ("max_items_per_split", None),
        ("focal_alpha", None),
        ("seed", 2**32 - 1),
        ("num_epochs", "$2 * 5"),  # a config expression: MONAI evaluates it later
        ("image_size", "@patch_size"),
        ("loss_name", "anything"),  # no rule: not a numeric override
        ("train#trainer#max_epochs", -1),  # #-paths are not checked
    ],
)
def test_values_in_range_pass(key, value):
    check_override_value(key, value)


def test_check_override_values_stops_at_the_first_bad_one():
    check_override_values({"num_epochs": 2, "batch_size": 4, "loss_name": "focal"})
    with pytest.raises(OverrideValueError, match="--batch_size 0"):
        check_override_values({"num_epochs": 2, "batch_size": 0})


def test_rule_descriptions_and_bounds():
    rule = ValueRule("float", low=0, high=1, low_open=True, high_open=True, words=("auto",), none=True, meaning="m")
    assert rule.describe() == "a number in (0, 1), or auto, or null"
    assert [rule.accepts(v) for v in (0, 0.5, 1, None, "auto", "x")] == [False, True, False, True, True, False]
    assert ValueRule("int", high=3).describe() == "an integer <= 3"
    assert ValueRule("int").accepts(-7) and not ValueRule("int").accepts(1.0)


def _configs(bundle: Path) -> dict:
    merged: dict = {}
    for name in ("train", "evaluate", "inference"):
        merged.update(yaml.safe_load((bundle / "configs" / f"{name}.yaml").read_text()))
    return merged


NOT_OVERRIDES = {"rank"}  # set by multi_gpu_train.yaml, not by users


@pytest.mark.parametrize("bundle", sorted(path.name for path in BUNDLES.iterdir() if path.is_dir()))
def test_every_numeric_key_of_every_bundle_has_a_rule_its_default_passes_and_the_docs_list(bundle):
    config = _configs(BUNDLES / bundle)
    numeric = {
        key
        for key, value in config.items()
        if (isinstance(value, (int, float)) and not isinstance(value, bool))
        or (isinstance(value, list) and value and all(isinstance(v, int) for v in value))
    }
    assert numeric - NOT_OVERRIDES - set(OVERRIDE_RULES) == set(), "numeric overrides without a documented range"
    for key in set(OVERRIDE_RULES) & set(config):
        check_override_value(key, config[key])  # the defaults are allowed values
    readme = (BUNDLES / bundle / "docs" / "README.md").read_text()
    assert override_rules_markdown(set(config)) in readme
    for key in set(OVERRIDE_RULES) & set(config):
        assert f"| `--{key}` | {OVERRIDE_RULES[key].describe()} |" in readme
