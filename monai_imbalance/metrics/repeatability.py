"""Repeatability of a classifier's continuous score across repeat images of the same patient and visit.

Definitions (focal-loss repeatability paper and its line of work; ``docs/papers.md`` has the papers and the
limits-of-agreement definitions side by side):

- Continuous score of a K-class softmax output :math:`p \\in \\Delta^{K-1}`: the expected class
  index :math:`s = \\sum_{k=0}^{K-1} k\\,p_k \\in [0, K-1]`; for a binary (one-channel sigmoid)
  output :math:`s = p`, so ``K = 2`` and the score range is ``K - 1 = 1`` in both cases.
- A *unit* is one patient at one visit (one patient if no visit ids are given). For every unit
  ``u`` with :math:`n_u \\ge 2` images, with scores :math:`s_1..s_{n_u}` in the unit's **canonical
  order** (sorted by image id, see below), :math:`d_u` is the signed pairwise difference
  :math:`s_i - s_j` (``i < j``) of largest magnitude (``|d_u| = max - min``; positive when the
  largest score came first; ties go to the first such pair) and :math:`m_u` is the mean score.
  Units with one image are skipped and counted (``n_skipped``).
- Canonical order. The sign of :math:`d_u` depends on which image of the unit comes first, and so
  do LoA, its CI and the ICC. With ``image_ids`` (an image path or datalist id per image; the
  repeatability handler passes the items' ``id`` and ``repeat_index``) the images of a unit are
  sorted by id (as strings) and the units by (patient, visit), so any permutation of the input
  gives the same report. Without ``image_ids`` the order of the input is used.
- 95% limits of agreement as a half-width normalised by the score range:
  :math:`LoA = (P_{97.5}(d) - P_{2.5}(d)) / (2 (K-1))` (percentiles with numpy's default linear
  interpolation); the parametric twin :math:`LoA_{SD} = 1.96\\,SD(d) / (K-1)` (``SD`` with
  ``ddof=1``).
- Confidence intervals: percentile bootstrap over **patients** (all units of a drawn patient
  enter together, so several visits of one patient are not treated as independent), ``n_boot``
  replicates, reported as the 2.5/97.5 percentiles and ``*_pm`` = half their distance (the
  paper's "mean ± 95% CI"). With fewer than :data:`MIN_PATIENTS` distinct patients the report
  warns: such a CI (and the LoA itself) means nothing; one patient gives LoA 0 with CI [0, 0].
- ``mean_abs_diff`` :math:`= \\overline{|d|}` and ``mean_diff`` :math:`= \\bar d` in score units
  (not normalised); ``disagreement_rate``: share of units whose images get more than one
  predicted class.

Two ways of reporting, both in every report:

- *plug-in* (``loa``, ``icc``): the LoA of the observed differences, with the bootstrap CI around
  it, and ICC(2,1) of the first ``k`` images of every unit (``k`` the smallest repeat count).
- *paper* (``loa_boot_mean``, ``icc_2k``): what the authors' reporting code prints: the **mean of
  the bootstrap replicates** of LoA (with the same percentile CI), of the mean absolute difference
  (``mean_abs_diff_boot_mean``) and of the disagreement rate (``disagreement_rate_boot_mean``),
  and **ICC(2,k)** (average of ``k = 2`` measurements) over the units with exactly two images
  (``icc_2k_units`` of them; columns: first and second image in canonical order). The bootstrap
  mean of a percentile range usually lies below the plug-in value (a resample repeats some
  units and misses others, which narrows its extreme percentiles), and ICC(2,k), the reliability of
  the mean of two images, lies above ICC(2,1): compare a number with the paper's only in the
  paper's form. The authors redraw all ``B``
  replicates until a Shapiro-Wilk test finds them normal; this report draws once.

Why ICC and a relative LoA too. A less confident model pulls every score toward the middle of
the range: all :math:`d_u` shrink, and so does LoA, without the model telling patients apart any
better. Two quantities put the within-unit agreement against the between-unit spread:

- ``icc``: ICC(2,1) of the scores (see :func:`intraclass_correlation`), the share of score
  variance that lies between units; 1 is perfect repeatability, whatever the scale.
- ``loa_rel`` :math:`= \\frac{(P_{97.5}(d) - P_{2.5}(d))/2}{SD(m)}`, the LoA half-width in units
  of the between-unit standard deviation of the mean scores (``ddof=1``). Scaling all scores by
  a factor changes LoA but neither ``icc`` nor ``loa_rel``.

A focal-loss model "is more repeatable" when LoA falls *and* ``icc`` does not fall / ``loa_rel``
does not rise; :func:`compare_repeatability` tests the LoA difference with a paired bootstrap.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.metric import IterationMetric

__all__ = [
    "MIN_PATIENTS",
    "RepeatabilityMetric",
    "compare_repeatability",
    "continuous_score",
    "intraclass_correlation",
    "repeatability_report",
]

#: fewer distinct patients than this and :func:`repeatability_report` warns that its CI means nothing
MIN_PATIENTS = 5

_PROB_ATOL = 1e-3
_COMPARABLE = ("loa", "loa_sd", "mean_abs_diff")


def continuous_score(probs: torch.Tensor | np.ndarray, atol: float = _PROB_ATOL) -> torch.Tensor | np.ndarray:
    """Continuous score of classifier probabilities: expected class index, or the probability if binary.

    Args:
        probs: ``(B, K)`` softmax probabilities (``K >= 2``) or ``(B, 1)`` sigmoid probabilities.
        atol: tolerance of the probability checks.

    Returns:
        ``(B,)`` scores :math:`s_b = \\sum_k k\\,p_{bk}` in ``[0, K-1]`` (``K >= 2``) or :math:`p_{b0}`
        in ``[0, 1]`` (``K = 1``), of the input's type (torch: float, on the input's device).

    Raises:
        ValueError: wrong shape, values outside ``[0, 1]`` or rows not summing to 1 (logits
            instead of probabilities: apply softmax/sigmoid first, or use
            ``MCDropoutInferer(activation=...)``).
    """
    if isinstance(probs, np.ndarray):
        return continuous_score(torch.as_tensor(probs), atol=atol).numpy()
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor or numpy array, got {type(probs).__name__}")
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"probs must have shape (B, K) (classification probabilities), got {tuple(probs.shape)}")
    p = probs.detach().to(torch.float64 if probs.device.type == "cpu" else torch.float32)
    if p.numel() and (not torch.isfinite(p).all() or p.min() < -atol or p.max() > 1 + atol):
        raise ValueError(
            "probs must be probabilities in [0, 1]; got values outside (logits? apply softmax/sigmoid first)"
        )
    if p.shape[1] == 1:
        return p[:, 0]
    sums = p.sum(dim=1)
    if p.numel() and (sums - 1).abs().max() > atol:
        raise ValueError(
            f"softmax probabilities must sum to 1 over dim 1; got sums in [{sums.min():.4f}, {sums.max():.4f}] "
            "(logits or sigmoid outputs? apply softmax first)"
        )
    k = torch.arange(p.shape[1], device=p.device, dtype=p.dtype)
    return p @ k


def intraclass_correlation(
    ratings: np.ndarray | Sequence[Sequence[float]], *, form: Literal["single", "average"] = "single"
) -> float:
    """ICC(2,1) or ICC(2,k): two-way random effects, absolute agreement (Shrout & Fleiss 1979).

    With ``n`` targets (rows: patients) rated by ``k`` raters (columns: repeat images),
    row means :math:`\\bar x_{i\\cdot}`, column means :math:`\\bar x_{\\cdot j}`, grand mean :math:`\\bar x`:

    .. math::

        MS_R = \\tfrac{k}{n-1} \\sum_i (\\bar x_{i\\cdot} - \\bar x)^2, \\quad
        MS_C = \\tfrac{n}{k-1} \\sum_j (\\bar x_{\\cdot j} - \\bar x)^2, \\quad
        MS_E = \\tfrac{1}{(n-1)(k-1)} \\sum_{ij} (x_{ij} - \\bar x_{i\\cdot} - \\bar x_{\\cdot j} + \\bar x)^2

        ICC(2,1) = \\frac{MS_R - MS_E}{MS_R + (k-1) MS_E + k (MS_C - MS_E) / n}, \\quad
        ICC(2,k) = \\frac{MS_R - MS_E}{MS_R + (MS_C - MS_E) / n}

    ICC(2,1) is the reliability of one image, ICC(2,k) that of the mean of ``k`` images (pingouin's
    ``ICC2`` and ``ICC2k``; the repeatability authors report ``ICC2k``).

    Args:
        ratings: ``(n, k)`` array.
        form: ``"single"`` for ICC(2,1), ``"average"`` for ICC(2,k).

    Returns ``nan`` when the denominator is 0 (all ratings equal).

    Raises:
        ValueError: not a 2-D array with ``n >= 2`` rows and ``k >= 2`` columns, non-finite values, or an
            unknown ``form``.
    """
    if form not in ("single", "average"):
        raise ValueError(f"form must be 'single' (ICC(2,1)) or 'average' (ICC(2,k)), got {form!r}")
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"ratings must be a (targets, raters) array with at least 2 of each, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("ratings must be finite")
    n, k = x.shape
    grand = x.mean()
    row = x.mean(axis=1)
    col = x.mean(axis=0)
    ms_r = k * np.sum((row - grand) ** 2) / (n - 1)
    ms_c = n * np.sum((col - grand) ** 2) / (k - 1)
    ms_e = np.sum((x - row[:, None] - col[None, :] + grand) ** 2) / ((n - 1) * (k - 1))
    single = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    denominator = single if form == "single" else ms_r + (ms_c - ms_e) / n
    if denominator == 0:
        return float("nan")
    return float((ms_r - ms_e) / denominator)


def _to_id_list(ids: Any, name: str) -> list[str]:
    """Ids as a list of strings; accepts sequences of str/int/0-d tensors, 1-d tensors or arrays."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of ids, one per image, not a single string")
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().reshape(-1).tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.reshape(-1).tolist()
    out = []
    for value in ids:
        if isinstance(value, (torch.Tensor, np.ndarray)):
            count = value.numel() if isinstance(value, torch.Tensor) else value.size
            if count != 1:
                raise TypeError(f"{name} must hold one scalar id per image, got an array of shape {tuple(value.shape)}")
            value = value.item()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode()
        out.append(str(value))
    return out


