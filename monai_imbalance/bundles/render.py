"""Render the eight MONAI Bundles from their family templates and per-task parts (package data of this folder).

Layout of the sources, next to this module::

    common/                     LICENSE, logging.conf and metadata.json shared by every bundle
    classification/*.yaml.j2    the classification family: train, evaluate, inference, multi_gpu_train
    classification/repeatability/*.yaml.j2   its variant for the repeatability study (knee, breast)
    segmentation/*.yaml.j2      the segmentation family
    tasks/<name>/task.yaml.j2   one bundle's part: ``{% extends ... %}`` a family and fills its blocks
    tasks/<name>/metadata.json  one bundle's metadata, merged (recursively) over common/metadata.json
    tasks/<name>/README.md      the bundle's docs/README.md (the sections "Export to TorchScript", "References" and
                                "License" are appended from the metadata and the data licence)
    tasks/<name>/data_license.txt   the licences of the bundle's data: docs/data_license.txt (the Model Zoo's file)

A task's ``task.yaml.j2`` is rendered once per config with ``config`` set to the family template's file name
(``"train.yaml.j2"``, ...); its first statement picks the parent, e.g.
``{% extends "classification/" ~ config %}``, and its blocks replace the parent's defaults. Blocks for other
configs are ignored, so one file holds everything in which a task differs from its family.

The model folder's settings: every entry ``key: '@key'`` of the rendered ``train.yaml``'s ``model_settings`` and
``data_settings`` (what training records in ``<ckpt_dir>/model_settings.json``) is read from the model folder by
the other configs, ``key: "$monai_imbalance.workflow.model_setting(@ckpt_dir, 'key', default=<train value>)"``:
``evaluate.yaml`` gets these lines where the family template says ``{{ model_folder_section }}`` (class names
aside: evaluation checks its data's against the model's), and ``inference.yaml``, which stands alone, has its own
lines of these keys rewritten in place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

__all__ = [
    "BUNDLE_CONFIGS",
    "SOURCE_DIR",
    "bundle_names",
    "render_bundle",
]

SOURCE_DIR = Path(__file__).resolve().parent
"""The folder of the templates and per-task parts."""

BUNDLE_CONFIGS = ("train", "evaluate", "inference", "multi_gpu_train")
"""The YAML configs of every bundle, rendered from ``<family>/<config>.yaml.j2``."""

_TASKS = SOURCE_DIR / "tasks"
_SOURCE_NAME = "monai_imbalance/bundles"  # how the headers name the sources (as in the repository)
_REGENERATE = "python -m monai_imbalance.bundles sync"
_METADATA_ORDER = (  # the order of the model zoo's metadata.json files
    *("schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version"),
    *("required_packages_version", "supported_apps", "name", "task", "description", "authors", "copyright"),
    *("data_source", "data_type", "image_classes", "label_classes", "pred_classes", "eval_metrics"),
    *("intended_use", "references", "network_data_format"),
)


def bundle_names() -> list[str]:
    """The names of the bundles that can be rendered, sorted."""
    return sorted(p.name for p in _TASKS.iterdir() if (p / "task.yaml.j2").is_file())


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SOURCE_DIR)),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not an empty string
        trim_blocks=True,  # a line holding only a {% tag %} leaves no empty line behind
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in: nested mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _metadata(name: str) -> str:
    from monai_imbalance import __version__

    common = json.loads((SOURCE_DIR / "common" / "metadata.json").read_text())
    task = json.loads((_TASKS / name / "metadata.json").read_text())
    metadata = _merge(common, task)
    metadata["required_packages_version"]["monai-imbalance"] = __version__  # the package that renders it
    order = {key: i for i, key in enumerate(_METADATA_ORDER)}
    metadata = dict(sorted(metadata.items(), key=lambda item: order.get(item[0], len(order))))
    return json.dumps(metadata, indent=4) + "\n"


def _check_name(name: str) -> None:
    names = bundle_names()
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown bundle {name!r}{hint} The bundles are: {', '.join(names)}.")


def _expression(value: Any) -> str:
    """A config value as a Python expression inside a ``$`` expression: ``$expr`` -> ``(expr)``, ``@id`` as is."""
    if isinstance(value, str) and value.startswith("$"):
        return f"({value[1:].strip()})"
    if isinstance(value, str) and value.startswith("@"):
        return value
    return repr(value)


def _from_model_folder(key: str, value: Any) -> str:
    """``key: "$...model_setting(@ckpt_dir, 'key', default=<value>)"``: the model folder's value, else ``value``."""
    from monai_imbalance.workflow.model_settings import DEPENDENT_SETTINGS

    when = ", ".join(f"{other!r}: @{other}" for other in DEPENDENT_SETTINGS.get(key, ()))
    arguments = f"@ckpt_dir, {key!r}, default={_expression(value)}" + (f", when={{{when}}}" if when else "")
    return f"{key}: {json.dumps(f'$monai_imbalance.workflow.model_setting({arguments})')}"


