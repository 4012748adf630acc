"""The committed bundles/ are what the family templates and per-task parts render, and rendering is sound."""

from __future__ import annotations

import pytest
import yaml
from bundle_runner import BUNDLES

from monai_imbalance.bundles import BUNDLE_CONFIGS, bundle_names, export_bundle, render_bundle, stale_files


def test_committed_bundles_match_their_sources():
    stale = stale_files(BUNDLES)
    assert not stale, (
        "bundles/ differs from monai_imbalance/bundles/ (edit the templates there, then run "
        f"`python -m monai_imbalance.bundles sync`): {[str(p.relative_to(BUNDLES)) for p in stale]}"
    )


def test_every_committed_bundle_has_a_source():
    committed = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs").is_dir())
    assert committed == bundle_names()


@pytest.mark.parametrize("name", bundle_names())
def test_rendered_configs_are_yaml_that_names_its_source(name):
    files = render_bundle(name)
    for config in BUNDLE_CONFIGS:
        text = files[f"configs/{config}.yaml"]
        assert text.startswith(f"# Generated from monai_imbalance/bundles/tasks/{name}/task.yaml.j2")
        assert isinstance(yaml.safe_load(text), dict)
        assert "{{" not in text and "{%" not in text, f"{name}/{config}.yaml holds unrendered template syntax"
    assert files["docs/README.md"].startswith("<!-- Generated from")


def test_retinal_metric_handlers_are_written_once_in_the_source():
    source = (BUNDLES.parent / "monai_imbalance/bundles/segmentation/train.yaml.j2").read_text()
    assert source.count("metric_name: {{ name }}") == 1
    train = yaml.safe_load(render_bundle("retinal_vessel_segmentation")["configs/train.yaml"])
    metrics = train["validate"]["additional_metrics"]
    assert sorted(metrics) == ["auc", "dice", "recall", "specificity"]
    for name in ("dice", "recall", "specificity"):
        assert metrics[name]["metric_fn"]["metric_name"] == name
        assert metrics[name]["metric_fn"]["ignore_index"] == "@ignore_index"


def test_unknown_name_names_the_closest_bundles(tmp_path):
    with pytest.raises(ValueError, match="'knee_oa_grading'"):
        render_bundle("knee_grading")
    with pytest.raises(ValueError, match="unknown bundle"):
        export_bundle("no_such_thing", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_export_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    target = tmp_path / "bundle"
    export_bundle("glaucoma_classification", target)
    (target / "configs" / "train.yaml").write_text("edited\n")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_bundle("glaucoma_classification", target)
    assert (target / "configs" / "train.yaml").read_text() == "edited\n"
    export_bundle("glaucoma_classification", target, overwrite=True)
    assert (target / "configs" / "train.yaml").read_text() == render_bundle("glaucoma_classification")[
        "configs/train.yaml"
    ]


def test_the_model_folder_section_names_what_each_bundle_records():
    """Written once (common/model_folder.md.j2), placed before "Overrides", listing the train.yaml's
    model_settings; a new recorded key without a README name stops the rendering."""
    from monai_imbalance.bundles.render import _environment, _with_model_folder

    knee = render_bundle("knee_oa_grading")["docs/README.md"]
    vessels = render_bundle("retinal_vessel_segmentation")["docs/README.md"]
    assert knee.index("## The model folder") < knee.index("## Overrides")
    assert (
        "(network and its options, input channels, intensity rule, image size, class names, dropout, the image " in knee
    )
    assert (
        "(network and its options, input channels, intensity rule, patch size, dropout, foreground threshold,"
        in vessels
    )
    assert "other class names" in knee and "other class names" not in vessels
    assert "`--network_name focusnet` for a U-Net" in vessels
    train = "model_settings:\n  network_name: '@network_name'\n  colour: '@colour'\n"
    with pytest.raises(ValueError, match=r"\['colour'\] have no README name"):
        _with_model_folder("# x\n\n## Overrides\n", _environment(), train)