def _to_1d(values: Any, name: str, dtype: type = np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per image), got shape {arr.shape}")
    return arr


def _max_signed_difference(scores: np.ndarray) -> float:
    """Signed ``s_i - s_j`` (``i < j``) of largest magnitude; first such pair on ties."""
    diff = scores[:, None] - scores[None, :]
    iu = np.triu_indices(len(scores), k=1)
    pairs = diff[iu]
    return float(pairs[np.argmax(np.abs(pairs))])


def _loa(d: np.ndarray, range_: float) -> float:
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float((hi - lo) / (2.0 * range_))


def _loa_sd(d: np.ndarray, range_: float) -> float:
    return float(1.96 * np.std(d, ddof=1) / range_) if len(d) > 1 else float("nan")


def _statistic(metric: str, d: np.ndarray, range_: float) -> float:
    if metric == "loa":
        return _loa(d, range_)
    if metric == "loa_sd":
        return _loa_sd(d, range_)
    return float(np.mean(np.abs(d)))


def _cluster_sampler(patients: Sequence[str]):
    """Return ``draw(rng) -> unit indices`` resampling patients (clusters of units) with replacement."""
    uniq, cluster = np.unique(np.asarray(patients, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(cluster, kind="stable")
    lengths = np.bincount(cluster, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n_clusters = len(uniq)

    def draw(rng: np.random.Generator) -> np.ndarray:
        picked = rng.integers(0, n_clusters, size=n_clusters)
        lens = lengths[picked]
        offsets = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        return order[np.repeat(starts[picked], lens) + offsets]

    return draw


def _percentile_interval(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return [float(lo), float(hi)]


def _canonical_units(
    pids: list[str], vids: list[str] | None, image_keys: list[str] | None
) -> list[tuple[tuple[str, str | None], list[int]]]:
    """Units ``((patient, visit), image indices)`` sorted by (patient, visit); images sorted by ``image_keys``.

    Raises:
        ValueError: two images of one unit with the same key (their order would be arbitrary).
    """
    units: dict[tuple[str, str | None], list[int]] = {}
    for i, pid in enumerate(pids):
        units.setdefault((pid, None if vids is None else vids[i]), []).append(i)
    ordered = sorted(units.items(), key=lambda item: (item[0][0], "" if item[0][1] is None else item[0][1]))
    if image_keys is None:
        return ordered
    for (pid, vid), idx in ordered:
        idx.sort(key=lambda i: image_keys[i])
        keys = [image_keys[i] for i in idx]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        if duplicated:
            where = f"patient {pid!r}" + ("" if vid is None else f", visit {vid!r}")
            raise ValueError(
                f"image_ids must be unique within a unit, got {duplicated} twice or more for {where}; give every "
                "image its own id (its path, or the datalist id plus the repeat index of simulated copies)"
            )
    return ordered


def repeatability_report(
    scores: Sequence[float] | np.ndarray | torch.Tensor,
    patient_ids: Sequence[Any],
    num_classes: int,
    predictions: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    n_boot: int = 500,
    seed: int = 0,
    visit_ids: Sequence[Any] | None = None,
    *,
    image_ids: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Bland-Altman repeatability of continuous scores over repeat images (definitions in the module docstring).

    Args:
        scores: ``(N,)`` continuous scores in ``[0, num_classes - 1]`` (see :func:`continuous_score`).
        patient_ids: ``N`` patient ids (any scalars; compared as strings).
        num_classes: ``K`` (2 for a binary model); the score range is ``K - 1``.
        predictions: optional ``(N,)`` predicted classes, for ``disagreement_rate``.
        n_boot: bootstrap replicates over patients (0 to skip the intervals and the bootstrap means).
        seed: seed of the bootstrap (numpy ``default_rng``); equal seeds give equal intervals.
        visit_ids: optional ``N`` visit ids; repeats are then images of the same patient AND visit.
        image_ids: optional ``N`` image ids (paths or datalist ids, compared as strings, unique within a
            unit): the canonical order of a unit's images, which makes the report independent of the input
            order. Without them the input order is used.

    Returns:
        a JSON-ready dict with

        - plug-in form: ``loa``, ``loa_ci`` ([lo, hi]), ``loa_pm``, ``loa_sd``, ``loa_sd_ci``, ``loa_sd_pm``,
          ``icc`` (ICC(2,1)), ``icc_images`` (images per unit used for it: the first ``k`` of each unit in
          canonical order, ``k`` = the smallest repeat count, because ICC(2,1) needs a full table);
        - paper form (the authors' reporting code): ``loa_boot_mean`` (mean of the bootstrap LoA replicates;
          its CI is ``loa_ci``), ``mean_abs_diff_boot_mean``, ``disagreement_rate_boot_mean`` (``None``
          without predictions or bootstrap), ``icc_2k`` (ICC(2,k) over the units with exactly two images,
          ``nan`` with fewer than two such units) and ``icc_2k_units``;
        - ``mean_diff``, ``mean_abs_diff``, ``diff_percentiles`` ([P2.5, P97.5] of d, score units),
          ``between_patient_sd``, ``loa_rel``, ``disagreement_rate`` (``None`` without predictions),
          ``n_patients`` (units with repeats), ``n_patients_distinct``, ``n_skipped`` (units with one image),
          ``n_images`` (images in units with repeats), ``num_classes``, ``n_boot``, ``seed``,
          ``image_order`` (``"image_ids"`` or ``"input"``), ``warnings`` (list of strings, also issued
          with :func:`warnings.warn`) and ``per_patient`` (``patient_id``, ``visit_id``, ``n_images``,
          ``mean_score``, ``difference``: one entry per unit, sorted by patient and visit, what
          :func:`compare_repeatability` and the Bland-Altman plot read).

    Raises:
        ValueError: mismatched lengths, scores outside the range or not finite, ``num_classes < 2``,
            no unit with more than one image, or an image id repeated within a unit.

    Warns:
        UserWarning: fewer than :data:`MIN_PATIENTS` distinct patients with repeats (the LoA and its CI
            mean nothing).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (2 for a binary model), got {num_classes!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    range_ = float(num_classes - 1)
    s = _to_1d(scores, "scores")
    pids = _to_id_list(patient_ids, "patient_ids")
    if len(pids) != len(s):
        raise ValueError(f"got {len(s)} scores but {len(pids)} patient_ids")
    vids = None if visit_ids is None else _to_id_list(visit_ids, "visit_ids")
    if vids is not None and len(vids) != len(s):
        raise ValueError(f"got {len(s)} scores but {len(vids)} visit_ids")
    image_keys = None if image_ids is None else _to_id_list(image_ids, "image_ids")
    if image_keys is not None and len(image_keys) != len(s):
        raise ValueError(f"got {len(s)} scores but {len(image_keys)} image_ids")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if len(s) and (s.min() < -_PROB_ATOL or s.max() > range_ + _PROB_ATOL):
        raise ValueError(
            f"scores must lie in [0, num_classes - 1] = [0, {range_:g}], got [{s.min():.4g}, {s.max():.4g}]; "
            "check num_classes"
        )
    preds = None
    if predictions is not None:
        preds = _to_1d(predictions, "predictions", dtype=np.int64)
        if len(preds) != len(s):
            raise ValueError(f"got {len(s)} scores but {len(preds)} predictions")

    units = _canonical_units(pids, vids, image_keys)
    repeat_units = [(key, idx) for key, idx in units if len(idx) > 1]
    n_skipped = len(units) - len(repeat_units)
    if not repeat_units:
        raise ValueError(
            f"no patient{'/visit' if vids is not None else ''} has more than one image ({len(units)} units, each with "
            "one image): repeatability needs repeat images (real repeats in the datalist, or "
            "monai_imbalance.data.RepeatAcquisitions to simulate them)"
        )

    d = np.array([_max_signed_difference(s[idx]) for _, idx in repeat_units])
    m = np.array([s[idx].mean() for _, idx in repeat_units])
    counts = np.array([len(idx) for _, idx in repeat_units])
    unit_patients = [key[0] for key, _ in repeat_units]
    n_distinct = len(set(unit_patients))
    disagree = None if preds is None else np.array([len(set(preds[idx].tolist())) > 1 for _, idx in repeat_units])

    report_warnings = []
    if n_distinct < MIN_PATIENTS:
        report_warnings.append(
            f"repeatability report on {n_distinct} patient(s) with repeat images, fewer than {MIN_PATIENTS}: its LoA "
            "and the bootstrap CI over patients mean nothing (one patient gives LoA 0 with CI [0, 0]); evaluate "
            "more patients"
        )

    k_icc = int(counts.min())
    icc = (
        intraclass_correlation(np.stack([s[idx[:k_icc]] for _, idx in repeat_units]))
        if len(repeat_units) > 1
        else float("nan")
    )
    pairs = [idx for _, idx in repeat_units if len(idx) == 2]
    icc_2k = intraclass_correlation(s[np.array(pairs)], form="average") if len(pairs) > 1 else float("nan")
    between_sd = float(np.std(m, ddof=1)) if len(m) > 1 else float("nan")
    half_width = float(np.diff(np.percentile(d, [2.5, 97.5]))[0] / 2.0)
    loa_rel = half_width / between_sd if between_sd > 0 else float("nan")

    report: dict[str, Any] = {
        "num_classes": int(num_classes),
        "loa": _loa(d, range_),
        "loa_boot_mean": None,
        "loa_sd": _loa_sd(d, range_),
        "mean_diff": float(d.mean()),
        "mean_abs_diff": float(np.abs(d).mean()),
        "mean_abs_diff_boot_mean": None,
        "diff_percentiles": [float(v) for v in np.percentile(d, [2.5, 97.5])],
        "icc": icc,
        "icc_images": k_icc,
        "icc_2k": icc_2k,
        "icc_2k_units": len(pairs),
        "between_patient_sd": between_sd,
        "loa_rel": loa_rel,
        "disagreement_rate": None if disagree is None else float(disagree.mean()),
        "disagreement_rate_boot_mean": None,
        "n_patients": len(repeat_units),
        "n_patients_distinct": n_distinct,
        "n_skipped": n_skipped,
        "n_images": int(counts.sum()),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "image_order": "input" if image_keys is None else "image_ids",
        "warnings": report_warnings,
    }

    if n_boot > 0:
        draw = _cluster_sampler(unit_patients)
        rng = np.random.default_rng(seed)
        boot = np.empty((n_boot, 4))
        for b in range(n_boot):
            picked = draw(rng)
            db = d[picked]
            boot[b] = (
                _loa(db, range_),
                _loa_sd(db, range_),
                np.abs(db).mean(),
                np.nan if disagree is None else disagree[picked].mean(),
            )
        for j, key in enumerate(("loa", "loa_sd")):
            interval = _percentile_interval(boot[:, j])
            report[f"{key}_ci"] = interval
            report[f"{key}_pm"] = (interval[1] - interval[0]) / 2.0
        report["loa_boot_mean"] = float(boot[:, 0].mean())
        report["mean_abs_diff_boot_mean"] = float(boot[:, 2].mean())
        if disagree is not None:
            report["disagreement_rate_boot_mean"] = float(boot[:, 3].mean())
    else:
        for key in ("loa", "loa_sd"):
            report[f"{key}_ci"] = None
            report[f"{key}_pm"] = None

    report["per_patient"] = {
        "patient_id": unit_patients,
        "visit_id": [key[1] for key, _ in repeat_units],
        "n_images": counts.tolist(),
        "mean_score": m.tolist(),
        "difference": d.tolist(),
    }
    for message in report_warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    return report


def _units_of(report: Mapping[str, Any], name: str) -> dict[tuple[str, str | None], float]:
    try:
        per = report["per_patient"]
        pids, vids, diffs = per["patient_id"], per["visit_id"], per["difference"]
        _ = report["num_classes"]
        rows = list(zip(pids, vids, diffs, strict=True))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{name} is not a repeatability_report result ({type(e).__name__}: {e})") from e
    return {(str(p), None if v is None else str(v)): float(x) for p, v, x in rows}


def compare_repeatability(
    report_a: Mapping[str, Any],
    report_b: Mapping[str, Any],
    metric: str = "loa",
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap test of a repeatability difference between two models on the same patients.

    Both reports (from :func:`repeatability_report`, or read back from a metrics JSON) are
    restricted to their shared units (same patient and visit id). Patients are resampled with
    replacement ``n_boot`` times; each replicate evaluates ``metric`` on the *same* drawn patients
    for both models, giving :math:`\\Delta^* = M_a^* - M_b^*`.

    Returns:
        dict with ``metric``, ``a`` and ``b`` (the metric on the shared units), ``difference``
        (``a - b``; negative: model a has narrower limits), ``difference_boot_mean`` (the mean of
        :math:`\\Delta^*`, the paper-form difference), ``ci`` (2.5/97.5 percentiles of :math:`\\Delta^*`),
        ``p_value`` (two-sided bootstrap p-value ``min(1, 2 min(P_le, P_ge))`` with
        ``P_le = (1 + #{Delta* <= 0}) / (B + 1)`` and ``P_ge`` likewise for ``>= 0``),
        ``n_patients`` (shared units), ``n_patients_distinct``, ``n_boot`` and ``seed``.
        "Model a has a significantly lower LoA" at the 5% level means ``ci[1] < 0``.

    Raises:
        ValueError: unknown ``metric``, reports that are not repeatability reports, different
            ``num_classes``, or fewer than two shared units.
    """
    if metric not in _COMPARABLE:
        raise ValueError(f"metric must be one of {_COMPARABLE}, got {metric!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    units_a = _units_of(report_a, "report_a")
    units_b = _units_of(report_b, "report_b")
    if report_a["num_classes"] != report_b["num_classes"]:
        raise ValueError(
            f"reports have different num_classes ({report_a['num_classes']} vs {report_b['num_classes']}); "
            "their LoA are not on the same scale"
        )
    range_ = float(report_a["num_classes"]) - 1.0
    shared = [key for key in units_a if key in units_b]
    if len(shared) < 2:
        raise ValueError(
            f"the reports share {len(shared)} patient/visit units; a paired comparison needs at least 2 "
            "(were they computed on the same evaluation set?)"
        )
    da = np.array([units_a[key] for key in shared])
    db = np.array([units_b[key] for key in shared])
    patients = [key[0] for key in shared]
    a, b = _statistic(metric, da, range_), _statistic(metric, db, range_)

    draw = _cluster_sampler(patients)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    for i in range(n_boot):
        idx = draw(rng)
        deltas[i] = _statistic(metric, da[idx], range_) - _statistic(metric, db[idx], range_)
    finite = deltas[np.isfinite(deltas)]
    n = len(finite)
    p_value = min(1.0, 2.0 * min((1 + np.sum(finite <= 0)) / (n + 1), (1 + np.sum(finite >= 0)) / (n + 1)))
    return {
        "metric": metric,
        "a": a,
        "b": b,
        "difference": a - b,
        "difference_boot_mean": float(finite.mean()) if n else float("nan"),
        "ci": _percentile_interval(deltas),
        "p_value": float(p_value),
        "n_patients": len(shared),
        "n_patients_distinct": len(set(patients)),
        "n_boot": int(n_boot),
        "seed": int(seed),
    }


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def _all_gather_list(values: list[Any]) -> list[Any]:
    """Concatenate a per-rank list of picklable objects across ranks, in rank order (no-op without distributed)."""
    world = _world_size()
    if world == 1:
        return list(values)
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, list(values))
    return [v for part in gathered for v in part]


class RepeatabilityMetric(CumulativeIterationMetric):
    """Collect scores, predicted classes and patient/visit ids over iterations; aggregate to a repeatability report.

    Each call takes a batch of classification probabilities ``y_pred`` (a ``(B, K)`` tensor or a
    list of ``(K,)`` tensors, as MONAI's decollated outputs are) and the ids of its images:

    .. code-block:: python

        metric = RepeatabilityMetric()
        for batch in loader:
            probs = inferer(batch["image"], net)  # e.g. MCDropoutInferer: probabilities
            metric(probs, patient_ids=batch["patient_id"], visit_ids=batch["visit_id"], image_ids=batch["id"])
        report = metric.aggregate()  # dict of repeatability_report
        metric.reset()

    Scores are :func:`continuous_score` of ``y_pred``; predicted classes are its argmax (``K >= 2``)
    or ``p >= threshold`` (``K = 1``), unless ``predictions`` are passed. ``y`` (labels) is accepted
    for MONAI's ``(y_pred, y)`` convention and ignored. ``image_ids`` (given for every batch or for
    none) set the canonical order of a unit's images, so that the report does not depend on the
    order of the data loader (see :func:`repeatability_report`).

    Distributed: scores and predictions are gathered with MONAI's ``Cumulative`` buffers
    (``evenly_divisible_all_gather``); the string ids with ``torch.distributed.all_gather_object``,
    both in rank order, so they stay aligned. Use ``monai.data.DistributedSampler(even_divisible=False)``
    for evaluation: the padding of an even-divisible sampler duplicates images, and a duplicated
    single image would look like a perfectly repeatable patient.

    Args:
        num_classes: ``K`` of the report; ``None`` infers it from ``y_pred`` (``C`` channels, 2 if ``C = 1``).
        threshold: decision threshold of one-channel (sigmoid) outputs for the predicted class.
        n_boot: bootstrap replicates of the report.
        seed: bootstrap seed.
    """

    def __init__(
        self, num_classes: int | None = None, threshold: float = 0.5, n_boot: int = 500, seed: int = 0
    ) -> None:
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 2):
            raise ValueError(f"num_classes must be >= 2 or None, got {num_classes!r}")
        self._patient_ids: list[str] = []
        self._visit_ids: list[str] = []
        self._image_ids: list[str] = []
        self._has_visits: bool | None = None
        self._has_image_ids: bool | None = None
        self._channels: int | None = None
        super().__init__()
        self.num_classes = num_classes
        self.threshold = float(threshold)
        self.n_boot = n_boot
        self.seed = seed

    def reset(self) -> None:
        super().reset()
        self._patient_ids = []
        self._visit_ids = []
        self._image_ids = []
        self._has_visits = None
        self._has_image_ids = None
        self._channels = None

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``(B, K)`` probabilities -> ``[scores (B,), predicted classes (B,)]``."""
        if y_pred.ndim != 2:
            raise ValueError(
                f"RepeatabilityMetric expects classification probabilities of shape (B, K), got {tuple(y_pred.shape)}"
            )
        scores = continuous_score(y_pred)
        binary = y_pred.shape[1] == 1
        predicted = (y_pred[:, 0] >= self.threshold).long() if binary else y_pred.argmax(dim=1)
        return [scores, predicted]

    def __call__(  # type: ignore[override]
        self,
        y_pred: torch.Tensor | Sequence[torch.Tensor],
        y: Any = None,
        patient_ids: Sequence[Any] | None = None,
        visit_ids: Sequence[Any] | None = None,
        predictions: Sequence[int] | torch.Tensor | None = None,
        image_ids: Sequence[Any] | None = None,
    ) -> torch.Tensor:
        """Add one batch; returns its ``(B,)`` scores.

        Raises:
            ValueError: missing ``patient_ids``, ids or predictions of the wrong length, visit or image
                ids given in some batches only, or a change in the number of channels.
        """
        if patient_ids is None:
            raise ValueError(
                "RepeatabilityMetric needs patient_ids for every batch (e.g. batch['patient_id'] of a datalist with "
                "patient ids, or monai_imbalance.data.RepeatAcquisitions)"
            )
        scores, predicted = IterationMetric.__call__(self, y_pred=y_pred, y=None)
        n = len(scores)
        channels = (y_pred.shape[1] if isinstance(y_pred, torch.Tensor) else y_pred[0].shape[0]) if n else None
        if channels is not None:
            if self._channels is not None and channels != self._channels:
                raise ValueError(f"y_pred has {channels} channels, earlier batches had {self._channels}")
            self._channels = channels
        pids = _to_id_list(patient_ids, "patient_ids")
        if len(pids) != n:
            raise ValueError(f"got {n} predictions but {len(pids)} patient_ids")
        has_visits = visit_ids is not None
        if self._has_visits is not None and has_visits != self._has_visits:
            raise ValueError("visit_ids must be given for every batch or for none")
        self._has_visits = has_visits
        vids = _to_id_list(visit_ids, "visit_ids") if has_visits else []
        if has_visits and len(vids) != n:
            raise ValueError(f"got {n} predictions but {len(vids)} visit_ids")
        has_image_ids = image_ids is not None
        if self._has_image_ids is not None and has_image_ids != self._has_image_ids:
            raise ValueError("image_ids must be given for every batch or for none")
        self._has_image_ids = has_image_ids
        iids = _to_id_list(image_ids, "image_ids") if has_image_ids else []
        if has_image_ids and len(iids) != n:
            raise ValueError(f"got {n} predictions but {len(iids)} image_ids")
        if predictions is not None:
            predicted = torch.as_tensor(_to_1d(predictions, "predictions", dtype=np.int64))
            if len(predicted) != n:
                raise ValueError(f"got {n} scores but {len(predicted)} predictions")
        self.extend(scores, predicted.to(scores.device))
        self._patient_ids.extend(pids)
        self._visit_ids.extend(vids)
        self._image_ids.extend(iids)
        return scores

    def aggregate(self) -> dict[str, Any]:  # type: ignore[override]
        """Gather all ranks' buffers and return :func:`repeatability_report` of everything collected.

        Collective in distributed runs: every rank must call it.
        """
        buffers = self.get_buffer()
        patient_ids = _all_gather_list(self._patient_ids)
        visit_ids = _all_gather_list(self._visit_ids) if self._has_visits else None
        image_ids = _all_gather_list(self._image_ids) if self._has_image_ids else None
        channels = _all_gather_list([self._channels] if self._channels is not None else [])
        if buffers is None or not patient_ids:
            raise ValueError("RepeatabilityMetric has no data to aggregate: call it on at least one batch first")
        scores, predicted = buffers
        num_classes = self.num_classes
        inferred = max(2, int(channels[0])) if channels else None
        if num_classes is None:
            num_classes = inferred
        elif inferred is not None and inferred != int(num_classes):
            raise ValueError(f"num_classes={num_classes} but y_pred implies {inferred} classes")
        return repeatability_report(
            scores.cpu().numpy(),
            patient_ids,
            int(num_classes),
            predictions=predicted.cpu().numpy(),
            n_boot=self.n_boot,
            seed=self.seed,
            visit_ids=visit_ids,
            image_ids=image_ids,
        )
