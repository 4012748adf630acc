"""Paper reporting form, canonical image order and the few-patients warning of the repeatability report.

The reference is a transliteration of the repeatability authors' reporting code (Lemay, Hoebel, Kalpathy-Cramer
et al., notebook ``repeatability_results.ipynb`` of github.com/andreanne-lemay/gray_zone_assessment):
``combine_by_patient`` (the signed pairwise difference of largest magnitude), ``print_repeatability_metrics``
(bootstrap of the patients, LoA as the mean of the replicates) and ``get_icc`` (pingouin's ``ICC2k``), with
pingouin's ``intraclass_corr`` formula transliterated from its two-way ANOVA (no pingouin dependency).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from monai_imbalance.metrics import intraclass_correlation, repeatability_report
from monai_imbalance.metrics.repeatability import MIN_PATIENTS, compare_repeatability

# ----------------------------------------------------------------- transliterated reference


def _pingouin_icc2k(data: pd.DataFrame, targets: str, raters: str, ratings: str) -> float:
    """pingouin.intraclass_corr(..., nan_policy="omit") row ``ICC2k``: two-way ANOVA with one rating per cell."""
    wide = data.pivot_table(index=targets, columns=raters, values=ratings, observed=True).dropna()
    x = wide.to_numpy(dtype=float)
    n, k = x.shape
    grand = x.mean()
    ss_targets = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_raters = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_cells = ((x - grand) ** 2).sum()  # one rating per cell: the cell means are the ratings
    ss_interaction = ss_cells - ss_targets - ss_raters  # the ANOVA's targets * raters row
    msb = ss_targets / (n - 1)
    msj = ss_raters / (k - 1)
    mse = ss_interaction / ((n - 1) * (k - 1))
    return float((msb - mse) / (msb + (msj - mse) / n))


def _authors_report(df: pd.DataFrame, max_class: int, n_boot: int, seed: int) -> dict[str, float]:
    """The authors' repeatability reporting on a per-image table (``patient``, ``image``, ``score``, ``bin_pred``).

    One bootstrap round with the draws of ``numpy.random.default_rng(seed).integers`` (the report's own draws when
    every patient has one unit) instead of ``DataFrame.sample`` repeated until Shapiro-Wilk passes.
    """
    df = df.sort_values("image")  # their code takes the table's row order: the canonical order is by image

    def diff(x):
        return x[0] - x[1]

    def get_abs_max(values):
        return 0 if len(values) < 1 else max(values, key=abs)

    per_patient = df.groupby("patient").agg(
        disagreement=pd.NamedAgg(column="bin_pred", aggfunc=lambda x: len(np.unique(x))),
        patient_diff=pd.NamedAgg(
            column="score", aggfunc=lambda x: get_abs_max(list(map(diff, list(itertools.combinations(x, 2)))))
        ),
        img_per_patient=pd.NamedAgg(column="score", aggfunc=lambda x: len(x)),
    )
    df_2img = per_patient[per_patient["img_per_patient"] > 1]
    n = len(df_2img)
    rng = np.random.default_rng(seed)
    diffs, loa, dis = [], [], []
    for _ in range(n_boot):
        temp_df = df_2img.iloc[rng.integers(0, n, size=n)]
        diffs.append(abs(temp_df["patient_diff"]).mean())
        loa.append(
            (np.percentile(temp_df["patient_diff"], 97.5) - np.percentile(temp_df["patient_diff"], 2.5))
            / (2 * max_class)
        )
        dis.append(len(temp_df[temp_df["disagreement"] > 1]) / len(temp_df))

    views = df.assign(view=df.groupby("patient").cumcount())
    two_images = views[views.groupby("patient")["score"].transform("size") == 2]
    return {
        "loa": float(np.mean(loa)),
        "loa_ci": [float(np.percentile(loa, 2.5)), float(np.percentile(loa, 97.5))],
        "loa_pm": float((np.percentile(loa, 97.5) - np.percentile(loa, 2.5)) / 2),
        "mean_abs_diff": float(np.mean(diffs)),
        "disagreement": float(np.mean(dis)),
        "icc": _pingouin_icc2k(two_images, targets="patient", raters="view", ratings="score"),
    }


def _study(n_patients: int = 40, seed: int = 0) -> pd.DataFrame:
    """Per-image table: most patients with two images, some with one; image ids shuffled against the rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        truth = rng.uniform(0.2, 3.8)
        for _ in range(1 if p % 7 == 3 else 2):
            score = float(np.clip(truth + rng.normal(0, 0.3), 0, 4))
            rows.append({"patient": f"p{p:02d}", "score": score, "bin_pred": round(score)})
    df = pd.DataFrame(rows)
    df["image"] = [f"img{i:03d}" for i in rng.permutation(len(df))]
    return df


