"""Documented commands work as written (issue 12): every ```bash block of README.md and of each bundle's
docs/README.md is run, command by command and in order, on tiny data.

What the test changes in a command, and nothing else:

- a placeholder path ``/data/<name>`` becomes a tiny data set in the same layout (:data:`TINY_DATA`); the
  ``--input_dir`` of an inference command becomes a folder of two new pictures;
- tiny-run settings (:data:`TINY_SETTINGS`: one epoch, a small network, small images, few items, few MC passes)
  are appended, each only where the command's configs have that key (the bundles refuse unknown overrides);
- a command with ``--args_file`` (a run's own ``run_args.json``) gets nothing appended: the file holds the settings
  of the run it repeats;
- ``python -m monai_imbalance.compare`` runs only the first of its ``--seeds`` (further seeds repeat the same
  command) and ``compare table`` only that seed's checkpoints.

A bundle's commands run from a copy of its folder (``python -m monai.bundle run``) or from a folder holding
``bundles/<name>`` (``compare``, documented "from the repository root"), so relative outputs such as
``--ckpt_dir runs/ce`` land in the test's temporary folder, and a later command finds what an earlier one wrote
(evaluation and inference reuse the checkpoints trained above them). The commands run in this process (no
interpreter start-up). A command that cannot run here is listed in :data:`NOT_RUN` with the reason; any other
command, in a new block too, is run.
"""

from __future__ import annotations

import ast
import re
import runpy
import shlex
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bundle_runner import (
    BUNDLES,
    REPO_ROOT,
    _check_status,
    _isolated_process_state,
    run_bundle_in_process,
    run_command_in_process,
)
from fundus_bundle_helpers import write_fundus_tree
from monai.bundle import ConfigParser
from PIL import Image
from test_bundle_nuclei_segmentation import kaggle_tree
from test_bundle_retinal_vessel_segmentation import drive_tree
from test_bundle_skin_lesion_segmentation import isic_tree as isic_task1_tree

from monai_imbalance.data import ISIC_TASK3_CLASSES

BUNDLE_NAMES = sorted(path.parent.parent.name for path in BUNDLES.glob("*/docs/README.md"))
DOCUMENTS = ["README.md", *(f"bundles/{name}/docs/README.md" for name in BUNDLE_NAMES)]

#: commands this test does not run (the start of the command -> why)
NOT_RUN = {
    "make ": "sets up .venv and runs the test suite or the demo (which downloads); CI runs `make test` itself",
    "pip install ": "installs packages from the network",
    "torchrun ": "one training process per GPU; the two-process Gloo run on the CPU is each bundle test's "
    "test_two_process_gloo_training",
    "... ": "a fragment of the command above it (one more --variant argument), not a command",
}
RUN = ("python -m monai.bundle run ", "python -m monai_imbalance.")

#: bundle the README's generic commands run in ("From a bundle folder")
README_BUNDLE = "skin_lesion_classification"

#: settings appended to every command, each only where the command's configs have the key
TINY_SETTINGS = {
    "num_epochs": 1,
    "num_workers": 0,
    "progress_bar": False,
    "network_name": "small_cnn",  # classification only (segmentation: its own networks, narrower)
    "network_channels": [4, 8],
    "image_size": 16,
    "batch_size": 4,
    "max_items_per_split": 14,
    "format_kwargs#medmnist#download": False,
    "patch_size": [16, 16],
    "patches_per_image": 4,
    "sw_batch_size": 16,
    "mc_samples": 2,
    "n_boot": 10,
}
SEGMENTATION_IMAGE_SIZE = [16, 16]  # image_size of the segmentation bundles: (rows, columns)


def documented_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks of a Markdown text: continuation lines joined, comments and blank
    lines left out, in the order of the text."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for command in re.sub(r"\\\n\s*", "", block).splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def not_run_reason(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


# ---------------------------------------------------------------- tiny data in each placeholder's layout


def _pictures(shared_data: Path, count: int, offset: int = 0) -> np.ndarray:
    with np.load(shared_data / "medmnist" / "dermamnist.npz") as data:
        return data["train_images"][offset : offset + count]


