"""Paper-style comparison tables from the bundles: ``python -m monai_imbalance.compare train|table|grid``.

Two kinds of table, both produced by running a bundle's own ``train.yaml`` and ``evaluate.yaml`` in this process
(as ``python -m monai.bundle run`` would; :mod:`.runner`):

- **Table 1 of the focal-loss repeatability paper** (:mod:`.table1`; bundles ``knee_oa_grading`` and
  ``breast_density``): cross-entropy vs focal loss, each without and with MC dropout; 95% limits of agreement and
  accuracy with patient-bootstrap CIs (:mod:`.bootstrap`), paired tests, mean ± SD over seeds;
- **a grid of any bundle** (:mod:`.grid`): named variants (sets of bundle overrides) x seeds, one row per variant
  and one column per test metric, mean ± SD over seeds; presets for the papers' tables: ``lmf`` (skin lesion
  classification: cross-entropy, focal, LDAM, LMF; macro-F1, balanced accuracy, accuracy), ``bbfl`` and
  ``bbfl_multiclass`` (RNFLD / glaucoma: cross-entropy, ROS, RUS, cost-sensitive, thresholding, BBFL; accuracy,
  F1, AUC), ``all`` (segmentation: Jaccard, Dice, Tversky, focal, Combo, focal Tversky, ALL losses; Jaccard,
  F1, recall, TNR).

Command line, from the repository root (bundle overrides shared by every run, e.g. data and network, follow
``--``)::

    # Table 1: train cross-entropy and focal models for seeds 0, 1, 2 (into runs/{ce,focal}/seed<s>/models) ...
    python -m monai_imbalance.compare train --bundle bundles/knee_oa_grading --seeds 0 1 2 --output_dir runs \\
        -- --dataset_dir /data/kneeKL224
    # ... and the table from the checkpoints (paired by position: one cross-entropy and one focal model per seed)
    python -m monai_imbalance.compare table --bundle bundles/knee_oa_grading --output_dir runs/table1 \\
        --ce runs/ce/seed0/models runs/ce/seed1/models runs/ce/seed2/models \\
        --focal runs/focal/seed0/models runs/focal/seed1/models runs/focal/seed2/models \\
        -- --dataset_dir /data/kneeKL224

    # a paper's comparison table: the BBFL paper on the RNFLD bundle, 3 seeds
    python -m monai_imbalance.compare grid --bundle bundles/rnfld_classification --preset bbfl \\
        --seeds 0 1 2 --output_dir runs/bbfl -- --dataset_dir /data/rnfld
    # own variants: NAME "training+evaluation overrides" ["evaluation-only overrides"], one quoted string each
    python -m monai_imbalance.compare grid --bundle bundles/skin_lesion_classification --output_dir runs/heads \\
        --variant ce "--loss_name ce" --variant lmf_cosine "--loss_name lmf --head cosine" \\
        --variant lmf_mc "--loss_name lmf" "--mc_dropout true" --seeds 0 1 \\
        -- --dataset_dir /data/ISIC2018 --data_format isic2018_task3

``table`` writes ``<output_dir>/table1.md`` (the markdown printed) and ``table1.json`` (every number). ``grid``
writes ``<output_dir>/<variant>/seed<s>/{models,logs,eval}`` per run, ``<output_dir>/grid.md`` (printed) and
``grid.json``; its other options: ``--metrics`` (the columns), ``--metrics_key`` (the report entry, default the
bundle's ``eval_split``), ``--evaluate_overrides "--mc_dropout true"`` (every evaluation only), ``--title``,
``--resume`` (continue an interrupted grid: finished runs are read back, an interrupted training continues from
its last checkpoint). An ``output_dir`` that already holds results is refused unless ``--overwrite`` (or, for
``grid``, ``--resume``).
"""

from __future__ import annotations

from .bootstrap import accuracy_with_ci, compare_accuracy
from .cli import main
from .grid import (
    METRIC_LABELS,
    PRESETS,
    RESERVED_OVERRIDES,
    GridPreset,
    GridVariant,
    default_metric_names,
    format_grid,
    get_preset,
    grid_table,
    grid_variants,
    parse_variant,
    read_metrics,
    run_grid,
)
from .runner import (
    bundle_folder,
    checkpoint_file,
    evaluate_run,
    evaluation_metrics_file,
    format_overrides,
    parse_overrides,
    run_bundle_config,
    train_run,
)
from .table1 import (
    COMPARISONS,
    LOSSES,
    VARIANTS,
    EvaluationRecord,
    Variant,
    evaluate_checkpoint,
    format_table1,
    run_table1,
    table1,
    train_variants,
)

__all__ = [
    "COMPARISONS",
    "LOSSES",
    "METRIC_LABELS",
    "PRESETS",
    "RESERVED_OVERRIDES",
    "VARIANTS",
    "EvaluationRecord",
    "GridPreset",
    "GridVariant",
    "Variant",
    "accuracy_with_ci",
    "bundle_folder",
    "checkpoint_file",
    "compare_accuracy",
    "default_metric_names",
    "evaluate_checkpoint",
    "evaluate_run",
    "evaluation_metrics_file",
    "format_grid",
    "format_overrides",
    "format_table1",
    "get_preset",
    "grid_table",
    "grid_variants",
    "main",
    "parse_overrides",
    "parse_variant",
    "read_metrics",
    "run_bundle_config",
    "run_grid",
    "run_table1",
    "table1",
    "train_run",
    "train_variants",
]
