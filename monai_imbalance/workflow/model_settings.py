"""The model folder describes its model: what training decided, written once, read by every later step.

Training is the only step that decides. At its start (``initialize``, rank 0, after every check and after
``--overwrite true`` moved the earlier run aside) a bundle writes into its checkpoint folder::

    <ckpt_dir>/model_settings.json   {"model": {...}, "data": {...}, "training": {...}, "format_version": 1,
                                      "monai_imbalance_version": "..."}
    <ckpt_dir>/split_ids.json        {"train": [sorted item ids], "val": [...], "test": [...]}
    <ckpt_dir>/run_args.json         {"config_file": [absolute paths], "<override>": value, ...}

and keeps the same settings inside every "last" checkpoint (entry ``"model_settings"``, see
:class:`ModelSettingsEntry`). ``model.pt`` stays a bare ``state_dict`` (what ``monai.bundle ckpt_export`` and the
Model Zoo expect).

- ``"model"``: the resolved settings that define the network and its input (:data:`MODEL_KEYS`: network and its
  options, input channels, image or patch size, class names, dropout, head, the description of the image
  pre-processing from :func:`describe_transforms`).
- ``"data"``: the identity of its data (:data:`DATA_KEYS`: format, source folder, format options, split seed
  and fractions, subset size, and ``"splits"``: the number of items and the SHA-256 of the sorted item ids of
  each split, :func:`split_identity`). The ids themselves go to ``split_ids.json``, so that an evaluation can
  count the training items it would score.
- ``"training"``: the run's training settings (the bundle's ``run_settings``: loss, sampler, batch size, ...).

``run_args.json`` is the run's command, for resuming it (:mod:`~monai_imbalance.workflow.run_args`).

Who reads it:

- **evaluation and inference** (:func:`model_setting`) take every key of ``"model"`` and ``"data"`` from the
  folder unless the command line overrides it; :func:`check_model_settings` refuses an override that contradicts
  a model-defining setting (:data:`MODEL_KEYS` less :data:`EVALUATION_MAY_DIFFER`), in one line naming the key
  and both values, and an evaluation whose data has other class names; :func:`check_evaluation_items` refuses
  to score items of the training split (with their count);
- **resume** (:func:`settings_of_run` with ``resume_path``) compares the whole description with the
  recorded one and refuses any difference but those of :data:`RESUME_MAY_CHANGE`, before anything is written;
  the refusal names the ``--args_file`` command that resumes with the recorded settings.

A model folder written by monai-imbalance 0.2 has no ``model_settings.json``: its evaluation and inference fall
back to the config's values and the command line's, with a warning saying how to proceed, and its resume is not
checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_imbalance.errors import UserError
from monai_imbalance.reporting import to_jsonable
from monai_imbalance.workflow.distributed import global_rank
from monai_imbalance.workflow.run_args import resume_command_hint, write_run_args

__all__ = [
    "DATA_KEYS",
    "DEPENDENT_SETTINGS",
    "EVALUATION_MAY_DIFFER",
    "MODEL_KEYS",
    "MODEL_SETTINGS_FILE",
    "RESUME_MAY_CHANGE",
    "SPLIT_IDS_FILE",
    "ModelSettingsEntry",
    "ModelSettingsMismatchError",
    "check_evaluation_items",
    "check_model_settings",
    "check_resume",
    "describe_transforms",
    "item_ids",
    "model_setting",
    "read_model_settings",
    "read_split_ids",
    "record_model_settings",
    "settings_of_run",
    "split_identity",
]

logger = logging.getLogger(__name__)

MODEL_SETTINGS_FILE = "model_settings.json"
"""The description of the model, in its checkpoint folder (other tools rely on this name)."""

SPLIT_IDS_FILE = "split_ids.json"
"""The sorted item ids of each split of the training data, beside :data:`MODEL_SETTINGS_FILE`."""

FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------------------------
# The lists: what defines a model, what identifies its data, and what may differ. The one place they are kept.
# ----------------------------------------------------------------------------------------------------------------

MODEL_KEYS: tuple[str, ...] = (
    "network_name",  # the architecture (get_network / get_segmentation_network name)
    "in_channels",  # input channels
    "intensity",  # pixel values to [0, 1]: auto (by the stored type) | minmax | mammogram
    "image_size",  # network input size (classification: side; segmentation: [rows, columns])
    "patch_size",  # training patch and default sliding-window size (retinal vessels)
    "class_names",  # classification: the outputs, in index order
    "dropout_prob",  # classification: dropout before the classifier
    "dropout",  # segmentation: dropout in every unit
    "head",  # classification: linear | cosine
    "network_channels",  # segmentation: feature widths per level
    "network_kwargs",  # segmentation: other constructor arguments
    "threshold",  # segmentation: foreground probability threshold of masks and metrics (the best epoch's)
    "preprocessing",  # describe_transforms() of the image pre-processing (intensity rule, resizing)
)
"""Keys of the ``"model"`` section: the settings that rebuild the same network and pre-processing. Evaluation and
inference take them from the model folder; an override that contradicts one is refused, except those of
:data:`EVALUATION_MAY_DIFFER`. A bundle records the ones it has."""

DATA_KEYS: tuple[str, ...] = (
    "data_format",  # the loader (medmnist, isic2018_task3, class_folders, csv, dsb2018, drive, ...)
    "dataset_dir",  # where the data was read
    "data_kwargs",  # the format's options ("download" is left out of comparisons)
    "split_seed",  # seeds the split of data without one
    "split_fractions",  # the split of data without one
    "max_items_per_split",  # the seeded subset per split
    "mask_threshold",  # segmentation: how mask files were read
)
"""Keys of the ``"data"`` section (besides ``"splits"``, the count and id hash of each split). Evaluation and
inference take them from the model folder by default, so that ``test`` is the test split of the training's data;
an override may change them (another data set, another split): :func:`check_evaluation_items` then guards
against scoring training items."""

EVALUATION_MAY_DIFFER: tuple[str, ...] = (
    "threshold",  # an analysis at another foreground threshold (the folder's is the default)
    *DATA_KEYS,  # another data set or split (the training items are still refused)
    # not recorded, free in evaluation and inference: how it runs and where it writes
    "batch_size",
    "val_batch_size",
    "mc_dropout",
    "mc_samples",
    "mc_batch_size",
    "sw_roi_size",
    "sw_overlap",
    "sw_batch_size",
    "eval_split",
    "ckpt_path",
    "use_threshold",
    "input_dir",
    "output_dir",
    "log_dir",
    "progress_bar",
    "num_workers",
    "cache_rate",
    "check_data_files",
    "jpeg_draft",
    "device",
    "amp",
    "seed",
    "overwrite",
)
"""What an evaluation or inference may set differently from training (documentation, and the exceptions to the
refusal of :data:`MODEL_KEYS` overrides)."""

RESUME_MAY_CHANGE: tuple[str, ...] = (
    "num_epochs",  # more (or fewer) epochs; never fewer than the resumed checkpoint's epoch
    "dataset_dir",  # the data moved: its identity (ids of every split) is still compared
    "progress_bar",
    "num_workers",
    "cache_rate",
    "check_data_files",
    "device",
)
"""What ``--resume true`` accepts when it differs from the recorded run; any other difference in the model, the
data identity or the training settings is refused, naming it."""

DEPENDENT_SETTINGS: dict[str, tuple[str, ...]] = {"data_kwargs": ("data_format",)}
"""Recorded settings that hold only together with others: the folder's ``data_kwargs`` are the options of its
``data_format``, so an evaluation of another format takes the config's (:func:`model_setting`'s ``when``)."""

_IGNORED_DATA_KWARGS = ("download",)  # fetching a missing file changes nothing about the data
_SECTIONS = ("model", "data", "training")


class ModelSettingsMismatchError(UserError, ValueError):
    """A setting contradicts what the model folder records (an override, a resumed run, the evaluated items)."""


# ----------------------------------------------------------------------------------------------------------------
# Describing a model and its data
# ----------------------------------------------------------------------------------------------------------------


def item_ids(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ids of a datalist's items, sorted: each item's ``"id"``, else its ``"image"`` path."""
    ids = []
    for item in items:
        value = item.get("id")
        if value in (None, ""):
            value = item.get("image")
        if not isinstance(value, (str, os.PathLike, int)):
            raise ValueError(f"an item without an 'id' (or an image path) cannot be identified: keys {sorted(item)}")
        ids.append(str(value))
    return sorted(ids)


