"""The MONAI Model Zoo's checks (``ci/verify_bundle.py``, its unit tests' property checks) on every bundle.

Without any data: the required files, version and changelog, the metadata fields of the 20220324 schema
(``verify_metadata`` downloads the schema, so its required fields are copied below), ``verify_net_in_out`` and
``ckpt_export`` with the standalone ``configs/inference.yaml`` (fake weights, as the zoo makes them), and the
train / infer properties as config IDs. With a few images: ``ConfigWorkflow.check_properties()`` itself, which
builds the trainer and the evaluator (our data loaders check the data, so they need some to build).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_runner import parse_bundle
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_net_in_out
from monai.bundle.properties import InferProperties, TrainProperties
from monai.utils import BundleProperty, BundlePropertyConfig
from PIL import Image

import monai_imbalance
from monai_imbalance.bundles import bundle_names, export_bundle

# meta_schema_20220324.json: the required top-level fields and the required fields of each tensor description
SCHEMA_REQUIRED = (
    *("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "optional_packages_version"),
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
    assert meta["schema"].endswith("meta_schema_20220324.json")
    assert [key for key in (*SCHEMA_REQUIRED, *ZOO_FIELDS) if not meta.get(key) and meta.get(key) != {}] == []
    assert "required_packages_version" not in meta  # a field of later schemas; 20220324 has the optional one
    assert meta["optional_packages_version"]["monai-imbalance"] == monai_imbalance.__version__
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


def test_verify_net_in_out_and_ckpt_export_with_the_inference_config_and_no_data(exported, tmp_path):
    _, root = exported
    files = _files(root)
    missing_data = str(tmp_path / "no_data_here")
    verify_net_in_out(net_id="network_def", device="cpu", bundle_root=str(root), dataset_dir=missing_data, **files)
    # fake weights, as the zoo's CI makes them, then the TorchScript export it runs
    parser = ConfigParser()
    parser.read_config(files["config_file"])
    parser.read_meta(files["meta_file"])
    parser.update({"bundle_root": str(root), "dataset_dir": missing_data})
    (root / "models").mkdir(exist_ok=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    exported_ts = root / "models" / "verify_model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(exported_ts),
        ckpt_file=str(root / "models" / "model.pt"),
        bundle_root=str(root),
        dataset_dir=missing_data,
        **{k: v for k, v in files.items() if k != "logging_file"},
    )
    assert exported_ts.is_file() and torch.jit.load(str(exported_ts)) is not None
    assert not Path(missing_data).exists()  # nothing was downloaded or written there


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
