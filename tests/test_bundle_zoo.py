"""The MONAI Model Zoo's checks (``ci/verify_bundle.py``, its unit tests' property checks) on every bundle.

Without any data and with the network blocked: the zoo's own path through ``verify_bundle.py`` (fake weights,
``create_workflow(config_file="configs/inference.yaml", meta_file=..., workflow_type="inference")`` with
``check_properties()``, ``verify_net_in_out``, ``ckpt_export``), ``ckpt_export`` for every network and head the
docs offer, the required files, version and changelog, the metadata fields of the 20240725 schema
(``verify_metadata`` downloads the schema, so its required fields are copied below), numeric ``eval_metrics``,
the data licence, the zoo's README headings, and the train / infer properties as config IDs. With a few images:
``ConfigWorkflow.check_properties()`` for training, which builds the trainer (our data loaders check the data,
so they need some to build).
"""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_net_in_out
from monai.bundle.properties import InferProperties, TrainProperties
from monai.bundle.scripts import create_workflow
from monai.utils import BundleProperty, BundlePropertyConfig
from PIL import Image

import monai_imbalance
from monai_imbalance.bundles import bundle_names, export_bundle
from monai_imbalance.networks import NETWORK_NAMES, SEGMENTATION_NETWORK_NAMES, TRACE_ONLY_NETWORK_NAMES

# meta_schema_20240725.json: the required top-level fields and the required fields of each tensor description
SCHEMA_REQUIRED = (
    *("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version"),
    *("task", "description", "authors", "copyright", "network_data_format"),
)
SCHEMA_TENSOR_REQUIRED = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")
# what every model-zoo bundle of that schema carries besides (the zoo's README and reviews ask for them)
ZOO_FIELDS = ("name", "data_source", "data_type", "image_classes", "label_classes", "pred_classes", "intended_use")
# properties whose parsing builds a data set (or an engine over one): checked as IDs here, built with data below
BUILDS_DATA = {"trainer", "train_dataset", "dataset", "evaluator"}


@pytest.fixture(scope="module", params=bundle_names())
def exported(request, tmp_path_factory):
    """(name, bundle folder) of a freshly exported bundle: what a pip user gets, with no data beside it."""
    root = export_bundle(request.param, tmp_path_factory.mktemp(request.param) / request.param)
    return request.param, root


def _files(root: Path) -> dict[str, str]:
    configs = root / "configs"
    return {
        "meta_file": str(configs / "metadata.json"),
        "config_file": str(configs / "inference.yaml"),
        "logging_file": str(configs / "logging.conf"),
    }


def test_required_files_version_and_changelog(exported):
    _, root = exported
    for name in (
        "configs/metadata.json",
        "LICENSE",
        "configs/inference.yaml",
        "configs/logging.conf",
        "docs/README.md",
    ):
        assert (root / name).is_file(), name
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    # no large_files.yml: the bundles ship no weights (models/model.pt is what training writes)
    assert not list(root.glob("large_files.*"))


