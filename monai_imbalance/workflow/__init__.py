"""Helpers the bundles call from their configs: run folders, atomic checkpoints, exact resuming, checked overrides,
recorded settings, readable errors, devices and the distributed set-up.

Importing it inside a ``python -m monai.bundle run`` command installs the short error ending of
:mod:`~monai_imbalance.workflow.user_errors` (``error: <message>`` for errors the user can fix).
"""

from .atomic_checkpoint import BEST_CHECKPOINT_KEY, AtomicCheckpointSaver, file_sha256
from .distributed import default_device, distributed_backend, global_rank, init_distributed
from .evaluation_folder import (
    EVALUATION_KEY,
    EvaluationExistsError,
    describe_checkpoint,
    evaluation_name,
    finish_evaluation,
    prepare_evaluation,
)
from .overrides import (
    RUN_SWITCHES,
    UnknownOverrideError,
    bundle_command,
    bundle_run_in_process,
    check_override_keys,
    check_overrides,
    parse_override_value,
)
from .resume_state import ResumeState, randomizable_objects
from .run_folder import (
    LAST_CHECKPOINT_PREFIX,
    RUN_FILE_PATTERNS,
    RUNS_KEY,
    ConflictingSwitchesError,
    CorruptCheckpointError,
    EarlierRunError,
    ForeignFilesError,
    RunFileNotFoundError,
    checked_checkpoint,
    earlier_run_files,
    epoch_checkpoints,
    latest_checkpoint,
    move_aside,
    resume_checkpoint,
    start_training_run,
    trained_class_names,
)
from .run_lock import RUN_LOCK_NAME, RunLock, RunLockedError, acquire_run_lock
from .run_settings import SETTINGS_KEY, record_run_settings, run_overrides
from .switches import as_bool
from .user_errors import find_user_error, format_user_error, install_excepthook, install_for_bundle_runs

__all__ = [
    "BEST_CHECKPOINT_KEY",
    "EVALUATION_KEY",
    "LAST_CHECKPOINT_PREFIX",
    "RUNS_KEY",
    "RUN_FILE_PATTERNS",
    "RUN_LOCK_NAME",
    "RUN_SWITCHES",
    "SETTINGS_KEY",
    "AtomicCheckpointSaver",
    "ConflictingSwitchesError",
    "CorruptCheckpointError",
    "EarlierRunError",
    "EvaluationExistsError",
    "ForeignFilesError",
    "ResumeState",
    "RunFileNotFoundError",
    "RunLock",
    "RunLockedError",
    "UnknownOverrideError",
    "acquire_run_lock",
    "as_bool",
    "bundle_command",
    "bundle_run_in_process",
    "check_override_keys",
    "check_overrides",
    "checked_checkpoint",
    "default_device",
    "describe_checkpoint",
    "distributed_backend",
    "earlier_run_files",
    "epoch_checkpoints",
    "evaluation_name",
    "file_sha256",
    "find_user_error",
    "finish_evaluation",
    "format_user_error",
    "global_rank",
    "init_distributed",
    "install_excepthook",
    "install_for_bundle_runs",
    "latest_checkpoint",
    "move_aside",
    "parse_override_value",
    "prepare_evaluation",
    "randomizable_objects",
    "record_run_settings",
    "resume_checkpoint",
    "run_overrides",
    "start_training_run",
    "trained_class_names",
]

install_for_bundle_runs()
