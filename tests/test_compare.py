"""Tests of monai_imbalance.compare: the Table-1 statistics, the table, and the command on two tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundle_runner import BUNDLES

from monai_imbalance.compare import (
    VARIANTS,
    EvaluationRecord,
    accuracy_with_ci,
    compare_accuracy,
    format_table1,
    main,
    parse_overrides,
    run_table1,
    table1,
    train_variants,
)
from monai_imbalance.metrics import repeatability_report

PATIENTS = ["a", "a", "b", "c", "c", "c", "d"]


def test_accuracy_with_ci_is_a_patient_bootstrap():
    correct = np.array([1, 0, 1, 1, 1, 0, 0])
    result = accuracy_with_ci(correct, PATIENTS, n_boot=300, seed=4)
    assert result["accuracy"] == pytest.approx(4 / 7)
    assert result["n_patients"] == 4 and result["n_images"] == 7 and result["n_boot"] == 300
    # the same replicates written out: draw 4 patients (sorted ids a, b, c, d) with replacement
    rng = np.random.default_rng(4)
    per_patient = {"a": (1, 2), "b": (1, 1), "c": (2, 3), "d": (0, 1)}  # (correct, images)
    table = [per_patient[p] for p in "abcd"]
    boot = []
    for draw in rng.integers(0, 4, size=(300, 4)):
        boot.append(sum(table[i][0] for i in draw) / sum(table[i][1] for i in draw))
    assert result["ci"] == pytest.approx(list(np.percentile(boot, [2.5, 97.5])))
    assert result["pm"] == pytest.approx((result["ci"][1] - result["ci"][0]) / 2)
    perfect = accuracy_with_ci([True] * 7, PATIENTS, n_boot=50)
    assert perfect["accuracy"] == 1.0 and perfect["ci"] == [1.0, 1.0] and perfect["pm"] == 0.0


def test_compare_accuracy_paired():
    same = compare_accuracy([1, 0, 1, 1, 0, 1, 0], [1, 0, 1, 1, 0, 1, 0], PATIENTS, n_boot=200)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0] and same["p_value"] == 1.0
    better = compare_accuracy(np.ones(7), np.zeros(7), PATIENTS, n_boot=199, seed=1)
    assert better["difference"] == 1.0 and better["ci"] == [1.0, 1.0]
    assert better["p_value"] == pytest.approx(2 / 200)  # every replicate > 0: 2 (1 + 0) / (B + 1)
    mixed = compare_accuracy([1, 1, 0, 1, 1, 1, 0], [1, 0, 0, 1, 0, 1, 0], PATIENTS, n_boot=500, seed=2)
    assert mixed["difference"] == pytest.approx(2 / 7) and mixed["ci"][0] >= 0 and mixed["n_patients"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 0], ["a"]), "2 correct entries but 1 patient"),
        (([1, 2, 0], ["a", "b", "c"]), "0/1"),
        (([], []), "non-empty"),
    ],
)
def test_bad_correctness(args, message):
    with pytest.raises(ValueError, match=message):
        accuracy_with_ci(*args)
    with pytest.raises(ValueError, match="n_boot"):
        accuracy_with_ci([1, 0], ["a", "b"], n_boot=0)


def test_parse_overrides_reads_values_as_the_bundle_command_line_does():
    parsed = parse_overrides(
        ["--image_size", "32", "--dataset_dir", "/data/knee", "--mc_dropout", "true", "--format_kwargs#csv={'a': 1}"]
    )
    assert parsed == {
        "image_size": 32,
        "dataset_dir": "/data/knee",
        "mc_dropout": "true",
        "format_kwargs#csv": {"a": 1},
    }
    # the YAML-like spelling the bundle docs show (Fire reads it for monai.bundle run): a dict, not a string
    yaml_like = parse_overrides(["--split_fractions", "{train: 0.6, val: 0.2, test: 0.2}", "--data_kwargs={flag: x}"])
    assert yaml_like == {"split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "data_kwargs": {"flag": "x"}}
    with pytest.raises(ValueError, match="no value"):
        parse_overrides(["--image_size"])
    with pytest.raises(ValueError, match="'--key value'"):
        parse_overrides(["image_size", "32"])


def _record(variant: str, seed: int, shift: float, correct: list[int]) -> EvaluationRecord:
    """A record whose repeat pairs differ by ``shift`` times a fixed pattern (smaller shift: better LoA)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 3.5, size=6)
    noise = np.array([1.0, -0.5, 0.8, -1.0, 0.3, 0.6])
    scores = np.stack([base, np.clip(base + shift * noise, 0, 4)], axis=1).reshape(-1)
    patients = [f"p{i // 2}" for i in range(12)]
    report = repeatability_report(scores, patients, 5, n_boot=100, visit_ids=["v"] * 12)
    return EvaluationRecord(
        variant=variant,
        seed=seed,
        checkpoint=f"{variant}.pt",
        output_dir=f"out/{variant}",
        classification={"accuracy": float(np.mean(correct))},
        repeatability=report,
        keys=[(f"x{i // 2}", i % 2) for i in range(12)],
        patients=patients,
        correct=np.asarray(correct, dtype=float),
    )


