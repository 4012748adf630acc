"""Short endings for user errors: ``error: <message>`` without tracebacks; bugs keep their traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from monai_imbalance.data import class_weights, get_sampler
from monai_imbalance.errors import UnknownChoiceError, UserError
from monai_imbalance.handlers import ThresholdSelector
from monai_imbalance.losses import get_loss
from monai_imbalance.networks import get_network, get_segmentation_network
from monai_imbalance.workflow import find_user_error, format_user_error

SCRIPT = textwrap.dedent(
    """
    import sys
    from monai_imbalance.errors import UserError
    from monai_imbalance.workflow import install_excepthook

    class DataCheckError(UserError, ValueError):
        pass

    install_excepthook()

    def evaluate():  # what MONAI's ConfigExpression does with every failing expression
        try:
            {body}
        except Exception as e:
            raise RuntimeError("Failed to evaluate ConfigExpression: $@datalists") from e

    try:
        evaluate()
    except RuntimeError as e:
        raise RuntimeError("Failed to evaluate ConfigExpression: $@train#trainer") from e
    """
)


def _run(body: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(body=body)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_a_user_error_deep_in_the_chain_ends_the_run_in_one_line():
    result = _run("raise DataCheckError('datalist.csv, row 7: unknown label melanomaa')")
    assert result.returncode == 1
    assert result.stderr == "error: datalist.csv, row 7: unknown label melanomaa\n"


def test_other_errors_keep_their_traceback():
    result = _run("raise ZeroDivisionError('a bug')")
    assert result.returncode == 1
    assert result.stderr.count("Traceback") == 3 and "ZeroDivisionError: a bug" in result.stderr


def test_the_full_traceback_on_request():
    result = _run("raise DataCheckError('bad row')", MONAI_IMBALANCE_TRACEBACK="1")
    assert "Traceback" in result.stderr and "DataCheckError: bad row" in result.stderr


def test_installed_for_monai_bundle_runs_only():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, monai_imbalance; print(getattr(sys.excepthook, '_monai_imbalance', False))",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip() == "False"  # importing the library elsewhere leaves sys.excepthook alone


def test_find_user_error_follows_cause_and_context():
    class Mine(UserError, FileNotFoundError):
        pass

    try:
        try:
            raise Mine("x.png cannot be read")
        except Mine:
            raise KeyError("during handling")  # noqa: B904  (__context__, not __cause__, is what is tested)
    except KeyError as e:
        outer = RuntimeError("Failed to evaluate")
        outer.__cause__ = e
    found = find_user_error(outer)
    assert isinstance(found, Mine) and format_user_error(found) == "error: x.png cannot be read\n"
    assert find_user_error(RuntimeError("plain")) is None


@pytest.mark.parametrize("message", ["", "   "])
def test_an_empty_message_names_the_class(message):
    class EmptyError(UserError):
        pass

    assert format_user_error(EmptyError(message)) == "error: EmptyError\n"


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: get_loss("lmf_oficial"), "unknown loss name 'lmf_oficial'; .* \\(closest: 'lmf_official'"),
        (lambda: get_network("densenet12"), "unknown network 'densenet12'; .* \\(closest: 'densenet121'"),
        (lambda: get_segmentation_network("unett"), "unknown segmentation network 'unett'; .* \\(closest: 'unet'"),
        (lambda: get_sampler("batch_balance", [0, 1], 2), "unknown sampler 'batch_balance'; .* 'batch_balanced'"),
        (lambda: class_weights([3, 1], method="inverse_sqr"), "unknown class weighting method .* 'inverse_sqrt'"),
        (lambda: ThresholdSelector("m.json", method="youdenn"), "unknown threshold method 'youdenn'; .* 'youden'"),
    ],
)
def test_a_misspelt_name_of_an_override_is_a_user_error_naming_the_closest(build, expected):
    """What --loss_name, --network_name, --sampler_name, --class_weighting and --threshold_method select: a user
    error (one line at the end of a bundle run) that is still a ValueError for callers."""
    with pytest.raises(UnknownChoiceError, match=expected) as caught:
        build()
    assert isinstance(caught.value, ValueError)


def test_a_user_error_from_a_dataloader_worker_is_found_in_its_text():
    """Issue 19: PyTorch re-raises a worker's failure as the outermost type (MONAI's RuntimeError) with the
    worker's traceback as text; the user error named there still ends the run in its own line(s)."""
    import pytest
    import torch
    from monai.data import Dataset
    from monai.transforms import Lambda

    from monai_imbalance.data import DataCheckError
    from monai_imbalance.workflow import find_user_error

    def fail(_):
        raise DataCheckError(["first problem", "second problem"])

    loader = torch.utils.data.DataLoader(Dataset([0], transform=Lambda(fail)), num_workers=1)
    with pytest.raises(RuntimeError) as caught:
        next(iter(loader))
    assert "DataLoader worker process" in str(caught.value)
    found = find_user_error(caught.value)
    assert str(found) == "the data check found 2 problem(s):\n  - first problem\n  - second problem"
    assert find_user_error(RuntimeError("Caught RuntimeError in DataLoader worker process 0.\nValueError: x")) is None