def _isic_task3(shared_data: Path, root: Path) -> Path:
    """ISIC 2018 task 3: training (3 per class) and validation (1 per class) folders with one-hot CSVs."""
    for split, per_class, offset in (("Training", 3, 0), ("Validation", 1, 100)):
        inputs, truth = root / f"ISIC2018_Task3_{split}_Input", root / f"ISIC2018_Task3_{split}_GroundTruth"
        inputs.mkdir(parents=True)
        truth.mkdir()
        rows = ["image," + ",".join(ISIC_TASK3_CLASSES)]
        pictures = _pictures(shared_data, per_class * len(ISIC_TASK3_CLASSES), offset)
        for i, picture in enumerate(pictures):
            name, diagnosis = f"ISIC_{offset + i:07d}", ISIC_TASK3_CLASSES[i % len(ISIC_TASK3_CLASSES)]
            Image.fromarray(picture).save(inputs / f"{name}.jpg")
            rows.append(name + "," + ",".join("1.0" if c == diagnosis else "0.0" for c in ISIC_TASK3_CLASSES))
        (truth / f"ISIC2018_Task3_{split}_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    return root


def _mammograms(shared_data: Path, root: Path) -> Path:
    """The 16 real mammograms, shrunk to 48 px: ``{A,B,C,D}/*.png`` and ``datalist.csv`` (one patient each)."""
    rows = ["image,density,patient_id,visit_id,view,split"]
    for letter in "ABCD":
        (root / letter).mkdir(parents=True)
        for k, jpeg in enumerate(sorted((shared_data / "breast_density_sample" / letter).glob("*.jpg"))):
            with Image.open(jpeg) as image:
                image.draft("L", (96, 96))
                grey = image.convert("L")
                grey.thumbnail((48, 48))
                grey.save(root / letter / f"{jpeg.stem}.png")
            split = ["train", "train", "val", "test"][k % 4]
            rows.append(f"{letter}/{jpeg.stem}.png,{letter},P{letter}{k},v1,CC,{split}")
    (root / "datalist.csv").write_text("\n".join(rows) + "\n")
    return root


def _fundus(grades: dict[str, list[int]], counts: dict[str, dict[str, int]]) -> Callable[[Path, Path], Path]:
    def write(shared_data: Path, root: Path) -> Path:
        write_fundus_tree(root, shared_data, grades, counts)
        return root

    return write


def _new_pictures(shared_data: Path, root: Path) -> Path:
    root.mkdir(parents=True)
    for i, picture in enumerate(_pictures(shared_data, 2, offset=500)):
        Image.fromarray(picture).save(root / f"new_{i}.png")
    return root


#: the placeholder paths of each document -> a writer of tiny data in that layout (shared data, folder)
TINY_DATA: dict[str, dict[str, Callable[[Path, Path], Path]]] = {
    "README.md": {"/data/...": lambda shared, root: shared / "medmnist"},
    "skin_lesion_classification": {"/data/ISIC2018": _isic_task3},
    "breast_density": {"/data/dmist": _mammograms, "/data/density_jpegs": _mammograms},
    "knee_oa_grading": {"/data/kneeKL224": lambda shared, root: shared / "knee_kl" / "png224_sample"},
    "glaucoma_classification": {
        "/data/glaucoma": _fundus(
            {"normal": [0], "suspect": [1, 2], "glaucoma": [3, 4]},
            {split: {"normal": 6, "suspect": 4, "glaucoma": 4} for split in ("train", "val", "test")},
        )
    },
    "rnfld_classification": {
        "/data/rnfld": _fundus(
            {"normal": [0], "rnfld": [3, 4]}, {split: {"normal": 6, "rnfld": 4} for split in ("train", "val", "test")}
        )
    },
    "nuclei_segmentation": {"/data/dsb2018": lambda shared, root: kaggle_tree(shared, root, count=10)},
    "skin_lesion_segmentation": {"/data/ISIC2018": lambda shared, root: isic_task1_tree(root, count=10)},
    "retinal_vessel_segmentation": {"/data/DRIVE": lambda shared, root: drive_tree(root)},
}


# ---------------------------------------------------------------- running one command


def _config_names(value: str) -> list[str]:
    files = ast.literal_eval(value) if value.startswith("[") else [value]
    return [Path(f).stem for f in files]


def _settings_for(bundle_dir: Path, configs: list[str], given: set[str]) -> dict[str, object]:
    """:data:`TINY_SETTINGS` whose keys the layered ``configs`` have and the command does not set itself."""
    parser = ConfigParser()
    parser.read_config([str(bundle_dir / "configs" / f"{name}.yaml") for name in configs])
    settings = {key: value for key, value in TINY_SETTINGS.items() if key in parser and key not in given}
    if "network_channels" in parser:  # segmentation: its own networks, narrowed; image size (rows, columns)
        settings.pop("network_name", None)
        if "image_size" in settings:
            settings["image_size"] = SEGMENTATION_IMAGE_SIZE
    return settings


def _substitute(args: list[str], placeholders: dict[str, Path], new_pictures: Path) -> list[str]:
    out = []
    for i, arg in enumerate(args):
        if arg.startswith("/data/"):
            if i > 0 and args[i - 1] == "--input_dir":
                arg = str(new_pictures)
            else:
                assert arg in placeholders, f"no tiny data for the placeholder {arg}: add it to TINY_DATA"
                arg = str(placeholders[arg])
        out.append(arg)
    return out


def _first_seed_only(args: list[str]) -> list[str]:
    """``--seeds 0 1 2`` -> ``--seeds 0``, and path arguments of other seeds (``runs/ce/seed1/models``) left out."""
    out, i, kept = [], 0, "0"
    while i < len(args):
        out.append(args[i])
        if args[i] == "--seeds":
            kept = args[i + 1]
            out.append(kept)
            i += 2
            while i < len(args) and args[i].isdigit():
                i += 1
            continue
        i += 1
    other_seed = re.compile(r"(^|/)seed(?!" + re.escape(kept) + r"(/|$))\d+(/|$)")
    return [arg for arg in out if not other_seed.search(arg)]


def run_bundle_command(args: list[str], bundle_dir: Path) -> str:
    """``python -m monai.bundle run <args>`` from ``bundle_dir``, in this process, with the tiny settings."""
    assert args[0] == "run" and len(args) % 2 == 1, f"expected run --key value ...: {args}"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    if "--config_file" not in pairs:  # --args_file <ckpt_dir>/run_args.json: a run's own command, tiny settings and all
        result = run_command_in_process(args, cwd=bundle_dir)
        _check_status(result, expect_failure=False)
        return result.stdout + result.stderr
    configs = _config_names(pairs.pop("--config_file"))
    overrides = {key.removeprefix("--"): value for key, value in pairs.items()}
    overrides.update(_settings_for(bundle_dir, configs, set(overrides)))
    result = run_bundle_in_process(str(bundle_dir), configs, overrides)
    return result.stdout + result.stderr


def run_module_command(args: list[str], cwd: Path, bundle_settings_dir: Path) -> str:
    """``python -m monai_imbalance.<module> <args>`` from ``cwd``, in this process (``compare``: the tiny settings
    after its ``--``)."""
    module, args = args[0], _first_seed_only(args[1:])
    if module == "monai_imbalance.compare":
        extra = args[args.index("--") + 1 :] if "--" in args else []
        given = {key.removeprefix("--") for key in extra[::2]}
        settings = _settings_for(bundle_settings_dir, ["train"], given)
        args = [*args, *([] if "--" in args else ["--"])]
        for key, value in settings.items():
            args += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    argv = [module, *args]
    code: object = 0
    with _isolated_process_state(cwd, argv) as (stdout, stderr):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code
        except Exception as error:
            code = "".join(traceback.format_exception(error))
    output = stdout.getvalue() + stderr.getvalue()
    assert code in (0, None), f"python -m {shlex.join(argv)} failed ({code}):\n{output[-6000:]}"
    return output


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_command_is_run_or_listed(document):
    """Each command of a block is run, or its start is in NOT_RUN (the list stays small and every entry is used)."""
    commands = documented_commands((REPO_ROOT / document).read_text())
    assert commands, f"{document} has no ```bash command"
    unknown = [c for c in commands if not c.startswith(RUN) and not_run_reason(c) is None]
    assert not unknown, f"{document}: commands neither run by this test nor in NOT_RUN: {unknown}"
    assert any(c.startswith(RUN) for c in commands), f"{document}: no command of it is run"
    name = document.split("/")[1] if document.startswith("bundles/") else document
    placeholders = {arg for c in commands if c.startswith(RUN) for arg in shlex.split(c) if arg.startswith("/data/")}
    placeholders -= {"/data/new"}  # --input_dir: the new pictures
    assert placeholders <= set(TINY_DATA[name]), f"{document}: no tiny data for {placeholders - set(TINY_DATA[name])}"


def test_not_run_list_is_used():
    commands = [c for d in DOCUMENTS for c in documented_commands((REPO_ROOT / d).read_text())]
    unused = [start for start in NOT_RUN if not any(c.startswith(start) for c in commands)]
    assert not unused, f"NOT_RUN entries no documented command starts with: {unused}"


@pytest.mark.e2e
@pytest.mark.parametrize("document", DOCUMENTS)
def test_documented_commands_work(document, tmp_path, shared_data):
    name = document.split("/")[1] if document.startswith("bundles/") else document
    bundle = README_BUNDLE if name == "README.md" else name
    shutil.copytree(BUNDLES / bundle, tmp_path / "bundles" / bundle)
    bundle_dir = tmp_path / "bundles" / bundle
    placeholders = {path: write(shared_data, tmp_path / path.strip("/.")) for path, write in TINY_DATA[name].items()}
    new_pictures = _new_pictures(shared_data, tmp_path / "data" / "new")

    ran = 0
    for command in documented_commands((REPO_ROOT / document).read_text()):
        if not_run_reason(command) is not None:
            continue
        args = _substitute(shlex.split(command)[3:], placeholders, new_pictures)  # after "python -m <module>"
        module = shlex.split(command)[2]
        try:
            if module == "monai.bundle":
                run_bundle_command(args, bundle_dir)
            else:
                run_module_command([module, *args], tmp_path, bundle_dir)
        except AssertionError as error:
            raise AssertionError(f"{document}: the documented command failed:\n  {command}\n{error}") from None
        ran += 1
    assert ran > 0