SHIFTS = {"ce": 0.4, "focal": 0.3, "ce_mc": 0.2, "focal_mc": 0.1}


def _records(seeds=(0, 1)) -> list[EvaluationRecord]:
    out = []
    for seed in seeds:
        for v in VARIANTS:
            correct = [1] * 8 + [0] * 4 if "focal" in v.key else [1] * 7 + [0] * 5
            out.append(_record(v.key, seed, SHIFTS[v.key] * (1 + 0.1 * seed), correct))
    return out


def test_table1_rows_tests_and_summary():
    table = table1(_records(), n_boot=100, n_boot_paired=200)
    assert [s["seed"] for s in table["seeds"]] == [0, 1]
    rows = table["seeds"][0]["rows"]
    assert [rows[v.key]["loa"] for v in VARIANTS] == sorted((rows[v.key]["loa"] for v in VARIANTS), reverse=True)
    assert rows["focal"]["accuracy"] == pytest.approx(8 / 12) and rows["ce"]["n_patients"] == 6
    first = table["seeds"][0]["comparisons"][0]
    assert (first["a"], first["b"]) == ("focal", "ce")
    # paper form (default): LoA is the bootstrap mean, the paired difference the mean of the paired replicates
    assert table["reporting"] == "paper" and rows["focal"]["loa"] == rows["focal"]["loa_boot_mean"]
    assert rows["focal"]["icc"] == rows["focal"]["icc_2k"] and rows["focal"]["icc_2_1"] < rows["focal"]["icc_2k"]
    assert first["loa"]["difference"] == pytest.approx(rows["focal"]["loa_plugin"] - rows["ce"]["loa_plugin"])
    assert first["loa"]["reported_difference"] == first["loa"]["difference_boot_mean"] < 0
    assert first["accuracy"]["difference"] == pytest.approx(1 / 12)
    summary = table["summary"]
    assert summary["n_seeds"] == 2 and summary["comparisons"][0]["loa_lower"] == 2
    expected = np.mean([table["seeds"][s]["rows"]["ce_mc"]["loa"] for s in (0, 1)])
    assert summary["rows"]["ce_mc"]["loa_mean"] == pytest.approx(expected)
    markdown = format_table1(table)
    for v in VARIANTS:
        assert f"{v.row} {v.label} | {rows[v.key]['loa']:.3f} ± {rows[v.key]['loa_pm']:.3f}" in markdown
        assert f"| {rows[v.key]['icc']:.3f} | {rows[v.key]['loa_rel']:.3f} | {rows[v.key]['n_patients']} |" in markdown
    assert "## summary over 2 seed(s)" in markdown and "| (ii) focal loss vs (i) cross-entropy | 2/2" in markdown
    assert "| 95% LoA (bootstrap mean, paper) ↓ |" in markdown and "| ICC(2,k), two-image units (paper) |" in markdown
    assert f"| {first['loa']['difference_boot_mean']:+.3f} [" in markdown


def test_table1_plugin_form_shows_the_plugin_loa_and_icc_2_1():
    table = table1(_records(seeds=(0,)), n_boot=100, n_boot_paired=200, reporting="plugin")
    rows = table["seeds"][0]["rows"]
    assert rows["ce"]["loa"] == rows["ce"]["loa_plugin"] and rows["ce"]["icc"] == rows["ce"]["icc_2_1"]
    first = table["seeds"][0]["comparisons"][0]
    assert first["loa"]["reported_difference"] == first["loa"]["difference"]
    markdown = format_table1(table)
    assert "| 95% LoA (plug-in) ↓ |" in markdown and "| ICC(2,1) |" in markdown
    assert f"{rows['ce']['loa']:.3f} ± {rows['ce']['loa_pm']:.3f}" in markdown
    with pytest.raises(ValueError, match="reporting must be one of"):
        table1(_records(seeds=(0,)), reporting="bootstrap")
    records = _records(seeds=(0,))
    del records[0].repeatability["icc_2k"]  # a report written before the paper form existed
    with pytest.raises(ValueError, match=r"has no \['icc_2k'\].*reporting='plugin'"):
        table1(records)