def _hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def split_identity(datalists: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{split: {"count": n, "sha256": hex}}``: SHA-256 of the split's sorted ids joined by newlines."""
    identity = {}
    for split, items in datalists.items():
        ids = item_ids(items)
        identity[str(split)] = {"count": len(ids), "sha256": _hash(ids)}
    return identity


_DESCRIBED = (str, int, float, bool, type(None))
_SKIPPED_ATTRIBUTES = ("keys", "allow_missing_keys", "dtype", "draft_size", "R", "meta_keys", "meta_key_postfix")


def _plain(value: Any) -> Any:
    """``value`` as JSON if it is a scalar, an enum or a flat sequence of scalars, else ``None`` (not described)."""
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # MONAI's string enums
        return value.value
    if isinstance(value, _DESCRIBED):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _DESCRIBED) or hasattr(v, "value") for v in value):
        return [_plain(v) for v in value]
    return None


def _describe(transform: Any, depth: int = 0) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for name, value in vars(transform).items():
        if name.startswith("_") or name in _SKIPPED_ATTRIBUTES:
            continue
        plain = _plain(value)
        if plain is not None:
            described[name] = plain
        elif depth == 0 and type(value).__module__.startswith(("monai.", "monai_imbalance.")) and vars(value):
            inner = _describe(value, depth + 1)
            described.update({f"{name}.{key}": v for key, v in inner.items()})
    return described


