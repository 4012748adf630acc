"""Segmentation metrics inside a mask: hand counts, scikit-learn, MONAI's own metrics, iteration accumulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.metrics import ConfusionMatrixMetric, DiceMetric, MeanIoU
from sklearn.metrics import f1_score, jaccard_score, recall_score, roc_auc_score

from monai_imbalance.metrics import (
    MaskedConfusionMatrixMetric,
    PixelROCAUCMetric,
    compute_pixel_roc_auc,
    compute_segmentation_scores,
    field_of_view_label,
    masked_confusion_matrix,
    masked_output_transform,
    pixel_score_histograms,
    roc_auc_from_histograms,
)


def make_batch(seed: int = 0, batch: int = 3, size=(9, 11)):
    """Binary predictions, labels, probabilities and an elliptic field-of-view mask, each (B, 1, H, W)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(batch, 1, *size, generator=g) > 0.7).float()
    prob = (0.6 * y + 0.7 * torch.rand(batch, 1, *size, generator=g)).clamp(0, 1)
    pred = (prob >= 0.5).float()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij")
    fov = (yy**2 + xx**2 <= 1).float().expand(batch, 1, *size).clone()
    return pred, y, prob, fov


def hand_counts(pred: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[int, int, int, int]:
    inside = mask > 0
    p, t = pred[inside] > 0, y[inside] > 0
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & ~t).sum()), int((~p & t).sum())


# ----------------------------------------------------------------------------------------------- counts and scores
def test_masked_confusion_matrix_matches_hand_counts():
    pred, y, _, fov = make_batch()
    counts = masked_confusion_matrix(pred, y, fov)
    assert counts.shape == (3, 1, 4)
    for b in range(3):
        assert tuple(int(v) for v in counts[b, 0]) == hand_counts(pred[b].numpy(), y[b].numpy(), fov[b].numpy())
    # no mask: every pixel counts; a (B, H, W) mask works like (B, 1, H, W)
    assert int(masked_confusion_matrix(pred, y)[0, 0].sum()) == 99
    torch.testing.assert_close(masked_confusion_matrix(pred, y, fov[:, 0]), counts)


def test_scores_match_scikit_learn_on_the_masked_pixels():
    pred, y, _, fov = make_batch(seed=1)
    scores = compute_segmentation_scores(pred, y, fov, ("jaccard", "dice", "recall", "specificity", "iou", "f1"))
    inside = fov.numpy().astype(bool).ravel()
    t, p = y.numpy().ravel()[inside], pred.numpy().ravel()[inside]
    assert scores["jaccard"].item() == pytest.approx(jaccard_score(t, p))
    assert scores["iou"].item() == pytest.approx(jaccard_score(t, p))
    assert scores["dice"].item() == pytest.approx(f1_score(t, p))
    assert scores["f1"].item() == pytest.approx(f1_score(t, p))
    assert scores["recall"].item() == pytest.approx(recall_score(t, p))
    assert scores["specificity"].item() == pytest.approx(recall_score(1 - t, 1 - p))
    # the mask matters: all pixels give another Jaccard
    assert compute_segmentation_scores(pred, y)["jaccard"].item() != pytest.approx(scores["jaccard"].item())


def test_per_image_scores_and_undefined_values():
    pred, y, _, fov = make_batch(seed=2)
    y[1] = 0  # no foreground in image 1: recall 0/0
    pred[1] = 0
    per_image = compute_segmentation_scores(pred, y, fov, ("jaccard", "recall"), per_image=True)
    assert per_image["jaccard"].shape == (3, 1)
    assert torch.isnan(per_image["recall"][1, 0]) and torch.isnan(per_image["jaccard"][1, 0])
    tp, fp, _, fn = hand_counts(pred[2].numpy(), y[2].numpy(), fov[2].numpy())
    assert per_image["jaccard"][2, 0].item() == pytest.approx(tp / (tp + fp + fn))


def test_one_hot_labels_without_background():
    pred, y, _, fov = make_batch(seed=3)
    onehot_pred, onehot_y = torch.cat([1 - pred, pred], 1), torch.cat([1 - y, y], 1)
    scores = compute_segmentation_scores(onehot_pred, onehot_y, fov, include_background=False)
    single = compute_segmentation_scores(pred, y, fov)
    for name in single:
        torch.testing.assert_close(scores[name], single[name])
    both = compute_segmentation_scores(onehot_pred, onehot_y, fov)["recall"]
    assert both.shape == (2,)
    torch.testing.assert_close(both[0], single["specificity"][0])  # background recall = foreground specificity