def test_table1_needs_all_variants_and_the_same_images():
    records = _records(seeds=(0,))
    with pytest.raises(ValueError, match=r"lacks the variant\(s\) \['focal_mc'\]"):
        table1(records[:3])
    records[1].keys = [(f"y{i}", 0) for i in range(12)]
    with pytest.raises(ValueError, match="different images"):
        table1(records, n_boot=10, n_boot_paired=10)


def test_run_table1_refuses_bad_arguments(tmp_path):
    (tmp_path / "ce").mkdir()
    (tmp_path / "ce" / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="one focal checkpoint per cross-entropy"):
        run_table1(BUNDLES / "knee_oa_grading", [tmp_path / "ce"], [], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="focal"):
        run_table1(BUNDLES / "knee_oa_grading", [tmp_path / "ce"], [tmp_path / "focal"], tmp_path / "out")
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_table1(BUNDLES / "knee_oa_grading", [tmp_path / "ce"], [tmp_path / "ce"], tmp_path)
    with pytest.raises(FileNotFoundError, match="not a bundle folder"):
        run_table1(tmp_path, [tmp_path / "ce"], [tmp_path / "ce"], tmp_path / "out")


@pytest.mark.e2e
def test_table_command_on_two_tiny_checkpoints(tmp_path, shared_data, capsys):
    data = [
        "--dataset_dir",
        str(shared_data / "knee_kl" / "png224_sample"),
        "--network_name",
        "small_cnn",
        "--image_size",
        "32",
        "--batch_size",
        "16",
        "--num_workers",
        "0",
        "--progress_bar",
        "false",
    ]
    runs = train_variants(
        BUNDLES / "knee_oa_grading", tmp_path / "runs", seeds=[0], overrides={**parse_overrides(data), "num_epochs": 1}
    )
    assert sorted(runs) == [("ce", 0), ("focal", 0)] and all((p / "model.pt").is_file() for p in runs.values())

    out = tmp_path / "table"
    command = ["table", "--bundle", str(BUNDLES / "knee_oa_grading")]  # `python -m monai_imbalance.compare table`
    command += ["--ce", str(runs[("ce", 0)]), "--focal", str(runs[("focal", 0)] / "model.pt")]
    command += ["--output_dir", str(out), "--mc_samples", "3", "--n_boot", "50", "--n_boot_paired", "100", "--", *data]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "| (iv) focal loss, MC dropout |" in printed
    assert (out / "table1.md").read_text() in printed
    table = json.loads((out / "table1.json").read_text())
    seed0 = table["seeds"][0]
    assert set(seed0["rows"]) == {v.key for v in VARIANTS} and seed0["repeats"]["source"] == "simulated"
    assert [(c["a"], c["b"]) for c in seed0["comparisons"]][:2] == [("focal", "ce"), ("focal_mc", "ce_mc")]
    for v in VARIANTS:
        evaluation = out / v.key / "seed0" / ("test-model-mc3" if v.mc_dropout else "test-model")
        metrics = json.loads((evaluation / "metrics.json").read_text())
        assert metrics["repeatability"]["mc_dropout"] is v.mc_dropout
        assert metrics["repeatability"]["n_boot"] == 50
        assert metrics["test"]["accuracy"] == pytest.approx(seed0["rows"][v.key]["accuracy"])
        assert (evaluation / "bland_altman.png").is_file()
    # the CE checkpoint's rows use the CE model, the focal rows the focal one
    assert seed0["rows"]["ce"]["checkpoint"].startswith(str(runs[("ce", 0)]))
    assert seed0["rows"]["focal_mc"]["checkpoint"] == str(runs[("focal", 0)] / "model.pt")
    # a second run into the same folder is refused before anything is evaluated
    again = ["table", "--bundle", str(BUNDLES / "knee_oa_grading"), "--ce", str(runs[("ce", 0)])]
    again += ["--focal", str(runs[("focal", 0)]), "--output_dir", str(out), "--", *data]
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(again)