def _report(df: pd.DataFrame, **kwargs) -> dict:
    return repeatability_report(
        df["score"].to_numpy(),
        df["patient"].tolist(),
        5,
        predictions=df["bin_pred"].to_numpy(),
        image_ids=df["image"].tolist(),
        **kwargs,
    )


# ----------------------------------------------------------------- paper form


def test_paper_form_equals_the_authors_reporting_code():
    df = _study()
    report = _report(df, n_boot=300, seed=3)
    ref = _authors_report(df, max_class=4, n_boot=300, seed=3)
    assert report["loa_boot_mean"] == pytest.approx(ref["loa"], rel=1e-12)
    assert report["loa_ci"] == pytest.approx(ref["loa_ci"], rel=1e-12)
    assert report["loa_pm"] == pytest.approx(ref["loa_pm"], rel=1e-12)
    assert report["mean_abs_diff_boot_mean"] == pytest.approx(ref["mean_abs_diff"], rel=1e-12)
    assert report["disagreement_rate_boot_mean"] == pytest.approx(ref["disagreement"], rel=1e-12)
    assert report["icc_2k"] == pytest.approx(ref["icc"], rel=1e-12)
    assert report["icc_2k_units"] == 40 - 6  # p03, p10, p17, p24, p31, p38 have one image
    # the two forms differ: the bootstrap mean of a percentile range and ICC(2,k) vs ICC(2,1)
    assert report["loa_boot_mean"] != pytest.approx(report["loa"], rel=1e-3)
    assert report["icc_2k"] > report["icc"]


def test_icc_2k_is_for_units_with_exactly_two_images():
    df = _study(n_patients=12)
    extra = pd.DataFrame([{"patient": "p00", "score": 3.9, "bin_pred": 4, "image": "img999"}])
    report = _report(pd.concat([df, extra], ignore_index=True), n_boot=0)
    assert report["icc_2k_units"] == 12 - 2 - 1  # p03 and p10 have one image, p00 now three
    assert report["loa_boot_mean"] is None and report["mean_abs_diff_boot_mean"] is None
    two = df[df["patient"] != "p00"].sort_values("image")
    two = two[two.groupby("patient")["score"].transform("size") == 2]
    pairs = np.stack([g["score"].to_numpy() for _, g in two.groupby("patient")])
    assert report["icc_2k"] == pytest.approx(intraclass_correlation(pairs, form="average"))


def test_icc_average_form_matches_shrout_fleiss_and_pingouin():
    # Shrout & Fleiss (1979), Table 2: published ICC(2,k) = 0.62 (ICC(2,1) = 0.29)
    ratings = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    icc2k = intraclass_correlation(ratings, form="average")
    assert icc2k == pytest.approx(0.62, abs=5e-3)
    long = pd.DataFrame([{"t": i, "r": j, "x": float(v)} for i, row in enumerate(ratings) for j, v in enumerate(row)])
    assert icc2k == pytest.approx(_pingouin_icc2k(long, "t", "r", "x"), rel=1e-12)
    with pytest.raises(ValueError, match=r"'single'.*'average'"):
        intraclass_correlation(ratings, form="k")  # type: ignore[arg-type]