def test_metadata_has_the_schema_fields_and_matches_the_config(exported):
    _, root = exported
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["schema"].endswith("meta_schema_20240725.json")
    assert [key for key in (*SCHEMA_REQUIRED, *ZOO_FIELDS) if not meta.get(key) and meta.get(key) != {}] == []
    # MONAI 1.6 renames the old name with a deprecation warning on every run (DEPRECATED_ID_MAPPING)
    assert "optional_packages_version" not in meta
    assert meta["required_packages_version"]["monai-imbalance"] == monai_imbalance.__version__
    formats = meta["network_data_format"]
    for tensor in (formats["inputs"]["image"], formats["outputs"]["pred"]):
        assert [key for key in SCHEMA_TENSOR_REQUIRED if key not in tensor] == []
        assert len(tensor["channel_def"]) == tensor["num_channels"]
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.yaml"))
    parser["bundle_root"] = str(root)
    image, pred = formats["inputs"]["image"], formats["outputs"]["pred"]
    assert image["num_channels"] == parser.get_parsed_content("in_channels")
    if pred["format"] == "classes":  # one output per configured class, named as in the config
        class_names = parser.get_parsed_content("class_names")
        assert list(pred["channel_def"].values())[: len(class_names)] == list(class_names)
        assert pred["num_channels"] == len(class_names) and pred["spatial_shape"] == []
        assert image["spatial_shape"] == [parser.get_parsed_content("image_size")] * 2
    else:
        assert pred["num_channels"] == 1
        size = parser.get_parsed_content("patch_size" if image["is_patch_data"] else "image_size")
        assert image["spatial_shape"] == pred["spatial_shape"] == list(size)


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails, as on a machine without network: a download attempt is an error."""

    def refuse(*args, **kwargs):
        raise OSError("network access in a test that must run offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _fake_weights(root: Path, **overrides) -> Path:
    """``models/model.pt`` from the inference config's network, as the zoo's CI makes it (``_produce_fake_weights``)."""
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.yaml"))
    parser.read_meta(str(root / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(root), **overrides})
    (root / "models").mkdir(exist_ok=True)
    path = root / "models" / "model.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


@pytest.mark.parametrize("name", bundle_names())
def test_the_zoo_verify_bundle_path_runs_offline_with_no_data(name, tmp_path, monkeypatch, no_network):
    """``ci/verify_bundle.py`` of the Model Zoo, step by step, on the exported bundle from another working folder:
    fake weights, properties through ``create_workflow`` (which initialises the workflow), the network's input and
    output, the TorchScript export. Nothing is read from or written to a data folder, nothing is downloaded, and
    MONAI warns about no deprecated metadata name."""
    root = export_bundle(name, tmp_path / "zoo" / name)  # a fresh copy: the file list below is exact
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    meta_file, config_file = str(root / "configs" / "metadata.json"), str(root / "configs" / "inference.yaml")
    weights = _fake_weights(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workflow = create_workflow(
            workflow_type="inference",
            bundle_root=str(root),
            config_file=config_file,
            logging_file=str(root / "configs" / "logging.conf"),
            meta_file=meta_file,
        )
        assert workflow.check_properties() == []
        assert len(workflow.dataset) == 0  # built, with nothing to predict until --input_dir names a folder
        verify_net_in_out(net_id="network_def", meta_file=meta_file, config_file=config_file, bundle_root=str(root))
        ckpt_export(
            net_id="network_def",
            filepath=str(root / "models" / "verify_model.ts"),
            ckpt_file=str(weights),
            meta_file=meta_file,
            config_file=config_file,
            bundle_root=str(root),
        )
    assert torch.jit.load(str(root / "models" / "verify_model.ts")) is not None
    assert [str(w.message) for w in caught if "deprecated name" in str(w.message)] == []
    after = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert sorted(set(after) - set(before)) == [Path("models"), Path("models/model.pt"), Path("models/verify_model.ts")]
    assert list(work.iterdir()) == []  # nothing written to the working folder either


# every network and head the docs offer (README "Overrides"): (bundle, overrides); EfficientNet-B1..B7 are the
# class of B0 with other widths, so B0 stands for them
CLASSIFICATION_OPTIONS = [
    {"network_name": name, "head": head}
    for name in NETWORK_NAMES
    if not name.startswith("efficientnet-b") or name == "efficientnet-b0"
    for head in ("linear", "cosine")
    if (name, head) != ("densenet121", "linear")  # the default: exported by the zoo path above
]
EXPORT_CASES = [
    *(("skin_lesion_classification", options) for options in CLASSIFICATION_OPTIONS),
    ("knee_oa_grading", {"network_name": "resnet18"}),  # the repeatability family: no head option
    *(("nuclei_segmentation", {"network_name": name}) for name in SEGMENTATION_NETWORK_NAMES),
]


@pytest.mark.parametrize(
    ("name", "options"), EXPORT_CASES, ids=lambda v: v if isinstance(v, str) else "-".join(v.values())
)
def test_ckpt_export_of_every_network_and_head_the_docs_offer(name, options, tmp_path, no_network):
    """Scripted where TorchScript compiles the network; traced (``--use_trace true --input_shape``, as the bundle's
    README says) for the networks of ``TRACE_ONLY_NETWORK_NAMES``, which do not script."""
    root = export_bundle(name, tmp_path / name)
    weights = _fake_weights(root, **options)
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    input_shape = [1, meta["network_data_format"]["inputs"]["image"]["num_channels"], 64, 64]  # small: a quick test
    files = {
        "meta_file": str(root / "configs" / "metadata.json"),
        "config_file": str(root / "configs" / "inference.yaml"),
    }
    traced = options["network_name"] in TRACE_ONLY_NETWORK_NAMES
    if traced:  # the claim of the docs: scripting fails, tracing works
        parser = ConfigParser()
        parser.read_config(files["config_file"])
        parser.update({"bundle_root": str(root), **options})
        with pytest.raises(Exception):  # noqa: B017 (TorchScript's own error types vary between versions)
            torch.jit.script(parser.get_parsed_content("network_def"))
        assert f"--network_name {options['network_name']} --use_trace true" in (root / "docs" / "README.md").read_text()
    filepath = root / "models" / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(filepath),
        ckpt_file=str(weights),
        bundle_root=str(root),
        **files,
        **({"use_trace": True, "input_shape": input_shape} if traced else {}),
        **options,
    )
    exported_net = torch.jit.load(str(filepath))
    parser = ConfigParser()
    parser.read_config(files["config_file"])
    parser.update({"bundle_root": str(root), **options})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    x = torch.rand(*input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.jit.optimized_execution(False):  # one call: no profiling run of the JIT
        torch.testing.assert_close(exported_net(x), net(x), rtol=1e-4, atol=1e-5)  # the same function, exported


def test_eval_metrics_are_numbers_from_a_documented_reference_run(exported):
    """Numbers, each stated in the README's Performance section; a bundle without a measured run says so and has
    none (rather than a placeholder)."""
    _, root = exported
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    performance = (root / "docs" / "README.md").read_text().split("\n## Performance\n")[1].split("\n## ")[0]
    metrics = meta.get("eval_metrics")
    if metrics is None:
        assert "There is no measured reference run of this bundle" in performance
        return
    assert metrics and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    assert "Reference run (`eval_metrics` in `configs/metadata.json`)" in performance
    for value in metrics.values():
        assert f"{value:.3f}" in performance  # every number is the documented one


def test_data_licence_and_the_zoo_readme_headings(exported):
    name, root = exported
    licence = (root / "docs" / "data_license.txt").read_text()
    readme = (root / "docs" / "README.md").read_text()
    assert licence.strip() and licence.strip().splitlines()[0] in readme  # quoted in the README's License section
    if name.startswith("skin_lesion"):  # HAM10000 / ISIC: non-commercial
        assert "CC BY-NC 4.0" in licence
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    order = [
        "## Model Overview",
        "## Data",
        "## MONAI Bundle Commands",
        "## Performance",
        "## References",
        "## License",
    ]
    assert [h for h in headings if h in order] == order


def _property_problems(workflow: ConfigWorkflow, properties: dict) -> list[str]:
    """MONAI's ``check_properties`` without building the data: required IDs present (and parsed where that
    needs no data), optional IDs referenced under their own name."""
    problems = []
    for name, prop in properties.items():
        if prop.get(BundleProperty.REQUIRED, False):
            if prop[BundlePropertyConfig.ID] not in workflow.parser:
                problems.append(name)
            elif name not in BUILDS_DATA:
                workflow.parser.get_parsed_content(prop[BundlePropertyConfig.ID])
        elif not workflow._check_optional_id(name=name, property=prop):
            problems.append(name)
    return problems


@pytest.mark.parametrize("workflow_type", ["train", "infer"])
def test_properties_are_where_monai_looks_for_them(exported, workflow_type, tmp_path):
    _, root = exported
    files = _files(root)
    if workflow_type == "train":
        files["config_file"] = str(root / "configs" / "train.yaml")
    workflow = ConfigWorkflow(
        workflow_type=workflow_type, bundle_root=str(root), dataset_dir=str(tmp_path / "none"), **files
    )
    # not initialize(): the training's initialize checks the data (there is none here), and MONAI's
    # check_properties does not need it (the zoo's verify_properties.py does not call it either)
    properties = TrainProperties if workflow_type == "train" else InferProperties
    assert _property_problems(workflow, properties) == []


def test_evaluate_layers_over_train_as_the_zoo_does(exported):
    _, root = exported
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / "train.yaml"), str(root / "configs" / "evaluate.yaml")])
    (run,) = parser["run"]  # evaluate.yaml replaces the training run (as the evaluated checkpoint's epoch)
    assert run.startswith("$@evaluate#evaluator.run(")
    evaluator = parser["evaluate#evaluator"]
    assert evaluator["network"] == "@network" and "network_def" in parser  # the network comes from train.yaml


def _write_images(folder: Path, count: int, channels: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        shape = (40, 48, 3) if channels == 3 else (40, 48)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"new_{i}.png")


def test_check_properties_infer_builds_on_a_folder_of_new_images(exported, tmp_path):
    """MONAI's own check, which builds the evaluator: with --input_dir it needs no training data."""
    _, root = exported
    _fake_weights(root)  # the checkpoint loader checks the file when the evaluator is built
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    _write_images(tmp_path / "new", 2, meta["network_data_format"]["inputs"]["image"]["num_channels"])
    workflow = ConfigWorkflow(
        workflow_type="infer",
        bundle_root=str(root),
        dataset_dir=str(tmp_path / "none"),
        input_dir=str(tmp_path / "new"),
        **_files(root),
    )
    workflow.initialize()
    assert workflow.check_properties() == []


