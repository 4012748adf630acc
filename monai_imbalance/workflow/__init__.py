"""Helpers the bundles call from their configs: run folders, atomic checkpoints, exact resuming, checked overrides,
recorded settings, readable errors, devices and the distributed set-up.

Importing it inside a ``python -m monai.bundle run`` command installs the short error ending of
:mod:`~monai_imbalance.workflow.user_errors` (``error: <message>`` for errors the user can fix).
"""

from .atomic_checkpoint import AtomicCheckpointSaver
from .distributed import default_device, distributed_backend, global_rank, init_distributed
from .output_space import OutputFolderError, check_output_folders, state_bytes, training_checkpoint_bytes
from .override_values import (
    OVERRIDE_RULES,
    OverrideValueError,
    ValueRule,
    check_override_value,
    check_override_values,
    override_rules_markdown,
)
from .overrides import (
    RUN_SWITCHES,
    UnknownOverrideError,
    bundle_command,
    bundle_run_in_process,
    check_override_keys,
    check_overrides,
    explain_override_failure,
    parse_override_value,
)
from .resume_state import ResumeState, randomizable_objects
from .run_checks import (
    COUNT_BASED_LOSSES,
    CheckpointMismatchError,
    EmptyClassError,
    check_batch_size,
    check_checkpoint_fits,
    check_classes_for_loss,
)
from .run_folder import (
    LAST_CHECKPOINT_PREFIX,
    ConflictingSwitchesError,
    CorruptCheckpointError,
    EarlierRunError,
    RunFileNotFoundError,
    checked_checkpoint,
    epoch_checkpoints,
    latest_checkpoint,
    move_aside,
    resume_checkpoint,
    trained_class_names,
)
from .run_settings import SETTINGS_KEY, record_run_settings, run_overrides
from .switches import as_bool
from .user_errors import find_user_error, format_user_error, install_excepthook, install_for_bundle_runs

__all__ = [
    "COUNT_BASED_LOSSES",
    "LAST_CHECKPOINT_PREFIX",
    "OVERRIDE_RULES",
    "RUN_SWITCHES",
    "SETTINGS_KEY",
    "AtomicCheckpointSaver",
    "CheckpointMismatchError",
    "ConflictingSwitchesError",
    "CorruptCheckpointError",
    "EarlierRunError",
    "EmptyClassError",
    "OutputFolderError",
    "OverrideValueError",
    "ResumeState",
    "RunFileNotFoundError",
    "UnknownOverrideError",
    "ValueRule",
    "as_bool",
    "bundle_command",
    "bundle_run_in_process",
    "check_batch_size",
    "check_checkpoint_fits",
    "check_classes_for_loss",
    "check_output_folders",
    "check_override_keys",
    "check_override_value",
    "check_override_values",
    "check_overrides",
    "checked_checkpoint",
    "default_device",
    "distributed_backend",
    "epoch_checkpoints",
    "explain_override_failure",
    "find_user_error",
    "format_user_error",
    "global_rank",
    "init_distributed",
    "install_excepthook",
    "install_for_bundle_runs",
    "latest_checkpoint",
    "move_aside",
    "override_rules_markdown",
    "parse_override_value",
    "randomizable_objects",
    "record_run_settings",
    "resume_checkpoint",
    "run_overrides",
    "state_bytes",
    "trained_class_names",
    "training_checkpoint_bytes",
]

install_for_bundle_runs()