def test_compare_reports_the_bootstrap_mean_difference():
    df = _study()
    a = _report(df, n_boot=0)
    b = _report(df.assign(score=np.clip(df["score"] * 0.5, 0, 4)), n_boot=0)
    result = compare_repeatability(a, b, n_boot=200, seed=1)
    assert result["difference"] > 0 and result["ci"][0] < result["difference_boot_mean"] < result["ci"][1]


# ----------------------------------------------------------------- canonical order


def test_any_permutation_of_the_images_gives_the_same_report():
    df = _study()
    reference = _report(df, n_boot=200, seed=0)
    for seed in range(3):
        shuffled = df.iloc[np.random.default_rng(seed).permutation(len(df))]
        assert _report(shuffled, n_boot=200, seed=0) == reference
    # swapping the two images of every other patient (the order a datalist may list them in)
    swapped = df.copy()
    for i, (_, group) in enumerate(df.groupby("patient")):
        if i % 2 and len(group) == 2:
            swapped.loc[group.index[::-1]] = df.loc[group.index].to_numpy()
    assert _report(swapped, n_boot=200, seed=0) == reference
    # without image ids the report follows the input order (what the canonical order fixes)
    by_rows = repeatability_report(df["score"], df["patient"], 5, n_boot=0)
    by_swapped_rows = repeatability_report(swapped["score"], swapped["patient"], 5, n_boot=0)
    assert by_rows["image_order"] == "input" and reference["image_order"] == "image_ids"
    assert by_rows["per_patient"]["difference"] != by_swapped_rows["per_patient"]["difference"]


def test_sign_follows_the_image_ids():
    r = repeatability_report([2.0, 1.0, 3.0], ["p"] * 3, num_classes=4, n_boot=0, image_ids=["c", "a", "b"])
    assert r["per_patient"]["difference"] == [-2.0]  # canonical order a, b, c: scores 1, 3, 2 -> 1 - 3
    r = repeatability_report([2.0, 1.0, 3.0], ["p"] * 3, num_classes=4, n_boot=0, image_ids=["a", "c", "b"])
    assert r["per_patient"]["difference"] == [2.0]  # order a, b, c: scores 2, 3, 1 -> pairs -1, 1, 2


def test_image_ids_must_be_unique_within_a_unit_and_match_the_scores():
    with pytest.raises(ValueError, match=r"unique within a unit.*\['x'\].*patient 'p'"):
        repeatability_report([1.0, 2.0, 3.0, 3.5], ["p", "p", "q", "q"], 5, n_boot=0, image_ids=["x", "x", "y", "z"])
    with pytest.raises(ValueError, match="3 image_ids"):
        repeatability_report([1.0, 2.0, 3.0, 3.5], ["p", "p", "q", "q"], 5, n_boot=0, image_ids=["a", "b", "c"])
    # the same id in two different units is fine
    repeatability_report([1.0, 2.0, 3.0, 3.5], ["p", "p", "q", "q"], 5, n_boot=0, image_ids=["a", "b", "a", "b"])


# ----------------------------------------------------------------- few patients


def test_a_report_on_few_patients_warns_that_its_ci_means_nothing():
    with pytest.warns(UserWarning, match=r"1 patient\(s\).*fewer than 5.*CI") as record:
        r = repeatability_report([1.0, 1.4], ["p", "p"], 5, n_boot=50)
    assert r["loa"] == 0.0 and r["loa_ci"] == [0.0, 0.0]  # what the warning is about
    assert r["warnings"] == [str(record[0].message)]
    df = _study(n_patients=MIN_PATIENTS + 1)  # p03 has one image: MIN_PATIENTS patients with repeats
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _report(df, n_boot=20)["warnings"] == []
    with pytest.warns(UserWarning, match="fewer than 5"):
        _report(df[df["patient"] != "p00"], n_boot=20)
