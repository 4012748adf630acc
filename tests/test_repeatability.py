"""Tests of monai_imbalance.metrics.repeatability: scores, report, ICC, paired comparison, cumulative metric."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from monai_imbalance.metrics import (
    RepeatabilityMetric,
    compare_repeatability,
    continuous_score,
    intraclass_correlation,
    repeatability_report,
)
from monai_imbalance.metrics.repeatability import _cluster_sampler
from monai_imbalance.reporting import to_jsonable

# Four patients with repeats and one with a single image, K = 5 (scores in [0, 4]).
#   a: [1.0, 1.5]       d = 1.0 - 1.5 = -0.5   mean 1.25
#   b: [2.0, 2.2, 1.6]  pairs -0.2, 0.4, 0.6 -> d = 2.2 - 1.6 = 0.6   mean 1.9333
#   c: [3.0, 3.0]       d = 0                  mean 3.0
#   d: [0.5, 0.1]       d = 0.4                mean 0.3
#   e: [2.0]            skipped
SCORES = [1.0, 1.5, 2.0, 2.2, 1.6, 3.0, 3.0, 0.5, 0.1, 2.0]
PATIENTS = ["a", "a", "b", "b", "b", "c", "c", "d", "d", "e"]
PREDICTIONS = [1, 2, 2, 2, 2, 3, 3, 0, 0, 2]  # only patient a gets two classes


def test_continuous_score_is_the_expected_class_index():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(continuous_score(probs), torch.tensor([0.0, 1.3, 2.0], dtype=torch.float64))
    binary = continuous_score(np.array([[0.25], [0.9]]))
    assert isinstance(binary, np.ndarray)
    np.testing.assert_allclose(binary, [0.25, 0.9])
    # two-channel softmax: the expected index is the probability of class 1
    np.testing.assert_allclose(continuous_score(np.array([[0.3, 0.7]])), [0.7])


def test_continuous_score_rejects_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="sum to 1"):
        continuous_score(torch.tensor([[0.2, 0.2, 0.2]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        continuous_score(torch.tensor([[2.0, -1.0]]))
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        continuous_score(torch.ones(2, 3, 4) / 3)
    with pytest.raises(TypeError):
        continuous_score([[0.5, 0.5]])  # type: ignore[arg-type]


def test_icc_matches_shrout_fleiss_table():
    # Shrout & Fleiss (1979), Table 2: 6 targets, 4 judges; published ICC(2,1) = 0.29
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert intraclass_correlation(ratings) == pytest.approx(0.2898, abs=1e-4)
    assert intraclass_correlation(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])) == 1.0
    assert np.isnan(intraclass_correlation(np.ones((3, 2))))
    with pytest.raises(ValueError, match="at least 2"):
        intraclass_correlation(np.ones((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        intraclass_correlation([[1.0, np.nan], [1.0, 2.0]])


def test_report_matches_hand_computation():
    r = repeatability_report(SCORES, PATIENTS, num_classes=5, predictions=PREDICTIONS, n_boot=200, seed=0)
    # d sorted: [-0.5, 0, 0.4, 0.6]; linear percentiles at positions 0.075 and 2.925:
    # P2.5 = -0.5 + 0.075 * 0.5 = -0.4625, P97.5 = 0.4 + 0.925 * 0.2 = 0.585
    assert r["diff_percentiles"] == pytest.approx([-0.4625, 0.585])
    assert r["loa"] == pytest.approx((0.585 + 0.4625) / (2 * 4))
    # SD(d, ddof=1): mean 0.125, squared deviations sum 0.7075 -> sqrt(0.7075 / 3)
    assert r["loa_sd"] == pytest.approx(1.96 * np.sqrt(0.7075 / 3) / 4)
    assert r["mean_diff"] == pytest.approx(0.125)
    assert r["mean_abs_diff"] == pytest.approx(0.375)
    assert r["disagreement_rate"] == pytest.approx(0.25)
    assert (r["n_patients"], r["n_skipped"], r["n_images"], r["num_classes"]) == (4, 1, 9, 5)
    # ICC(2,1) of the first two images per patient [[1, 1.5], [2, 2.2], [3, 3], [0.5, 0.1]]:
    # MSR = 2.67125, MSC = 0.01125, MSE = 0.07125 -> 2.6 / (2.7425 + 2 (0.01125 - 0.07125) / 4)
    assert r["icc_images"] == 2
    assert r["icc"] == pytest.approx(2.6 / 2.7125)
    means = [1.25, (2.0 + 2.2 + 1.6) / 3, 3.0, 0.3]
    assert r["per_patient"]["mean_score"] == pytest.approx(means)
    assert r["per_patient"]["difference"] == pytest.approx([-0.5, 0.6, 0.0, 0.4])
    assert r["between_patient_sd"] == pytest.approx(np.std(means, ddof=1))
    assert r["loa_rel"] == pytest.approx(((0.585 + 0.4625) / 2) / np.std(means, ddof=1))
    json.dumps(to_jsonable(r))  # JSON-ready


def test_binary_scores_use_range_one():
    r = repeatability_report([0.1, 0.3, 0.8, 0.7], ["p", "p", "q", "q"], num_classes=2, n_boot=0)
    # d = [-0.2, 0.1]: P2.5 = -0.2 + 0.025 * 0.3, P97.5 = -0.2 + 0.975 * 0.3
    assert r["loa"] == pytest.approx(0.95 * 0.3 / 2)
    assert r["loa_sd"] == pytest.approx(1.96 * np.std([-0.2, 0.1], ddof=1))
    assert r["loa_ci"] is None and r["disagreement_rate"] is None


def test_sign_follows_image_order():
    r = repeatability_report([2.0, 1.0, 3.0], ["p", "p", "p"], num_classes=4, n_boot=0)
    assert r["per_patient"]["difference"] == [-2.0]  # s_1 - s_2 = 1 - 3 (pair 1 < 2) beats 2 - 1 and 2 - 3


def test_visits_split_repeat_groups():
    scores = [1.0, 1.2, 3.0, 3.4]
    patients = ["p", "p", "p", "p"]
    pooled = repeatability_report(scores, patients, num_classes=5, n_boot=0)
    assert pooled["n_patients"] == 1 and pooled["per_patient"]["difference"] == [pytest.approx(-2.4)]
    by_visit = repeatability_report(scores, patients, num_classes=5, n_boot=0, visit_ids=[1, 1, 2, 2])
    assert by_visit["n_patients"] == 2 and by_visit["n_patients_distinct"] == 1
    assert by_visit["per_patient"]["visit_id"] == ["1", "2"]
    assert by_visit["per_patient"]["difference"] == pytest.approx([-0.2, -0.4])


def test_bootstrap_is_reproducible_by_seed():
    rng = np.random.default_rng(0)
    scores = np.clip(rng.uniform(0, 4, 60)[:, None] + rng.normal(0, 0.2, (60, 2)), 0, 4).ravel()
    patients = np.repeat(np.arange(60), 2)
    a = repeatability_report(scores, patients, 5, n_boot=300, seed=1)
    b = repeatability_report(scores, patients, 5, n_boot=300, seed=1)
    c = repeatability_report(scores, patients, 5, n_boot=300, seed=2)
    assert a["loa_ci"] == b["loa_ci"] and a["loa_sd_ci"] == b["loa_sd_ci"]
    assert a["loa_ci"] != c["loa_ci"]
    assert a["loa_ci"][0] < a["loa"] < a["loa_ci"][1]
    assert a["loa_pm"] == pytest.approx((a["loa_ci"][1] - a["loa_ci"][0]) / 2)


def test_bootstrap_resamples_whole_patients():
    draw = _cluster_sampler(["p", "q", "p", "r", "q", "p"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = np.bincount(draw(rng), minlength=6)
        assert counts[0] == counts[2] == counts[5]  # the three units of patient p come together
        assert counts[1] == counts[4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": [1.0, 2.0], "patient_ids": ["a", "b"]}, "more than one image"),
        ({"patient_ids": ["a"]}, "patient_ids"),
        ({"num_classes": 1}, "num_classes"),
        ({"scores": [0.0, 4.5]}, r"\[0, 4\]"),
        ({"scores": [0.0, np.nan]}, "finite"),
        ({"predictions": [1]}, "predictions"),
        ({"visit_ids": [1]}, "visit_ids"),
        ({"n_boot": -1}, "n_boot"),
    ],
)
def test_report_bad_input(kwargs, match):
    args = {"scores": [1.0, 2.0], "patient_ids": ["a", "a"], "num_classes": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        repeatability_report(**args)


def _paired_reports(shrink: float, n: int = 40):
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.5, 3.5, n)
    noise = rng.normal(0, 0.3, (n, 2))
    patients = np.repeat([f"p{i}" for i in range(n)], 2)
    a = repeatability_report(np.clip(truth[:, None] + shrink * noise, 0, 4).ravel(), patients, 5, n_boot=0)
    b = repeatability_report(np.clip(truth[:, None] + noise, 0, 4).ravel(), patients, 5, n_boot=0)
    return a, b


def test_compare_detects_a_clearly_lower_loa():
    a, b = _paired_reports(shrink=1 / 3)
    result = compare_repeatability(a, b, n_boot=500, seed=0)
    assert result["difference"] == pytest.approx(a["loa"] - b["loa"])
    assert result["difference"] < 0 and result["ci"][1] < 0 and result["p_value"] < 0.05
    assert result["n_patients"] == 40
    assert compare_repeatability(a, b, n_boot=500, seed=0) == result  # reproducible by seed
    # read back from JSON (as stored in metrics.json)
    a_json, b_json = (json.loads(json.dumps(to_jsonable(r))) for r in (a, b))
    assert compare_repeatability(a_json, b_json, n_boot=500, seed=0) == result


def test_compare_identical_models_is_not_significant():
    a, _ = _paired_reports(shrink=1.0)
    result = compare_repeatability(a, a, metric="loa_sd", n_boot=200)
    assert result["difference"] == 0 and result["ci"] == [0.0, 0.0] and result["p_value"] == 1.0


def test_compare_uses_only_shared_patients_and_checks_input():
    a, b = _paired_reports(shrink=0.5)
    fewer = repeatability_report([1.0, 1.5, 2.0, 2.5], ["p0", "p0", "p1", "p1"], 5, n_boot=0)
    assert compare_repeatability(a, fewer, metric="mean_abs_diff", n_boot=50)["n_patients"] == 2
    with pytest.raises(ValueError, match="share 0"):
        compare_repeatability(a, repeatability_report([1.0, 1.5], ["x", "x"], 5, n_boot=0))
    with pytest.raises(ValueError, match="num_classes"):
        compare_repeatability(a, {**b, "num_classes": 3})
    with pytest.raises(ValueError, match="metric"):
        compare_repeatability(a, b, metric="icc")
    with pytest.raises(ValueError, match="not a repeatability_report"):
        compare_repeatability(a, {"loa": 0.1})


def _probs(scores_per_class: list[list[float]]) -> torch.Tensor:
    return torch.tensor(scores_per_class, dtype=torch.float32)


def test_metric_collects_batches_and_matches_the_report():
    probs = torch.softmax(torch.randn(10, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    metric = RepeatabilityMetric(n_boot=100, seed=3)
    scores = metric(probs[:4], patient_ids=PATIENTS[:4])  # a batch-first tensor
    assert scores.shape == (4,)
    metric(list(probs[4:]), y=None, patient_ids=np.array(PATIENTS[4:]))  # a decollated list
    report = metric.aggregate()
    expected = repeatability_report(
        continuous_score(probs).numpy(), PATIENTS, 5, predictions=probs.argmax(1).numpy(), n_boot=100, seed=3
    )
    assert report["loa"] == pytest.approx(expected["loa"])
    assert report["loa_sd"] == pytest.approx(expected["loa_sd"])
    assert report["per_patient"] == expected["per_patient"]
    assert report["disagreement_rate"] == expected["disagreement_rate"]
    assert report["loa_ci"] == pytest.approx(expected["loa_ci"])
    metric.reset()
    with pytest.raises(ValueError, match="no data"):
        metric.aggregate()


def test_metric_binary_outputs_and_explicit_predictions():
    metric = RepeatabilityMetric(threshold=0.5, n_boot=0)
    metric(
        _probs([[0.2], [0.6], [0.9], [0.95]]), patient_ids=torch.tensor([7, 7, 8, 8]), visit_ids=["v", "v", "v", "v"]
    )
    report = metric.aggregate()
    assert report["num_classes"] == 2 and report["per_patient"]["patient_id"] == ["7", "8"]
    assert report["disagreement_rate"] == 0.5  # 0.2 -> 0, 0.6 -> 1
    metric.reset()
    metric(_probs([[0.2], [0.6]]), patient_ids=["x", "x"], predictions=[1, 1])
    assert metric.aggregate()["disagreement_rate"] == 0.0


def test_ids_of_any_scalar_type_are_compared_as_strings():
    scores = [1.0, 1.2, 2.0, 2.5]
    as_tensors = repeatability_report(scores, [torch.tensor(3), torch.tensor(3), np.int64(4), "4"], 5, n_boot=0)
    assert as_tensors["per_patient"]["patient_id"] == ["3", "4"]
    as_bytes = repeatability_report(scores, np.array([b"x", b"x", b"y", b"y"]), 5, n_boot=0)
    assert as_bytes["per_patient"]["patient_id"] == ["x", "y"]
    with pytest.raises(TypeError, match="one scalar id"):
        repeatability_report(scores, [np.array([1, 2])] * 4, 5, n_boot=0)
    with pytest.raises(TypeError, match="not a single string"):
        repeatability_report(scores, "abcd", 5, n_boot=0)


def test_metric_bad_input():
    metric = RepeatabilityMetric()
    with pytest.raises(ValueError, match="patient_ids"):
        metric(_probs([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="1 predictions but 2 patient_ids"):
        metric(_probs([[0.5, 0.5]]), patient_ids=["a", "b"])
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        metric(torch.ones(2, 2, 3, 3) / 2, patient_ids=["a", "b"])
    metric(_probs([[0.5, 0.5]]), patient_ids=["a"], visit_ids=["1"])
    with pytest.raises(ValueError, match="every batch or for none"):
        metric(_probs([[0.5, 0.5]]), patient_ids=["a"])
    with pytest.raises(ValueError, match="channels"):
        metric(_probs([[0.2, 0.3, 0.5]]), patient_ids=["a"], visit_ids=["1"])
    mismatch = RepeatabilityMetric(num_classes=4)
    mismatch(_probs([[0.5, 0.5], [0.4, 0.6]]), patient_ids=["a", "a"])
    with pytest.raises(ValueError, match="num_classes=4"):
        mismatch.aggregate()
    with pytest.raises(ValueError, match="num_classes"):
        RepeatabilityMetric(num_classes=1)


def _two_rank_data(rank: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """Rank 0 gets 6 images, rank 1 gets 4 (uneven).

    Units: a/v0 x2, b/v0 x2, b/v1, c/v0 x2 (one image on each rank), d/v0, d/v1, e/v0: three with repeats.
    """
    probs = torch.softmax(torch.randn(10, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    part = slice(0, 6) if rank == 0 else slice(6, 10)
    visits = ["v0", "v0", "v0", "v0", "v1", "v0", "v0", "v0", "v1", "v0"]
    return probs[part], PATIENTS[part], visits[part]


def _two_rank_expected() -> dict:
    probs = torch.cat([_two_rank_data(0)[0], _two_rank_data(1)[0]])
    visits = _two_rank_data(0)[2] + _two_rank_data(1)[2]
    return repeatability_report(
        continuous_score(probs).numpy(), PATIENTS, 5, predictions=probs.argmax(1).numpy(), n_boot=50, visit_ids=visits
    )


def test_metric_gathers_through_the_collectives_in_rank_order(monkeypatch):
    """Rank 0's view of a 2-rank run: tensors via MONAI's all-gather, ids via all_gather_object, kept aligned.

    Rank 1 runs the same code, so it sends its lists in the same collective order (patients, visits,
    channel count); the fakes hand rank 0 what rank 1 would send.
    """
    import monai.metrics.metric as monai_metric

    other = RepeatabilityMetric(n_boot=50)
    probs1, patients1, visits1 = _two_rank_data(1)
    other(probs1, patient_ids=patients1, visit_ids=visits1)
    their_tensors = {b[0].dtype: torch.stack(b) for b in other._buffers}
    their_objects = [other._patient_ids, other._visit_ids, [other._channels]]

    def fake_tensor_gather(data: torch.Tensor, concat: bool = True) -> torch.Tensor:
        return torch.cat([data, their_tensors[data.dtype]])

    def fake_object_gather(output: list, obj: list) -> None:
        output[0], output[1] = obj, their_objects.pop(0)

    metric = RepeatabilityMetric(n_boot=50)
    probs0, patients0, visits0 = _two_rank_data(0)
    metric(probs0, patient_ids=patients0, visit_ids=visits0)
    monkeypatch.setattr(monai_metric, "evenly_divisible_all_gather", fake_tensor_gather)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *args: 2)
    monkeypatch.setattr(torch.distributed, "all_gather_object", fake_object_gather)
    report = metric.aggregate()
    expected = _two_rank_expected()
    assert their_objects == []  # patients, visits and channels all went through all_gather_object
    assert report["per_patient"] == expected["per_patient"]
    assert report["loa"] == pytest.approx(expected["loa"])
    assert report["disagreement_rate"] == expected["disagreement_rate"]


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        probs, patients, visits = _two_rank_data(rank)
        metric = RepeatabilityMetric(n_boot=50)
        metric(probs, patient_ids=patients, visit_ids=visits)
        report = metric.aggregate()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(to_jsonable(report), f)
    finally:
        dist.destroy_process_group()


@pytest.mark.e2e
def test_metric_gathers_across_two_real_gloo_ranks(tmp_path):
    """Two real processes (gloo): slow (each imports torch and MONAI), hence marked e2e."""
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    expected = json.loads(json.dumps(to_jsonable(_two_rank_expected())))
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report["per_patient"] == expected["per_patient"]
        assert report["loa"] == pytest.approx(expected["loa"])
        assert (report["n_images"], report["n_skipped"]) == (expected["n_images"], expected["n_skipped"]) == (6, 4)
