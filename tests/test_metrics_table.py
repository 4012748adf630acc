"""reporting.metrics_table / print_metrics_table: the final-metrics table of `make demo` and of every evaluate run."""

from __future__ import annotations

import json
import math

import pytest

from monai_imbalance.reporting import metrics_table, print_metrics_table, update_metrics_json

VALIDATION = {"accuracy": 0.5, "f1_macro": 0.25, "auc": math.nan, "epoch": 3, "per_class": {"nv": {"f1": 0.5}}}
TEST = {
    "accuracy": 0.75,
    "f1_macro": 0.4,
    "auc": 0.8125,
    "num_samples": 28,
    "per_class": {"nv": {"f1": 0.9}, "mel": {"f1": None}},
}


def test_table_rows_columns_and_per_class_section():
    lines = metrics_table({"validation": VALIDATION, "test (MC)": TEST}).splitlines()
    assert lines[0].split() == ["metric", "validation", "test", "(MC)"]
    body = {line[:26].strip(): line[26:].split() for line in lines[2:] if line and not line.startswith(" ")}
    # the known scores some report has, in METRIC_LABELS order; bookkeeping entries (epoch, num_samples) left out
    assert list(body)[:3] == ["accuracy", "macro F1", "AUC"]
    assert body["accuracy"] == ["0.500", "0.750"]
    assert body["AUC"] == ["-", "0.812"]  # NaN shows as "-"
    per_class = lines[lines.index("") + 1 :]
    assert per_class[0].split() == ["f1", "per", "class", "validation", "test", "(MC)"]
    assert per_class[1].split() == ["nv", "0.500", "0.900"] and per_class[2].split() == ["mel", "-", "-"]


def test_table_with_chosen_rows_and_unknown_keys():
    text = metrics_table({"test": {"jaccard": 0.5, "hausdorff": 2.0}}, rows=["jaccard", "hausdorff"], per_class=None)
    assert text.splitlines()[2].split() == ["Jaccard", "(IoU)", "0.500"]
    assert text.splitlines()[3].split() == ["hausdorff", "2.000"]
    with pytest.raises(ValueError, match="at least one report"):
        metrics_table({})


def test_print_metrics_table_prints_the_keys_in_the_file(tmp_path, capsys):
    metrics_file = tmp_path / "metrics.json"
    update_metrics_json(metrics_file, {"test": TEST, "repeatability": {"loa": 1.25, "icc": 0.5}})
    text = print_metrics_table(metrics_file, ["test", "repeatability", "absent"])
    printed = capsys.readouterr().out
    assert printed.strip() == text.strip()
    assert f"test ({metrics_file}):" in text and f"repeatability ({metrics_file}):" in text
    assert "95% limits of agreement" in text and "absent" not in text
    assert print_metrics_table(metrics_file, "absent") == "" and capsys.readouterr().out == ""


def test_per_class_rows_follow_class_names_not_the_alphabet(tmp_path):
    """metrics.json stores per_class with sorted keys; the table lists the classes in class_names (ISIC) order."""
    names = ["MEL", "NV", "BCC", "AKIEC"]
    report = {"accuracy": 0.5, "class_names": names, "per_class": {n: {"f1": i / 10} for i, n in enumerate(names)}}
    path = tmp_path / "metrics.json"
    update_metrics_json(path, {"test": report})
    assert list(json.loads(path.read_text())["test"]["per_class"]) == sorted(names)  # as stored
    text = print_metrics_table(path, ["test"])
    rows = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert rows == names
    extra = {**report, "per_class": {**report["per_class"], "VASC": {"f1": 1.0}}}  # a class not in class_names
    rows = [line.split()[0] for line in metrics_table({"t": extra}).splitlines() if line.startswith("  ")]
    assert rows == [*names, "VASC"]


def test_report_warnings_are_listed_below_the_table():
    text = metrics_table({"validation": {**VALIDATION, "warnings": ["one"]}, "test": {**TEST, "warnings": []}})
    assert text.endswith("WARNING (validation):\n  - one")
    assert metrics_table({"test": {"accuracy": 1.0, "warnings": ["a", "b"]}}).endswith("WARNING:\n  - a\n  - b")