# tiny data of each bundle for MONAI's train check_properties (which builds the trainer over the data)
def _train_data(name: str, shared_data: Path, tmp_path: Path) -> dict:
    medmnist = shared_data / "medmnist"
    if name == "skin_lesion_classification":
        return {"dataset_dir": str(medmnist), "data_kwargs": {"flag": "dermamnist", "download": False}}
    if name == "rnfld_classification":
        return {
            "dataset_dir": str(medmnist / "pneumoniamnist.npz"),
            "data_format": "medmnist",
            "data_kwargs": {},
            "class_names": ["normal", "pneumonia"],
        }
    if name == "glaucoma_classification":
        return {
            "dataset_dir": str(medmnist / "retinamnist.npz"),
            "data_format": "medmnist",
            "class_names": ["0", "1", "2", "3", "4"],
        }
    if name == "knee_oa_grading":
        return {"dataset_dir": str(shared_data / "knee_kl" / "knee_kl_64_trainval.npz"), "data_format": "medmnist"}
    if name == "breast_density":
        # 11 training images: a batch no larger than that
        return {
            "dataset_dir": str(shared_data / "breast_density_sample"),
            "data_format": "class_folders",
            "batch_size": 8,
        }
    if name == "nuclei_segmentation":
        return {"dataset_dir": str(shared_data / "dsb2018" / "dsb2018_256.npz")}
    if name == "skin_lesion_segmentation":
        from test_bundle_skin_lesion_segmentation import isic_tree

        isic_tree(tmp_path / "isic")
        return {"dataset_dir": str(tmp_path / "isic"), "batch_size": 2}  # a few images: a batch no larger
    from test_bundle_retinal_vessel_segmentation import drive_tree

    drive_tree(tmp_path / "drive")
    return {"dataset_dir": str(tmp_path / "drive")}


def test_check_properties_train_builds_on_tiny_data(exported, shared_data, tmp_path):
    name, root = exported
    overrides = {"num_workers": 0, "cache_rate": 0.0, "ckpt_dir": str(tmp_path / "models")}
    workflow = ConfigWorkflow(
        workflow_type="train",
        bundle_root=str(root),
        **{**_files(root), "config_file": str(root / "configs" / "train.yaml")},
        **overrides,
        **_train_data(name, shared_data, tmp_path),
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def test_parse_bundle_reads_the_committed_bundle_like_the_export():
    parser = parse_bundle("knee_oa_grading", ["inference"])
    assert parser.get_parsed_content("class_names") == ["0", "1", "2", "3", "4"]