def describe_transforms(transforms: Any) -> list[dict[str, Any]]:
    """A JSON description of the deterministic image pre-processing: per transform that reads ``"image"``, its
    class name and its plain settings (scalars, enums, flat tuples; those of the array transform it wraps too).

    ``transforms``: a ``Compose`` or a sequence of transforms. Decoding options that do not change what the
    network sees beyond rounding (``draft_size``), dtypes and the keys are left out.
    """
    transforms = getattr(transforms, "transforms", transforms)
    description = []
    for transform in transforms:
        keys = getattr(transform, "keys", ("image",))
        if "image" not in tuple(keys):
            continue
        description.append({"transform": type(transform).__name__, **_describe(transform)})
    return description


def _comparable_data(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if isinstance(data.get("data_kwargs"), Mapping):
        data["data_kwargs"] = {k: v for k, v in data["data_kwargs"].items() if k not in _IGNORED_DATA_KWARGS}
    return data


def build_model_settings(
    *,
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    datalists: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The content of ``model_settings.json`` (see the module docstring); keys outside :data:`MODEL_KEYS` /
    :data:`DATA_KEYS` are refused, so that a new setting is classified here first."""
    from monai_imbalance import __version__

    for section, given, known in (("model", model, MODEL_KEYS), ("data", data, DATA_KEYS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"{unknown} are not {section} keys of model_settings.MODEL_KEYS / DATA_KEYS; add them")
    data_section = to_jsonable(dict(data))
    if datalists is not None:
        data_section["splits"] = split_identity(datalists)
    return {
        "format_version": FORMAT_VERSION,
        "monai_imbalance_version": __version__,
        "model": to_jsonable(dict(model)),
        "data": data_section,
        "training": to_jsonable(dict(training or {})),
    }


# ----------------------------------------------------------------------------------------------------------------
# Reading and writing
# ----------------------------------------------------------------------------------------------------------------


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")
    os.replace(temporary, path)  # whole files only


def read_model_settings(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The content of ``<ckpt_dir>/model_settings.json``, or ``None`` when there is none (a 0.2 model folder)."""
    path = Path(ckpt_dir) / MODEL_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelSettingsMismatchError(f"{path} cannot be read ({error}); restore it or train again") from error
    return content


def read_split_ids(ckpt_dir: str | os.PathLike) -> dict[str, list[str]] | None:
    """``{split: sorted ids}`` of ``<ckpt_dir>/split_ids.json``, or ``None`` when there is none."""
    path = Path(ckpt_dir) / SPLIT_IDS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _lookup(settings: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    for section in ("model", "data"):
        if key in settings.get(section, {}):
            return True, settings[section][key]
    return False, None


def model_setting(
    ckpt_dir: str | os.PathLike, key: str, default: Any = None, *, when: Mapping[str, Any] | None = None
) -> Any:
    """The value of ``key`` recorded in ``<ckpt_dir>/model_settings.json`` (section ``"model"`` or ``"data"``), else
    ``default`` (the config's value: a folder without the file, or a key it does not record).

    The evaluation and inference configs read every recorded key through it, e.g.
    ``image_size: "$monai_imbalance.workflow.model_setting(@ckpt_dir, 'image_size', default=224)"``; a
    command-line override replaces the whole expression, and :func:`check_model_settings` judges it.

    Args:
        when: ``{other key: this run's value}``: the recorded value applies only where the folder records the same
            values for these keys (:data:`DEPENDENT_SETTINGS`: the folder's ``data_kwargs`` with its ``data_format``).
    """
    settings = read_model_settings(ckpt_dir)
    if settings is None:
        return default
    for other, value in (when or {}).items():
        found, recorded = _lookup(settings, other)
        if found and not _same(recorded, value):
            return default
    found, value = _lookup(settings, key)
    return value if found else default


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON; a size ``n`` equals ``[n, n]`` (MONAI's resizing reads both alike)."""
    a, b = to_jsonable(a), to_jsonable(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int) and not isinstance(a, bool) and isinstance(b, list):
        return bool(b) and all(_same(a, x) for x in b)
    if isinstance(b, int) and not isinstance(b, bool) and isinstance(a, list):
        return _same(b, a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool | type(None)):
        return not isinstance(b, bool) and float(a) == float(b)
    return a == b


def _show(value: Any) -> str:
    text = json.dumps(to_jsonable(value))
    return text if len(text) <= 160 else text[:157] + "..."


def _override_keys(overrides: Mapping[str, Any] | None) -> set[str]:
    if overrides is None:
        from monai_imbalance.workflow.run_settings import run_overrides

        overrides = run_overrides()
    return {str(key).replace("::", "#").split("#")[0] for key in overrides}


_warned_folders: set[str] = set()


def check_model_settings(
    ckpt_dir: str | os.PathLike,
    current: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    compare_always: Sequence[str] = (),
    what: str = "evaluation",
) -> dict[str, Any] | None:
    """Refuse what contradicts the model in ``ckpt_dir``; log what the model is. Returns the recorded settings.

    Args:
        ckpt_dir: the model folder.
        current: this run's values of the model settings (the config's ``model_settings`` dict, resolved).
        overrides: the command line's overrides (default: :func:`~monai_imbalance.workflow.run_overrides`); a key
            of :data:`MODEL_KEYS` (not of :data:`EVALUATION_MAY_DIFFER`) among them must agree with the record.
        compare_always: keys compared whether overridden or not (the evaluation's ``class_names``: its data's).
        what: how the messages name the run (``"evaluation"``, ``"inference"``).

    Raises:
        ModelSettingsMismatchError: one line naming the key, the model's value and this run's.
    """
    settings = read_model_settings(ckpt_dir)
    if settings is None:
        has_model = any(Path(ckpt_dir).glob("*.pt"))  # without one, loading the checkpoint says what is missing
        if has_model and str(ckpt_dir) not in _warned_folders:
            _warned_folders.add(str(ckpt_dir))
            logger.warning(
                f"{Path(ckpt_dir) / MODEL_SETTINGS_FILE} not found (a model folder of monai-imbalance 0.2): the "
                f"{what} uses the config's settings and the command line's, unchecked. Pass the overrides the model "
                "was trained with (e.g. --image_size, --network_name, --split_fractions, --split_seed, "
                "--max_items_per_split; see the 'settings' of its metrics.json), or train it again to record them."
            )
        return None
    model = settings.get("model", {})
    overridden = _override_keys(overrides)
    refused = [k for k in MODEL_KEYS if k not in EVALUATION_MAY_DIFFER]
    for key, value in current.items():
        if key not in model:
            continue
        checked = key in compare_always or (key in overridden and key in refused)
        if checked and not _same(value, model[key]):
            source = f"--{key}" if key in overridden else f"this {what}'s {key}"
            hint = (
                f"leave --{key} out to use the model's"
                if key in overridden
                else "the data's classes must be the model's outputs, in the same order"
            )
            raise ModelSettingsMismatchError(
                f"{source} {_show(value)} contradicts the model in {ckpt_dir}: it was trained with {key} "
                f"{_show(model[key])} ({MODEL_SETTINGS_FILE}); {hint}"
            )
    shown = ", ".join(f"{k} {_show(model[k])}" for k in ("network_name", "image_size", "patch_size") if k in model)
    classes = f"; classes {model['class_names']}" if "class_names" in model else ""
    logger.info(f"model in {ckpt_dir}: {shown}{classes}")
    return settings


def check_evaluation_items(
    ckpt_dir: str | os.PathLike, items: Iterable[Mapping[str, Any]], *, split: str = "test"
) -> int:
    """Refuse an evaluation that would score items of the model's training split; return the number of items.

    The ids (:func:`item_ids`) of ``items`` are compared with the ``"train"`` ids of ``<ckpt_dir>/split_ids.json``.
    Items of the validation split (which chose the best epoch) are allowed but warned about, unless ``split`` is
    ``"val"``.

    Raises:
        ModelSettingsMismatchError: with the number of training items among ``items``.
    """
    ids = item_ids(items)
    recorded = read_split_ids(ckpt_dir)
    if recorded is None:
        if read_model_settings(ckpt_dir) is not None:  # the 0.2 warning already says it otherwise
            logger.warning(f"{Path(ckpt_dir) / SPLIT_IDS_FILE} not found: the evaluated items are not checked")
        return len(ids)
    evaluated = set(ids)
    overlap = evaluated & set(recorded.get("train", []))
    if overlap:
        example = sorted(overlap)[0]
        raise ModelSettingsMismatchError(
            f"{len(overlap)} of the {len(evaluated)} items of split '{split}' were training items of the model in "
            f"{ckpt_dir} (e.g. {example!r}); evaluate the split it was not trained on: leave --split_fractions, "
            "--split_seed and --max_items_per_split out to use the model's (see its model_settings.json)"
        )
    if split != "val":
        in_val = evaluated & set(recorded.get("val", []))
        if in_val:
            logger.warning(
                f"{len(in_val)} of the {len(evaluated)} items of split '{split}' chose the model's best epoch "
                "(its validation split): their scores are optimistic"
            )
    return len(ids)


# ----------------------------------------------------------------------------------------------------------------
# Training: record, and on resume compare
# ----------------------------------------------------------------------------------------------------------------

_EPOCH = re.compile(r"epoch=(\d+)\.pt$")
_FLAGS = {"loss": "loss_name", "network": "network_name", "sampler": "sampler_name"}  # run_settings name -> override


def _differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> Iterable[tuple[str, str, Any, Any]]:
    """``(section, key, recorded value, current value)`` of every compared entry that differs."""
    for section in _SECTIONS:
        before, now = dict(recorded.get(section, {})), dict(current.get(section, {}))
        if section in ("data", "training"):
            before, now = _comparable_data(before), _comparable_data(now)
        for key in list(dict.fromkeys([*before, *now])):
            if key in RESUME_MAY_CHANGE or key == "overrides":
                continue
            if key not in before or key not in now:
                if before.get(key) is None and now.get(key) is None:
                    continue  # a setting recorded as unset by one version and absent in the other
                yield section, key, before.get(key, "<not recorded>"), now.get(key, "<not recorded>")
            elif not _same(before[key], now[key]):
                yield section, key, before[key], now[key]


def check_resume(
    recorded: Mapping[str, Any], current: Mapping[str, Any], *, ckpt_dir: str | os.PathLike, resumed_epoch: int | None
) -> None:
    """Refuse a resume whose settings differ from the recorded run's in anything but :data:`RESUME_MAY_CHANGE`.

    Raises:
        ModelSettingsMismatchError: naming the first differing setting and both values (for a split of the data:
            its item counts, and that its ids differ when only they do).
    """
    epochs = current.get("training", {}).get("num_epochs")
    if resumed_epoch is not None and isinstance(epochs, int) and epochs < resumed_epoch:
        raise ModelSettingsMismatchError(
            f"cannot resume: --num_epochs {epochs} is below the {resumed_epoch} epochs the run in {ckpt_dir} has "
            "trained already; give at least that many"
        )
    for section, key, before, now in _differences(recorded, current):
        if section == "data" and key == "splits":
            for split in dict.fromkeys([*before, *now]):  # the data's own order: train first
                old, new = before.get(split), now.get(split)
                if old == new:
                    continue
                if old is None or new is None:
                    change = f"split '{split}' {'appeared' if old is None else 'disappeared'}"
                elif old["count"] != new["count"]:
                    change = f"split '{split}' had {old['count']} items, now {new['count']}"
                else:
                    change = f"split '{split}' has {new['count']} items as before, but other ones (ids differ)"
                raise ModelSettingsMismatchError(
                    f"cannot resume the run in {ckpt_dir}: its data changed ({change}); resume with the same data"
                    f"{resume_command_hint(ckpt_dir)}, or start afresh with --overwrite true (or another --ckpt_dir)"
                )
        name = "the model's" if section == "model" else "the data's" if section == "data" else "the run's"
        flag = _FLAGS.get(key) if section == "training" else None
        key = f"{key} (--{flag})" if flag else key
        raise ModelSettingsMismatchError(
            f"cannot resume the run in {ckpt_dir}: {key} was {_show(before)}, this command gives {_show(now)} "
            f"({name} settings may not change on resume; only {', '.join(RESUME_MAY_CHANGE)} may); resume with the "
            f"run's settings{resume_command_hint(ckpt_dir)}, or start afresh with --overwrite true (or another "
            "--ckpt_dir)"
        )


def _settings_in_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    entry = state.get("model_settings") if isinstance(state, Mapping) else None
    return dict(entry) if isinstance(entry, Mapping) and entry else None


def settings_of_run(
    ckpt_dir: str | os.PathLike,
    *,
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    datalists: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
    resume_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The settings a training run records (the content of ``model_settings.json``), after checking a resume.

    Nothing is written: :func:`record_model_settings` writes them once the earlier run of the folder has been
    moved aside (``--overwrite true``), so that they are never moved away with it.

    With ``resume_path`` (the "last" checkpoint being resumed) the settings are first compared with the recorded
    ones (the folder's file, else the checkpoint's ``"model_settings"`` entry; a 0.2 run has neither and is resumed
    unchecked, with a warning): :func:`check_resume`. Every rank compares, so that all refuse alike.

    Returns:
        the settings (also what :class:`ModelSettingsEntry` stores in the checkpoints).
    """
    settings = build_model_settings(model=model, data=data, training=training, datalists=datalists)
    if resume_path is not None:
        recorded = read_model_settings(ckpt_dir) or _settings_in_checkpoint(resume_path)
        if recorded is None:
            logger.warning(
                f"{ckpt_dir} records no model settings (a run of monai-imbalance 0.2): the resumed run's settings "
                "cannot be compared with the interrupted run's; make sure they are the same"
            )
        else:
            match = _EPOCH.search(str(resume_path))
            check_resume(recorded, settings, ckpt_dir=ckpt_dir, resumed_epoch=int(match.group(1)) if match else None)
    return settings


def record_model_settings(
    ckpt_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    datalists: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> None:
    """Write ``settings`` (:func:`settings_of_run`) as ``model_settings.json``, the ids of ``datalists`` as
    ``split_ids.json`` and, in a bundle run, its command as ``run_args.json`` into ``ckpt_dir`` (rank 0 only).

    A resumed run writes them anew: its changes (``--num_epochs``, a moved ``--dataset_dir``) hold for the next
    resume too.
    """
    if global_rank() != 0:
        return
    folder = Path(ckpt_dir)
    if datalists is not None:
        _write_json(folder / SPLIT_IDS_FILE, {str(split): item_ids(items) for split, items in datalists.items()})
    _write_json(folder / MODEL_SETTINGS_FILE, dict(settings))
    write_run_args(folder)


class ModelSettingsEntry:
    """The model settings as an entry of a checkpoint's ``save_dict`` (``state_dict()`` returns them).

    Loading puts nothing back: a resume compares the settings before training starts
    (:func:`settings_of_run`); the entry keeps a checkpoint file self-describing.
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)

    def state_dict(self) -> dict[str, Any]:
        return self.settings

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
