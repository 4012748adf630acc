"""Record what a run actually used: its effective settings in ``metrics.json`` and in TensorBoard.

A results folder must say how it was made: which loss, sampler and network, the class weighting, the seeds,
the data source, the image size, the epochs, and the command-line overrides that changed the defaults. A
bundle lists its settings (resolved config values) and calls :func:`record_run_settings` in ``initialize``::

    run_settings:
      loss: '@loss_name'
      sampler: '@sampler_name'
      network: '@network_name'
      ...
    initialize:
    - "$monai_imbalance.workflow.record_run_settings(@ckpt_dir + '/metrics.json', @run_settings,
                                                    summary_writer=@tb_writer)"

The run-folder switches (``--resume``, ``--overwrite``) are left out of the recorded overrides: they decide what
happens to the folder, not what is trained, so a resumed run records the same settings as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from monai_imbalance.reporting import to_jsonable, update_metrics_json
from monai_imbalance.workflow.distributed import global_rank
from monai_imbalance.workflow.overrides import RUN_SWITCHES, bundle_command

__all__ = ["SETTINGS_KEY", "record_run_settings", "run_overrides"]

SETTINGS_KEY = "settings"
"""Top-level key of the settings in ``metrics.json`` (also the TensorBoard text tag)."""


def run_overrides(argv: list[str] | None = None) -> dict[str, Any]:
    """The overrides of the bundle run this code is part of, without the run-folder switches (``{}`` outside a run).

    The one source of a run's overrides (:func:`~monai_imbalance.workflow.bundle_command`): a ``python -m
    monai.bundle run`` command line, ``monai.bundle.run(...)`` keyword arguments in Python, an ``--args_file``,
    or a :func:`~monai_imbalance.workflow.bundle_run_in_process` block; ``argv`` reads that command line instead.
    """
    command = bundle_command(argv)
    if command is None:
        return {}
    return {key: value for key, value in command[1].items() if key not in RUN_SWITCHES}


def record_run_settings(
    metrics_file: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    summary_writer: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``settings`` plus the command-line ``overrides`` to ``metrics_file`` and to TensorBoard (rank 0 only).

    Args:
        metrics_file: the run's ``metrics.json``; the settings go under ``"settings"`` (other keys are kept).
        settings: the effective settings, ``{name: value}`` (values made JSON-able: tensors become lists).
        summary_writer: a TensorBoard ``SummaryWriter``: a Markdown table as text ``"settings"`` and the
            same values as HParams (:func:`monai_imbalance.handlers.write_hparams`: one session start, nested
            entries as ``overrides/<key>``); ``None`` to skip.
        overrides: the overrides to record; defaults to those of the run (:func:`run_overrides`).

    Returns:
        the recorded settings, ``overrides`` included.
    """
    recorded = to_jsonable(dict(settings))
    recorded["overrides"] = to_jsonable(dict(run_overrides() if overrides is None else overrides))
    if global_rank() != 0:
        return recorded
    update_metrics_json(metrics_file, {SETTINGS_KEY: recorded})
    if summary_writer is not None:
        # imported here: monai_imbalance.handlers imports modules that import this package
        from monai_imbalance.handlers.summary_writer import write_hparams

        rows = [f"| {key} | `{json.dumps(value, sort_keys=True)}` |" for key, value in sorted(recorded.items())]
        summary_writer.add_text(SETTINGS_KEY, "\n".join(["| setting | value |", "|---|---|", *rows]))
        write_hparams(summary_writer, recorded)  # the one HParams session start of the run (nested keys as a/b)
    return recorded