def _folder_keys(train_text: str) -> list[str]:
    """The keys the model folder records (``model_settings`` / ``data_settings`` entries ``key: '@key'``)."""
    config = yaml.safe_load(train_text)
    recorded = {**config.get("model_settings", {}), **config.get("data_settings", {})}
    return [key for key, value in recorded.items() if value == f"@{key}" and key in config]


def _model_folder_section(train_text: str, keys: Sequence[str]) -> str:
    """evaluate.yaml's lines that take ``keys`` from the model folder, defaulting to train.yaml's values."""
    config = yaml.safe_load(train_text)
    lines = [
        "# the model's settings and its data's identity, from <ckpt_dir>/model_settings.json (the values of",
        "# train.yaml without one); an override that contradicts a setting defining the model is refused",
        *(_from_model_folder(key, config[key]) for key in keys),
    ]
    return "\n".join(lines)


def _take_from_model_folder(text: str, keys: Sequence[str]) -> str:
    """``text`` (a standalone config) with the top-level lines of ``keys`` reading the model folder's values."""
    config = yaml.safe_load(text)
    for key in keys:
        if key not in config:
            continue
        pattern = re.compile(rf"^{re.escape(key)}:[ ]*(?P<value>\S.*?)(?P<comment>[ ]{{2,}}#.*)?$", re.MULTILINE)
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"{key!r} must be a one-line top-level entry to be read from the model folder")
        comment = match.group("comment")
        line = _from_model_folder(key, config[key]) + (f"   {comment.strip()}" if comment else "")
        text = text[: match.start()] + line + text[match.end() :]
    return text


def render_bundle(name: str) -> dict[str, str]:
    """Every file of bundle ``name``, as ``{path relative to the bundle folder: text}``.

    Raises:
        ValueError: ``name`` is not a bundle (the message names the closest ones).
    """
    _check_name(name)
    env = _environment()
    task_source = f"{_SOURCE_NAME}/tasks/{name}/task.yaml.j2"
    files = {}
    outputs = json.loads((_TASKS / name / "metadata.json").read_text())["network_data_format"]["outputs"]
    class_names = list(outputs["pred"]["channel_def"].values())  # the one source of a task's classes
    folder_keys: list[str] = []
    section = ""
    for config in BUNDLE_CONFIGS:  # train first: its model settings decide what the others read from the folder
        template = env.get_template(f"tasks/{name}/task.yaml.j2")
        body = template.render(config=f"{config}.yaml.j2", class_names=class_names, model_folder_section=section)
        if config == "train":
            folder_keys = _folder_keys(body)
            # evaluation checks its data's class names against the model's instead of taking the model's
            section = _model_folder_section(body, [key for key in folder_keys if key != "class_names"])
        elif config == "inference":
            body = _take_from_model_folder(body, folder_keys)
        header = f"# Generated from {task_source} and the family template it extends by `{_REGENERATE}`; edit there.\n"
        files[f"configs/{config}.yaml"] = header + body
    files["configs/metadata.json"] = _metadata(name)
    files["configs/logging.conf"] = (SOURCE_DIR / "common" / "logging.conf").read_text()
    files["LICENSE"] = (SOURCE_DIR / "common" / "LICENSE").read_text()
    data_license = (_TASKS / name / "data_license.txt").read_text()
    files["docs/data_license.txt"] = data_license
    readme = _with_model_folder((_TASKS / name / "README.md").read_text(), env, files["configs/train.yaml"])
    readme = _with_allowed_values(readme, _top_level_keys(files))
    metadata = json.loads(files["configs/metadata.json"])
    files["docs/README.md"] = (
        f"<!-- Generated from {_SOURCE_NAME}/tasks/{name}/README.md by `{_REGENERATE}`; edit there. -->\n"
        + readme.rstrip("\n")
        + "\n"
        + _readme_tail(metadata, data_license)
    )
    return files


def _top_level_keys(files: Mapping[str, str]) -> set[str]:
    keys: set[str] = set()
    for config in BUNDLE_CONFIGS:
        keys.update(yaml.safe_load(files[f"configs/{config}.yaml"]) or {})
    return keys


_OVERRIDES_HEADING = "## Overrides"

_SETTING_NAMES = {  # what a train.yaml's model_settings key is called in the READMEs ("" : part of another)
    "network_name": "network and its options",
    "network_channels": "",
    "network_kwargs": "",
    "in_channels": "input channels",
    "intensity": "intensity rule",
    "image_size": "image size",
    "patch_size": "patch size",
    "class_names": "class names",
    "dropout_prob": "dropout",
    "dropout": "dropout",
    "head": "head",
    "threshold": "foreground threshold",
    "preprocessing": "the image pre-processing",
}


