"""Calibration and referral through a classification bundle: train (temperature and referral rule fitted on
validation), evaluate with and without MC dropout, infer with the rule applied unchanged."""

from __future__ import annotations

import csv
import math

import pytest
from bundle_runner import read_json, run_bundle_in_process, tiny_dermamnist_overrides

BUNDLE = "skin_lesion_classification"
pytestmark = pytest.mark.e2e


def test_temperature_and_referral_round_trip(tmp_path, shared_data):
    args = tiny_dermamnist_overrides(tmp_path, shared_data)
    run_bundle_in_process(BUNDLE, ["train"], {**args, "calibrate": "temperature", "referral_rate": 0.25})
    stored = read_json(tmp_path / "models" / "metrics.json")
    temperature = stored["temperature"]["temperature"]
    assert temperature > 0 and stored["temperature"]["nll_after"] <= stored["temperature"]["nll_before"] + 1e-9
    rule = stored["referral_rule"]
    assert rule["score"] == "max_probability" and rule["temperature"] == temperature
    assert rule["referred_fraction"] == pytest.approx(7 / 28)  # 28 validation images: exactly 7 referred (no ties)

    for mc in (False, True):
        overrides = {**args, "mc_dropout": mc, "mc_samples": 3}
        run = run_bundle_in_process(BUNDLE, ["train", "evaluate"], overrides)
        evaluation = tmp_path / "eval" / ("test-model-mc3" if mc else "test-model")
        test = read_json(evaluation / "metrics.json")["test"]
        for key in ("ece", "classwise_ece", "brier", "nll", "aurc", "e_aurc", "uncertainty_auroc"):
            assert test[key] is None or math.isfinite(test[key]), key
        assert 0 <= test["ece"] <= 1 and 0 <= test["aurc"] <= 1
        assert list(test["referral"]) == ["0", "0.1", "0.2", "0.3", "0.5"]
        assert test["referral"]["0"]["accuracy"] == pytest.approx(test["accuracy"])
        assert 28 - 6 <= test["referral"]["0.2"]["num_retained"] <= 28  # 6 referred, fewer where scores tie
        assert test["mc_dropout"] is mc and test["temperature"] == pytest.approx(temperature)
        expected_scores = {"max_probability", "entropy"} | ({"mutual_information", "variance"} if mc else set())
        assert set(test["uncertainty_scores"]) == expected_scores
        if mc:  # the rule was fitted on the deterministic pass: not applied to MC scores
            assert "referral_rule" not in test and "ece_before_temperature" not in test
        else:
            assert test["referral_rule"]["threshold"] == rule["threshold"]
            assert "ece_before_temperature" in test
        assert "AURC" in run.stdout and "kept cases after referral" in run.stdout
        for name in ("reliability_diagram.png", "risk_coverage.png"):
            assert (evaluation / name).read_bytes()[:4] == b"\x89PNG"

    # the stored rule applied by evaluation to the validation split (a separate code path: logits / T, softmax)
    # refers the share it was fitted for
    run_bundle_in_process(
        BUNDLE, ["train", "evaluate"], {**args, "eval_split": "val", "output_dir": str(tmp_path / "val")}
    )
    validation = read_json(tmp_path / "val" / "val-model" / "metrics.json")["val"]
    assert validation["referral_rule"]["referred_fraction"] == rule["referred_fraction"] == 7 / 28
    assert validation["referral_rule"]["accuracy"] == pytest.approx(rule["retained_accuracy"])

    run = run_bundle_in_process(BUNDLE, ["train", "inference"], {**args, "overwrite": True, "predict_test_split": True})
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"uncertainty", "refer"} <= set(rows[0])
    referred = 0
    for row in rows:
        probabilities = [float(v) for k, v in row.items() if k.startswith("prob_")]
        u = float(row["uncertainty"])
        assert u == pytest.approx(1 - max(probabilities), abs=1e-5)
        assert row["refer"] == ("1" if u > rule["threshold"] else "0")  # the stored threshold, unchanged
        referred += row["refer"] == "1"
    assert f"referred {referred} of {len(rows)}" in run.stdout

    # a rule fitted without MC dropout is not applied to MC scores
    failed = run_bundle_in_process(
        BUNDLE,
        ["train", "inference"],
        {**args, "overwrite": True, "predict_test_split": True, "mc_dropout": True, "mc_samples": 2},
        expect_failure=True,
    )
    assert "error: the referral rule" in failed.stderr and "--mc_dropout false" in failed.stderr


def test_two_process_training_fits_temperature_and_referral(tmp_path, shared_data):
    from bundle_runner import run_bundle

    args = tiny_dermamnist_overrides(tmp_path, shared_data, calibrate="temperature", referral_rate=0.25)
    run_bundle(BUNDLE, ["train", "multi_gpu_train"], args, nproc=2)
    stored = read_json(tmp_path / "models" / "metrics.json")
    assert stored["temperature"]["num_samples"] == stored["referral_rule"]["num_samples"] == 28  # both ranks' cases
    assert stored["referral_rule"]["referred_fraction"] == pytest.approx(7 / 28)