# ----------------------------------------------------------------------------------------------- the MONAI route
def test_field_of_view_label_makes_monai_metrics_mask_aware():
    """MONAI's DiceMetric, MeanIoU and ConfusionMatrixMetric honour ignore_index: the FOV label reaches them."""
    pred, y, _, fov = make_batch(seed=4)
    label = field_of_view_label(y, fov)
    assert set(label.unique().tolist()) == {-1.0, 0.0, 1.0}
    assert (label[fov == 0] == -1).all() and torch.equal(label[fov > 0], y[fov > 0])
    expected = compute_segmentation_scores(pred, y, fov, ("dice", "jaccard"), per_image=True)
    dice = DiceMetric(ignore_index=-1, reduction="none")(pred, label)
    iou = MeanIoU(ignore_index=-1, reduction="none")(pred, label)
    torch.testing.assert_close(dice, expected["dice"])
    torch.testing.assert_close(iou, expected["jaccard"])
    cm = ConfusionMatrixMetric(metric_name="threat score", ignore_index=-1)
    cm(pred, label)
    torch.testing.assert_close(cm.aggregate()[0], compute_segmentation_scores(pred, y, fov)["jaccard"])


def test_field_of_view_label_for_one_hot_labels_and_bad_arguments():
    _, y, _, fov = make_batch(seed=5)
    onehot = torch.cat([1 - y, y], 1)
    label = field_of_view_label(onehot, fov)
    assert (label.sum(1, keepdim=True)[fov == 0] == 0).all()
    assert torch.equal(label.sum(1, keepdim=True)[fov > 0], torch.ones(int(fov.sum())))
    with pytest.raises(ValueError, match="differ from the label values 0 and 1"):
        field_of_view_label(y, fov, ignore_index=1)
    with pytest.raises(ValueError, match="is a class index"):
        field_of_view_label(onehot, fov, ignore_index=0)
    with pytest.raises(ValueError, match=r"mask must have shape .*got \(3, 1, 9, 10\)"):
        field_of_view_label(y, fov[..., :10])


# ----------------------------------------------------------------------------------------------- the cumulative metric
def test_masked_metric_accumulates_iterations_like_one_big_batch():
    batches = [make_batch(seed=s) for s in range(3)]
    metric = MaskedConfusionMatrixMetric()
    for pred, y, _, fov in batches:
        metric(y_pred=pred, y=y, mask=fov)
    pooled = compute_segmentation_scores(
        torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), torch.cat([b[3] for b in batches])
    )
    result = metric.aggregate_dict()
    assert list(result) == ["jaccard", "dice", "recall", "specificity"]
    for name, value in result.items():
        assert value == pytest.approx(pooled[name].item())
    per_image = MaskedConfusionMatrixMetric(metric_name="jaccard", compute_sample=True)
    for pred, y, _, fov in batches:
        per_image(pred, y, mask=fov)
    scores = torch.cat(
        [compute_segmentation_scores(b[0], b[1], b[3], ["jaccard"], per_image=True)["jaccard"] for b in batches]
    )
    assert per_image.aggregate()[0].item() == pytest.approx(scores.nanmean().item())


def test_masked_metric_threshold_lists_and_ignore_index():
    pred, y, prob, fov = make_batch(seed=6)
    direct = compute_segmentation_scores(pred, y, fov)
    metric = MaskedConfusionMatrixMetric(threshold=0.5)
    metric(prob, y, mask=fov)  # probabilities, binarised inside
    assert metric.aggregate_dict()["dice"] == pytest.approx(direct["dice"].item())
    listed = MaskedConfusionMatrixMetric()
    listed(list(pred), list(y), mask=list(fov))  # MONAI's list of channel-first tensors
    assert listed.aggregate_dict()["jaccard"] == pytest.approx(direct["jaccard"].item())
    with_label = MaskedConfusionMatrixMetric(ignore_index=-1)
    with_label(pred, field_of_view_label(y, fov))  # the mask carried by the label (ignite route)
    assert with_label.aggregate_dict()["recall"] == pytest.approx(direct["recall"].item())
    with pytest.raises(ValueError, match="unknown segmentation metric 'hausdorff'"):
        MaskedConfusionMatrixMetric(metric_name="hausdorff")
    with pytest.raises(TypeError, match=r"include_background must be a bool.*metric_name="):
        MaskedConfusionMatrixMetric("jaccard")
    with pytest.raises(ValueError, match="as lists of the same length"):
        listed(list(pred), list(y), mask=list(fov)[:2])
    with pytest.raises(ValueError, match="one-hot with y_pred's channels"):
        compute_segmentation_scores(torch.cat([1 - pred, pred], 1), y)