def _with_model_folder(readme: str, env: jinja2.Environment, train_text: str) -> str:
    """``readme`` with the section ``common/model_folder.md.j2`` before its "Overrides" section (at the end when it
    has none), naming the settings the bundle's ``train.yaml`` records (``model_settings``): written once."""
    recorded = list(yaml.safe_load(train_text)["model_settings"])
    unnamed = [key for key in recorded if key not in _SETTING_NAMES]
    if unnamed:
        raise ValueError(f"model_settings keys {unnamed} have no README name: add them to render._SETTING_NAMES")
    names = list(dict.fromkeys(_SETTING_NAMES[key] for key in recorded if _SETTING_NAMES[key]))
    classes = "class_names" in recorded
    example = "`--image_size 224` for a model trained at 64" if classes else "`--network_name focusnet` for a U-Net"
    section = env.get_template("common/model_folder.md.j2").render(
        settings=", ".join(names), example=example, classes=classes
    )
    start = readme.find(f"\n{_OVERRIDES_HEADING}\n")
    if start < 0:
        return readme.rstrip("\n") + "\n\n" + section
    return readme[: start + 1] + section + "\n" + readme[start + 1 :]


def _with_allowed_values(readme: str, keys: set[str]) -> str:
    """``readme`` with the bundle's rows of :data:`~monai_imbalance.workflow.OVERRIDE_RULES` at the end of its
    "Overrides" section (at the end when it has none): the ranges are written once, in Python."""
    from monai_imbalance.workflow.override_values import override_rules_markdown

    section = (
        "Allowed values of the numeric overrides (checked before any work: a value outside its range ends the run "
        "in one line, `error: --<key> <value>: ...`):\n\n" + override_rules_markdown(keys) + "\n\n"
        "A misspelt key ends in one line too, naming the closest existing one. MONAI's own command line applies a "
        "nested override before any code of this bundle runs, so a misspelt *parent* (`--los_kwargs#gamma 3`) "
        "ends there in MONAI's traceback, whose middle names the closest key; `python -m monai_imbalance.bundles "
        "run ...` takes the same arguments as `python -m monai.bundle run ...` and ends it in one line as well.\n"
    )
    start = readme.find(f"\n{_OVERRIDES_HEADING}\n")
    if start < 0:
        return readme.rstrip("\n") + "\n\n" + section
    end = readme.find("\n## ", start + len(_OVERRIDES_HEADING) + 1)
    end = len(readme) if end < 0 else end + 1
    return readme[:end].rstrip("\n") + "\n\n" + section + "\n" + readme[end:]


def _readme_tail(metadata: Mapping[str, Any], data_license: str) -> str:
    """The README sections every bundle has in the Model Zoo's order: TorchScript export, references, licence."""
    from monai_imbalance.networks import TRACE_ONLY_NETWORK_NAMES

    image = metadata["network_data_format"]["inputs"]["image"]
    segmentation = metadata["network_data_format"]["outputs"]["pred"]["format"] != "classes"
    export = (
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\\n"
        "    --meta_file configs/metadata.json --config_file configs/inference.yaml --bundle_root ."
    )
    lines = [
        "",
        "## Export to TorchScript",
        "",
        "MONAI's `ckpt_export` (what the Model Zoo's CI runs) writes the trained network of `models/model.pt` as",
        "TorchScript, from `configs/inference.yaml` alone (no data):",
        "",
        "```text",
        export,
        "```",
        "",
    ]
    if segmentation:
        shape = [1, image["num_channels"], *image["spatial_shape"]]
        traced = ", ".join(f"`{n}`" for n in TRACE_ONLY_NETWORK_NAMES)
        lines += [
            f"`unet` scripts (`torch.jit.script`). {traced} does not (its forward indexes its levels with loop",
            "variables, which TorchScript cannot compile): export it by tracing, with an input of the size it will be",
            "given (sides divisible by 2 to the number of levels; FocusNet's own input checks run while tracing and",
            "are not part of the traced model):",
            "",
            "```text",
            f'{export} \\\n    --network_name focusnet --use_trace true --input_shape "{shape}"',
            "```",
            "",
        ]
    else:
        lines += [
            "Every `--network_name` and `--head` the overrides offer scripts (`torch.jit.script`); add the model's",
            "overrides (e.g. `--network_name resnet18 --head cosine`) so that the network matches the weights.",
            "",
        ]
    lines += ["## References", "", *(f"- {ref}" for ref in metadata.get("references", [])), ""]
    lines += [
        "## License",
        "",
        "The bundle's code and configs: Apache License 2.0 (`LICENSE`). The data keep their own licences",
        "(`docs/data_license.txt`):",
        "",
        *(f"> {line}".rstrip() for line in data_license.rstrip("\n").split("\n")),
        "",
    ]
    return "\n".join(lines)
