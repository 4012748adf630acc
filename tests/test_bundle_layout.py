"""Every bundle has the model-zoo layout, metadata naming monai-imbalance, and configs MONAI can parse."""

from __future__ import annotations

import json

import pytest
from bundle_runner import BUNDLES, parse_bundle

import monai_imbalance

BUNDLE_NAMES = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs").is_dir())
CONFIGS = ["train", "evaluate", "inference", "multi_gpu_train"]


def test_all_paper_tasks_have_a_bundle():
    assert BUNDLE_NAMES == [
        "breast_density",
        "glaucoma_classification",
        "knee_oa_grading",
        "nuclei_segmentation",
        "retinal_vessel_segmentation",
        "rnfld_classification",
        "skin_lesion_classification",
        "skin_lesion_segmentation",
    ]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_layout_and_metadata(bundle):
    root = BUNDLES / bundle
    for name in [*(f"configs/{c}.yaml" for c in CONFIGS), "configs/logging.conf", "docs/README.md", "LICENSE"]:
        assert (root / name).is_file(), f"{bundle} lacks {name}"
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "name", "task", "description"):
        assert meta.get(key), f"{bundle}/metadata.json lacks {key}"
    assert meta["version"] in meta["changelog"]
    assert meta["required_packages_version"]["monai-imbalance"] == monai_imbalance.__version__
    for kind in ("inputs", "outputs"):
        for entry in meta["network_data_format"][kind].values():
            assert isinstance(entry["num_channels"], int) and entry["num_channels"] > 0
            assert len(entry["channel_def"]) == entry["num_channels"]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
@pytest.mark.parametrize("config", CONFIGS[1:])
def test_overlays_parse_over_train(bundle, config):
    parser = parse_bundle(bundle, ["train", config])
    assert parser["run"], f"{bundle}: {config}.yaml over train.yaml has nothing to run"