# ----------------------------------------------------------------------------------------------- pixel AUC
def test_auc_of_a_hand_example():
    prob = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.35]).view(1, 1, 5, 1)
    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0]).view(1, 1, 5, 1)
    # positives 0.35, 0.8; negatives 0.1, 0.4, 0.35: pairs won 1 + 0 + 0.5 (tie) + 1 + 1 + 1 = 4.5 of 6
    assert compute_pixel_roc_auc(prob, y, n_bins=100).item() == pytest.approx(0.75)
    mask = torch.tensor([1, 1, 1, 1, 0]).view(1, 1, 5, 1)  # without the tied negative: 1 + 0 + 1 + 1 of 4 pairs
    assert compute_pixel_roc_auc(prob, y, mask, n_bins=100).item() == pytest.approx(3 / 4)


def test_auc_matches_scikit_learn_within_the_tie_bound():
    _, y, prob, fov = make_batch(seed=7, batch=4, size=(32, 32))
    inside = fov.bool().numpy().ravel()
    exact = roc_auc_score(y.numpy().ravel()[inside], prob.numpy().ravel()[inside])
    auc, bound = roc_auc_from_histograms(pixel_score_histograms(prob, y, fov), return_tie_bound=True)
    assert bound.item() < 1e-3
    assert abs(auc.item() - exact) <= bound.item() + 1e-12
    assert compute_pixel_roc_auc(prob, y, fov).item() == pytest.approx(exact, abs=1e-3)


def test_auc_is_exact_for_scores_on_a_coarse_grid_with_ties():
    """8-bit probability maps: every bin holds one score value, so ties are ties and the AUC is exact."""
    g = torch.Generator().manual_seed(8)
    y = (torch.rand(2, 1, 40, 40, generator=g) > 0.8).float()
    prob = ((torch.rand(2, 1, 40, 40, generator=g) * 0.8 + 0.3 * y).clamp(0, 1) * 255).round() / 255
    exact = roc_auc_score(y.numpy().ravel(), prob.numpy().ravel())
    assert compute_pixel_roc_auc(prob, y, n_bins=4096).item() == pytest.approx(exact, abs=1e-12)


def test_multiclass_auc_is_the_mean_of_one_vs_rest_and_undefined_classes_are_nan():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 3, 12, 12, generator=g)
    classes = torch.randint(0, 3, (2, 12, 12), generator=g)
    logits += 1.5 * torch.nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2)
    prob = logits.softmax(1)
    onehot = torch.nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()
    per_class = compute_pixel_roc_auc(prob, onehot, average="none")
    expected = [roc_auc_score(onehot[:, c].numpy().ravel(), prob[:, c].numpy().ravel()) for c in range(3)]
    np.testing.assert_allclose(per_class.numpy(), expected, atol=1e-3)
    assert compute_pixel_roc_auc(prob, onehot).item() == pytest.approx(np.mean(expected), abs=1e-3)
    assert compute_pixel_roc_auc(prob, onehot, include_background=False, average="none").shape == (2,)
    only_background = torch.zeros(1, 1, 4, 4)
    assert torch.isnan(compute_pixel_roc_auc(torch.rand(1, 1, 4, 4), only_background))


def test_auc_metric_accumulates_in_constant_memory_and_resets():
    metric = PixelROCAUCMetric(n_bins=1024)
    batches = [make_batch(seed=s) for s in range(5)]
    for _, y, prob, fov in batches:
        metric(prob, y, mask=fov)
    assert len(metric._buffers[0]) == 1  # one running histogram, however many iterations
    assert metric.histograms().shape == (1, 2, 1024)
    together = compute_pixel_roc_auc(
        torch.cat([b[2] for b in batches]),
        torch.cat([b[1] for b in batches]),
        torch.cat([b[3] for b in batches]),
        n_bins=1024,
    )
    assert metric.aggregate().item() == pytest.approx(together.item(), abs=1e-12)
    assert int(metric.histograms().sum()) == int(sum(b[3].sum() for b in batches))
    metric.reset()
    with pytest.raises(ValueError, match="has no data"):
        metric.aggregate()


