"""Helpers the bundles call from their configs: the model folder's settings, run folders, atomic checkpoints,
exact resuming, checked overrides, recorded settings, readable errors, devices and the distributed set-up.

Importing it inside a ``python -m monai.bundle run`` command installs the short error ending of
:mod:`~monai_imbalance.workflow.user_errors` (``error: <message>`` for errors the user can fix).
"""

from monai_imbalance.switches import as_bool

from .atomic_checkpoint import AtomicCheckpointSaver
from .distributed import default_device, distributed_backend, global_rank, init_distributed
from .model_settings import (
    DATA_KEYS,
    DEPENDENT_SETTINGS,
    EVALUATION_MAY_DIFFER,
    MODEL_KEYS,
    MODEL_SETTINGS_FILE,
    RESUME_MAY_CHANGE,
    SPLIT_IDS_FILE,
    ModelSettingsEntry,
    ModelSettingsMismatchError,
    check_evaluation_items,
    check_model_settings,
    check_resume,
    describe_transforms,
    item_ids,
    model_setting,
    read_model_settings,
    read_split_ids,
    record_model_settings,
    split_identity,
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
from .user_errors import find_user_error, format_user_error, install_excepthook, install_for_bundle_runs

__all__ = [
    "DATA_KEYS",
    "DEPENDENT_SETTINGS",
    "EVALUATION_MAY_DIFFER",
    "LAST_CHECKPOINT_PREFIX",
    "MODEL_KEYS",
    "MODEL_SETTINGS_FILE",
    "RESUME_MAY_CHANGE",
    "RUN_SWITCHES",
    "SETTINGS_KEY",
    "SPLIT_IDS_FILE",
    "AtomicCheckpointSaver",
    "ConflictingSwitchesError",
    "CorruptCheckpointError",
    "EarlierRunError",
    "ModelSettingsEntry",
    "ModelSettingsMismatchError",
    "ResumeState",
    "RunFileNotFoundError",
    "UnknownOverrideError",
    "as_bool",
    "bundle_command",
    "bundle_run_in_process",
    "check_evaluation_items",
    "check_model_settings",
    "check_override_keys",
    "check_overrides",
    "check_resume",
    "checked_checkpoint",
    "default_device",
    "describe_transforms",
    "distributed_backend",
    "epoch_checkpoints",
    "find_user_error",
    "format_user_error",
    "global_rank",
    "init_distributed",
    "install_excepthook",
    "install_for_bundle_runs",
    "item_ids",
    "latest_checkpoint",
    "model_setting",
    "move_aside",
    "parse_override_value",
    "randomizable_objects",
    "read_model_settings",
    "read_split_ids",
    "record_model_settings",
    "record_run_settings",
    "resume_checkpoint",
    "run_overrides",
    "split_identity",
    "trained_class_names",
]

install_for_bundle_runs()
