"""Tests of monai_imbalance.compare.grid: presets, variants, the table, bad input, and a tiny grid on a real bundle."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest
from bundle_runner import BUNDLES

from monai_imbalance.compare import (
    PRESETS,
    GridVariant,
    default_metric_names,
    format_grid,
    get_preset,
    grid_table,
    grid_variants,
    main,
    parse_variant,
    read_metrics,
    run_grid,
)
from monai_imbalance.data.class_weights import CLASS_WEIGHT_METHODS
from monai_imbalance.data.samplers import SAMPLER_NAMES
from monai_imbalance.handlers.threshold import THRESHOLD_METHODS
from monai_imbalance.losses import LOSS_NAMES

SKIN = BUNDLES / "skin_lesion_classification"

# ---------------------------------------------------------------- presets and variants


def test_presets_expand_to_the_papers_variants():
    assert [v.name for v in grid_variants("lmf")] == ["ce", "focal", "ldam", "lmf"]
    assert [v.overrides["loss_name"] for v in grid_variants("lmf")] == ["ce", "focal", "ldam", "lmf_official"]
    bbfl = {v.name: v for v in grid_variants("bbfl")}
    assert list(bbfl) == ["ce", "ros", "rus", "cost_sensitive", "thresholding", "bbfl"]
    assert bbfl["ros"].overrides == {"loss_name": "ce", "sampler_name": "over"}
    assert bbfl["rus"].overrides == {"loss_name": "ce", "sampler_name": "under"}
    assert bbfl["cost_sensitive"].overrides == {"loss_name": "ce", "sampler_name": "none", "class_weighting": "inverse"}
    assert bbfl["thresholding"].overrides == {"loss_name": "ce", "sampler_name": "none", "threshold_method": "f1"}
    assert bbfl["thresholding"].evaluate_overrides == {"use_threshold": "true"}
    assert bbfl["bbfl"].overrides == {"loss_name": "focal", "sampler_name": "batch_balanced"}
    assert all(not v.evaluate_overrides for name, v in bbfl.items() if name != "thresholding")
    multiclass = {v.name: v for v in grid_variants("bbfl_multiclass")}
    assert multiclass["thresholding"].overrides["threshold_method"] == "prior_correction"
    assert [v.overrides["loss_name"] for v in grid_variants("all")] == [
        "jaccard",
        "dice",
        "tversky",
        "focal",
        "combo",
        "focal_tversky",
        "all",
    ]
    assert get_preset("all").metric_names == ("jaccard", "dice", "recall", "specificity")
    assert get_preset("bbfl").metric_names == ("accuracy", "f1_positive", "auc")
    # a preset plus own variants, in that order
    extra = parse_variant(["lmf_cosine", "--loss_name lmf --head cosine"])
    combined = grid_variants("lmf", [extra])
    assert [v.name for v in combined] == ["ce", "focal", "ldam", "lmf", "lmf_cosine"]
    assert combined[-1].overrides == {"loss_name": "lmf", "head": "cosine"} and combined[-1].label == "lmf_cosine"


def test_preset_overrides_are_valid_bundle_values_and_documented():
    for preset in PRESETS.values():
        for v in preset.variants:
            settings = {**v.overrides, **v.evaluate_overrides}
            assert settings["loss_name"] in LOSS_NAMES
            assert settings.get("sampler_name", "none") in SAMPLER_NAMES
            assert settings.get("class_weighting", "inverse") in CLASS_WEIGHT_METHODS
            assert settings.get("threshold_method", "f1") in THRESHOLD_METHODS
        for bundle in preset.bundles:
            readme = (BUNDLES / bundle / "docs" / "README.md").read_text()
            assert f"--preset {preset.name} " in readme, f"{bundle}/docs/README.md lacks the '{preset.name}' command"


def test_parse_variant():
    variant = parse_variant(["thr", "--loss_name ce --threshold_method f1", "--use_threshold true"])
    assert variant.overrides == {"loss_name": "ce", "threshold_method": "f1"}
    assert variant.evaluate_overrides == {"use_threshold": "true"}
    assert parse_variant(["default", ""]).overrides == {}
    assert parse_variant(["kw", "--loss_kwargs \"{'gamma': 2.0}\""]).overrides == {"loss_kwargs": {"gamma": 2.0}}
    with pytest.raises(ValueError, match="NAME OVERRIDES"):
        parse_variant(["ce"])
    with pytest.raises(ValueError, match="NAME OVERRIDES"):
        parse_variant(["ce", "--loss_name ce", "", "extra"])
    with pytest.raises(ValueError, match=r"variant 'ce': expected a bundle override '--key value'"):
        parse_variant(["ce", "loss_name ce"])
    with pytest.raises(ValueError, match="variant 'ce': cannot split"):
        parse_variant(["ce", "--loss_kwargs '{"])


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: get_preset("focal"), ValueError, r"unknown preset 'focal'; choose one of \['lmf'"),
        (lambda: grid_variants(None, []), ValueError, "no variants"),
        (lambda: grid_variants("lmf", [GridVariant("focal")]), ValueError, r"\['focal'\] given more than once"),
        (lambda: grid_variants(None, [GridVariant("CE"), GridVariant("ce")]), ValueError, "more than once"),
        (lambda: GridVariant("a/b"), ValueError, "folder name"),
        (lambda: GridVariant(""), ValueError, "folder name"),
        (lambda: GridVariant("x", {"seed": 3}), ValueError, r"variant 'x' sets \['seed'\]"),
        (lambda: GridVariant("x", {}, {"output_dir": "/tmp"}), ValueError, r"\(evaluation\) sets \['output_dir'\]"),
        (lambda: GridVariant("x", "--loss_name ce"), TypeError, "mapping"),
    ],
)
def test_bad_presets_and_variants(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_run_grid_refuses_bad_input_before_training(tmp_path):
    variants = [GridVariant("ce", {"loss_name": "ce"})]
    out = tmp_path / "grid"
    with pytest.raises(ValueError, match="more than once"):
        run_grid(SKIN, [*variants, GridVariant("ce")], [0], out)
    with pytest.raises(ValueError, match="distinct integers"):
        run_grid(SKIN, variants, [0, 0], out)
    with pytest.raises(ValueError, match="distinct integers"):
        run_grid(SKIN, variants, [], out)
    with pytest.raises(ValueError, match=r"\['loss_name'\] set by both the shared overrides and variant 'ce'"):
        run_grid(SKIN, variants, [0], out, overrides={"loss_name": "focal"})
    with pytest.raises(ValueError, match=r"\['mc_dropout'\] set by both the shared overrides and the shared eval"):
        run_grid(SKIN, variants, [0], out, overrides={"mc_dropout": True}, evaluate_overrides={"mc_dropout": True})
    with pytest.raises(ValueError, match=r"the shared overrides sets \['ckpt_dir'\]"):
        run_grid(SKIN, variants, [0], out, overrides={"ckpt_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="not both"):
        run_grid(SKIN, variants, [0], out, overwrite=True, resume=True)
    with pytest.raises(ValueError, match="metric_names"):
        run_grid(SKIN, variants, [0], out, metric_names=["accuracy", "accuracy"])
    with pytest.raises(FileNotFoundError, match="not a bundle folder"):
        run_grid(tmp_path, variants, [0], out)
    out.mkdir()
    (out / "notes.txt").write_text("the user's file")
    with pytest.raises(FileExistsError, match=r"already holds results.*--resume.*--overwrite"):
        run_grid(SKIN, variants, [0], out)
    with pytest.raises(FileExistsError, match="is a file"):
        run_grid(SKIN, variants, [0], out / "notes.txt")
    assert (out / "notes.txt").read_text() == "the user's file" and sorted(os.listdir(out)) == ["notes.txt"]


def test_command_line_rejects_an_unknown_preset(capsys):
    with pytest.raises(SystemExit):
        main(["grid", "--bundle", str(SKIN), "--output_dir", "x", "--preset", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- reading metrics and the table


def test_read_metrics_and_default_names(tmp_path):
    report = {
        "num_samples": 28,
        "num_classes": 2,
        "decision_threshold": 0.3,
        "class_priors": None,
        "accuracy": 0.75,
        "f1_macro": 0.5,
        "auc": None,
        "confusion_matrix": [[1, 2], [3, 4]],
        "per_class": {"a": {"f1": 0.2}},
        "mc_dropout": False,
        "mc_samples": None,
    }
    assert default_metric_names(report) == ["accuracy", "f1_macro", "auc"]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test": report, "validation": {"accuracy": 1.0}}))
    assert read_metrics(path, "test") == {"accuracy": 0.75, "f1_macro": 0.5, "auc": None}
    assert read_metrics(path, "test", ["f1_macro", "num_samples"]) == {"f1_macro": 0.5, "num_samples": 28.0}
    with pytest.raises(ValueError, match=r"no report under 'val' \(its entries: \['test', 'validation'\]\)"):
        read_metrics(path, "val")
    with pytest.raises(ValueError, match=r"has no metric\(s\) \['jaccard'\]"):
        read_metrics(path, "test", ["accuracy", "jaccard"])
    with pytest.raises(ValueError, match="'per_class'] is not a number"):
        read_metrics(path, "test", ["per_class"])
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        read_metrics(tmp_path / "missing.json", "test")


def test_grid_table_mean_sd_and_markdown():
    variants = [GridVariant("ce", {"loss_name": "ce"}, label="cross-entropy"), GridVariant("bbfl")]
    values = {"ce": [0.5, 0.6, 0.4], "bbfl": [0.7, None, 0.9]}
    runs = {
        name: [{"seed": s, "metrics": {"f1": v, "auc": 0.8}} for s, v in zip((0, 1, 2), vs, strict=True)]
        for name, vs in values.items()
    }
    table = grid_table(variants, runs, ["f1", "auc"], title="T")
    assert table["seeds"] == [0, 1, 2] and table["metric_names"] == ["f1", "auc"]
    ce, bbfl = table["variants"]
    assert ce["summary"]["f1"]["mean"] == pytest.approx(0.5) and ce["summary"]["f1"]["n"] == 3
    assert ce["summary"]["f1"]["sd"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.4]))
    assert bbfl["summary"]["f1"] == {
        "mean": pytest.approx(0.8),
        "sd": pytest.approx(statistics.stdev([0.7, 0.9])),
        "n": 2,
    }
    assert bbfl["summary"]["auc"]["sd"] == pytest.approx(0.0)
    markdown = format_grid(table)
    assert markdown.startswith("# T\n")
    assert "| variant | f1 | AUC |" in markdown
    assert "| cross-entropy | 0.500 ± 0.100 | 0.800 ± 0.000 |" in markdown
    assert "| bbfl | 0.800 ± 0.141 (n = 2) | 0.800 ± 0.000 |" in markdown
    assert "- `ce/`, cross-entropy: `--loss_name ce`" in markdown
    assert "- `bbfl/`: `(bundle defaults)`" in markdown
    one_seed = grid_table(variants[:1], {"ce": runs["ce"][:1]}, ["f1"])
    assert one_seed["variants"][0]["summary"]["f1"] == {"mean": 0.5, "sd": None, "n": 1}
    assert "| cross-entropy | 0.500 |" in format_grid(one_seed)
    with pytest.raises(ValueError, match="'bbfl' has no runs"):
        grid_table(variants, {"ce": runs["ce"]}, ["f1"])
    with pytest.raises(ValueError, match=r"no metric\(s\) \['dice'\]"):
        grid_table(variants, runs, ["dice"])


# ---------------------------------------------------------------- a tiny grid on the skin lesion bundle


def _tiny(shared_data) -> list[str]:
    """Shared bundle overrides of a seconds-long run: DermaMNIST subset, small CNN, 32 px, one epoch."""
    return [
        *("--dataset_dir", str(shared_data / "medmnist")),
        *("--data_kwargs", "{'flag': 'dermamnist', 'download': False}"),
        *("--max_items_per_split", "28", "--network_name", "small_cnn", "--image_size", "32"),
        *("--batch_size", "14", "--num_epochs", "1", "--num_workers", "0", "--progress_bar", "false"),
    ]


def test_a_misspelt_grid_override_stops_the_run_before_training(tmp_path, shared_data):
    """The bundles check in-process overrides as they check a command line's (no silently ignored --loss_nmae),
    and the command ends in one line."""
    command = [sys.executable, "-m", "monai_imbalance.compare", "grid", "--bundle", str(SKIN)]
    command += ["--output_dir", str(tmp_path / "grid"), "--seeds", "0", "--variant", "focal", "--loss_nmae focal"]
    result = subprocess.run([*command, "--", *_tiny(shared_data)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown override --loss_nmae: no such key in ") and "--loss_name" in last, last
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.pt"))


@pytest.mark.e2e
def test_grid_command_on_the_skin_lesion_bundle(tmp_path, shared_data, capsys):
    out = tmp_path / "grid"
    metrics = ["f1_macro", "balanced_accuracy", "accuracy"]
    command = ["grid", "--bundle", str(SKIN), "--output_dir", str(out), "--seeds", "0", "--metrics", *metrics]
    command += ["--variant", "ce", "--loss_name ce"]
    command += ["--variant", "focal_thr", "--loss_name focal --threshold_method prior_correction"]
    command += ["--use_threshold true"]  # focal_thr's evaluation-only overrides
    assert main([*command, "--", *_tiny(shared_data)]) == 0
    printed = capsys.readouterr().out
    markdown = (out / "grid.md").read_text()
    assert markdown in printed
    table = json.loads((out / "grid.json").read_text())
    assert table["metrics_key"] == "test" and table["seeds"] == [0] and table["metric_names"] == metrics
    assert [row["name"] for row in table["variants"]] == ["ce", "focal_thr"]
    for row in table["variants"]:
        run_dir = out / row["name"] / "seed0"
        evaluation = {"ce": "test-model", "focal_thr": "test-model-threshold"}[row["name"]]  # its own folder
        report = json.loads((run_dir / "eval" / evaluation / "metrics.json").read_text())["test"]
        assert report["num_samples"] == 28
        (run,) = row["runs"]
        assert run["metrics_file"] == str(run_dir / "eval" / evaluation / "metrics.json")
        for name in metrics:
            assert run["metrics"][name] == pytest.approx(report[name])
            assert row["summary"][name] == {"mean": pytest.approx(report[name]), "sd": None, "n": 1}
        cells = " | ".join(f"{report[name]:.3f}" for name in metrics)
        assert f"| {row['name']} | {cells} |" in markdown
        assert json.loads((run_dir / "grid_run.json").read_text())["status"] == "evaluated"
    # the evaluation-only override reached the evaluation (the decision rule chosen in training was applied)
    thr_dir, ce_dir = out / "focal_thr" / "seed0", out / "ce" / "seed0"
    assert "decision_threshold" in json.loads((thr_dir / "models" / "metrics.json").read_text())
    thr_report, ce_report_file = (
        thr_dir / "eval" / "test-model-threshold" / "metrics.json",
        ce_dir / "eval" / "test-model" / "metrics.json",
    )
    assert json.loads(thr_report.read_text())["test"]["class_priors"] is not None
    assert json.loads(ce_report_file.read_text())["test"]["class_priors"] is None
    assert "evaluation only: `--use_threshold true`" in markdown
    # each run records the overrides the grid gave it, as a command-line run records its own
    recorded = json.loads((ce_dir / "models" / "metrics.json").read_text())["settings"]["overrides"]
    assert recorded["loss_name"] == "ce" and recorded["seed"] == 0 and recorded["ckpt_dir"] == str(ce_dir / "models")

    # the same command again is refused; --resume reads the finished runs back without rerunning them
    with pytest.raises(FileExistsError, match="--overwrite"):
        main([*command, "--", *_tiny(shared_data)])
    outputs = [*out.rglob("*.pt"), *out.rglob("eval/*/metrics.json")]
    assert len(outputs) == 6  # per run: model.pt, last_checkpoint_epoch=1.pt, eval/<evaluation>/metrics.json
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    assert main([*command, "--resume", "--", *_tiny(shared_data)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "grid.json").read_text())["variants"] == table["variants"]

    # an interrupted grid: ce's training stopped after its checkpoint, focal_thr was trained but not evaluated
    for run_dir, status in ((ce_dir, "training"), (thr_dir, "trained")):
        state = json.loads((run_dir / "grid_run.json").read_text())
        (run_dir / "grid_run.json").write_text(json.dumps({**state, "status": status}))
    thr_report.unlink()
    thr_model = (thr_dir / "models" / "model.pt").stat().st_mtime_ns
    ce_report = ce_report_file.stat().st_mtime_ns
    # ce's training continues from last_checkpoint_epoch=1.pt (without the bundle's --resume true it would refuse
    # to start over the checkpoints); it had finished its one epoch, so the model and the metrics stay the same
    assert main([*command, "--resume", "--", *_tiny(shared_data)]) == 0
    assert (thr_dir / "models" / "model.pt").stat().st_mtime_ns == thr_model  # evaluated only
    assert ce_report_file.stat().st_mtime_ns != ce_report  # evaluated again (the earlier evaluation moved aside)
    assert thr_report.is_file() and len(list((ce_dir / "eval").glob("test-model.replaced-*"))) == 1
    assert all(json.loads((d / "grid_run.json").read_text())["status"] == "evaluated" for d in (ce_dir, thr_dir))
    assert json.loads((out / "grid.json").read_text())["variants"] == table["variants"]

    # resuming with other settings is an error, not a silent mix
    changed = [c if c != "--loss_name ce" else "--loss_name ldam" for c in command]
    with pytest.raises(ValueError, match="other settings"):
        main([*changed, "--resume", "--", *_tiny(shared_data)])