def test_auc_metric_through_monai_ignite_handler():
    """The ignite route: the handler passes (y_pred, y) only, the field of view travels in the label."""
    batches = [make_batch(seed=s) for s in range(3)]
    engine = Engine(lambda e, batch: (batch[2], field_of_view_label(batch[1], batch[3])))
    IgniteMetricHandler(metric_fn=PixelROCAUCMetric(ignore_index=-1)).attach(engine, "auc")
    IgniteMetricHandler(
        metric_fn=MaskedConfusionMatrixMetric(metric_name="jaccard", ignore_index=-1, threshold=0.5)
    ).attach(engine, "jaccard")
    engine.run(batches, max_epochs=1)
    prob, y, fov = (torch.cat([b[i] for b in batches]) for i in (2, 1, 3))
    assert engine.state.metrics["auc"] == pytest.approx(compute_pixel_roc_auc(prob, y, fov).item(), abs=1e-12)
    jaccard = compute_segmentation_scores(prob, y, fov, ["jaccard"], threshold=0.5)["jaccard"].item()
    assert engine.state.metrics["jaccard"] == pytest.approx(jaccard)


def test_metatensor_inputs_give_plain_results():
    _, y, prob, fov = make_batch(seed=11)
    meta = [MetaTensor(t, meta={"filename_or_obj": "x.png"}) for t in (prob, y, fov)]
    auc = compute_pixel_roc_auc(*meta)
    assert type(auc) is torch.Tensor
    assert auc.item() == pytest.approx(compute_pixel_roc_auc(prob, y, fov).item())
    counts = masked_confusion_matrix(*meta, threshold=0.5)
    assert type(counts) is torch.Tensor
    torch.testing.assert_close(counts, masked_confusion_matrix(prob, y, fov, threshold=0.5))


def thresholded(transform):
    """Binarise the predictions an output transform returns (DiceMetric wants binary masks)."""

    def wrapped(output):
        pred, label = transform(output)
        if isinstance(pred, torch.Tensor):
            return (pred >= 0.5).float(), label
        return [(p >= 0.5).float() for p in pred], label

    return wrapped


def test_masked_output_transform_feeds_monai_handlers_batched_and_decollated():
    """DiceMetric and PixelROCAUCMetric behind IgniteMetricHandler get the mask in the label, batched or per sample."""
    batches = [make_batch(seed=s) for s in range(2)]
    expected_auc = compute_pixel_roc_auc(*(torch.cat([b[i] for b in batches]) for i in (2, 1, 3))).item()
    expected_dice = torch.cat(
        [compute_segmentation_scores(b[0], b[1], b[3], ["dice"], per_image=True)["dice"] for b in batches]
    ).mean()
    outputs = {
        "batched": [{"pred": b[2], "label": b[1], "mask": b[3]} for b in batches],
        "decollated": [[{"pred": b[2][i], "label": b[1][i], "mask": b[3][i]} for i in range(3)] for b in batches],
    }
    for kind, data in outputs.items():
        engine = Engine(lambda e, batch: batch)
        IgniteMetricHandler(
            metric_fn=PixelROCAUCMetric(ignore_index=-1), output_transform=masked_output_transform()
        ).attach(engine, "auc")
        IgniteMetricHandler(
            metric_fn=DiceMetric(ignore_index=-1), output_transform=thresholded(masked_output_transform())
        ).attach(engine, "dice")
        engine.run(data, max_epochs=1)
        assert engine.state.metrics["auc"] == pytest.approx(expected_auc, abs=1e-12), kind
        assert engine.state.metrics["dice"] == pytest.approx(expected_dice.item(), abs=1e-6), kind
    with pytest.raises(TypeError, match="engine output dict or a list of dicts"):
        masked_output_transform()(torch.zeros(1))


def test_auc_accepts_half_precision_and_rejects_bad_input():
    _, y, prob, fov = make_batch(seed=10)
    assert compute_pixel_roc_auc(prob.to(torch.bfloat16), y, fov).item() == pytest.approx(
        compute_pixel_roc_auc(prob.to(torch.bfloat16).float(), y, fov).item()
    )
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        compute_pixel_roc_auc(prob * 4 - 2, y)
    with pytest.raises(ValueError, match="must be binary"):
        compute_pixel_roc_auc(prob, y * 2)
    with pytest.raises(ValueError, match="n_bins must be an int >= 2"):
        PixelROCAUCMetric(n_bins=1)
    with pytest.raises(ValueError, match="average must be"):
        compute_pixel_roc_auc(prob, y, average="micro")
    with pytest.raises(ValueError, match="must have shape"):
        compute_pixel_roc_auc(prob, y[..., :5])
    with pytest.raises(ValueError, match=r"histograms must have shape \(\.\.\., 2, n_bins\)"):
        roc_auc_from_histograms(torch.zeros(3, 10))
