"""Segmentation overlay figure and its ignite handler: colours, Dice caption, PNG / TensorBoard output."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from PIL import Image

from monai_imbalance.handlers import SegmentationFiguresHandler, plot_segmentation_overlays


def toy_batch(n: int = 3, size=(12, 16)):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, *size, generator=g)
    labels = torch.zeros(n, 1, *size)
    labels[:, :, 2:6, 3:9] = 1
    preds = torch.zeros(n, 1, *size)
    preds[:, :, 4:8, 3:9] = 0.9  # MONAI layout (C, x, y): x 4-5 TP, x 6-7 FP, x 2-3 FN
    return images, preds, labels


class RecordingWriter:
    """Stands in for TensorBoard's SummaryWriter: records add_figure calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, int]] = []

    def add_figure(self, tag, figure, global_step=None, close=True):
        self.calls.append((tag, figure, global_step))


def image_axes(figure):
    return [ax for ax in figure.axes if ax.images and ax.get_label() != "<colorbar>"]


def test_overlay_colours_and_dice_caption():
    images, preds, labels = toy_batch()
    fig = plot_segmentation_overlays(images, preds, labels, ids=["a", "b", "c"], max_images=2, title="val")
    axes = image_axes(fig)
    assert len(axes) == 4  # 2 rows x (image, overlay)
    overlay = axes[1].images[1].get_array()
    assert overlay.shape == (16, 12, 4)  # (C, x=12, y=16) is shown as 16 rows x 12 columns
    np.testing.assert_allclose(overlay[5, 4, :3], (1.0, 0.85, 0.0))  # true positive: yellow
    np.testing.assert_allclose(overlay[5, 7, :3], (0.95, 0.1, 0.1))  # false positive: red
    np.testing.assert_allclose(overlay[5, 2, :3], (0.1, 0.85, 0.2))  # false negative: green
    assert overlay[0, 0, 3] == 0  # background stays transparent
    # Dice = 2 * 12 / (24 + 24) = 0.5
    assert axes[1].get_title().startswith("Dice 0.500")
    assert axes[0].get_title() == "a"
    assert fig._suptitle.get_text() == "val"


def test_field_of_view_dims_outside_and_ignore_labels_are_background():
    images, preds, labels = toy_batch(n=1)
    mask = torch.zeros_like(labels)
    mask[..., :, :8] = 1
    labels_with_ignore = torch.where(mask > 0, labels, torch.full_like(labels, -1.0))
    fig = plot_segmentation_overlays(images, preds, labels_with_ignore, masks=mask)
    overlay = image_axes(fig)[1].images[1].get_array()
    assert overlay[8, 4, 3] == 0  # TP pixel outside the mask is not drawn
    assert overlay[5, 4, 3] > 0
    # Dice inside the mask: TP 2 rows x 5 columns, FP 10, FN 10 -> 20 / 40
    assert image_axes(fig)[1].get_title().startswith("Dice 0.500")


def test_prediction_only_rgb_images_multichannel_and_uncertainty():
    images = torch.rand(2, 3, 8, 8)
    preds = torch.zeros(2, 2, 8, 8)
    preds[:, 0] = 1
    preds[:, 0, 2:4, 2:4], preds[:, 1, 2:4, 2:4] = 0, 1  # one-hot, foreground in a 2 x 2 square
    fig = plot_segmentation_overlays(images, preds, uncertainty=torch.rand(2, 1, 8, 8))
    axes = image_axes(fig)
    assert len(axes) == 6  # image, prediction, uncertainty per row
    assert axes[0].images[0].get_array().shape == (8, 8, 3)
    overlay = axes[1].images[1].get_array()
    assert overlay[..., 3].astype(bool).sum() == 4 and axes[1].get_title() == "prediction (red)"


def test_bad_input():
    images, preds, _ = toy_batch()
    with pytest.raises(ValueError, match=r"channel-first 2D images \(C, W, H\)"):
        plot_segmentation_overlays(images[:, None], preds[:, None])
    with pytest.raises(ValueError, match="got 1 prediction samples for 3 images"):
        plot_segmentation_overlays(images, preds[:1])
    with pytest.raises(ValueError, match="max_images must be a positive int"):
        plot_segmentation_overlays(images, preds, max_images=0)
    with pytest.raises(ValueError, match="has size"):
        plot_segmentation_overlays(images, preds[..., :8])
    with pytest.raises(ValueError, match="nothing is saved"):
        SegmentationFiguresHandler(figure_file=None)


def decollated_outputs(batches: int = 3):
    """Engine outputs as MONAI's SupervisedEvaluator leaves them: lists of per-sample dicts."""
    images, preds, labels = toy_batch(n=2)
    outputs = []
    for b in range(batches):
        outputs.append(
            [
                {
                    "image": MetaTensor(images[i], meta={"filename_or_obj": f"/data/img_{b}_{i}.png"}),
                    "pred": preds[i],
                    "label": labels[i],
                }
                for i in range(2)
            ]
        )
    return outputs


def test_handler_saves_png_per_epoch_and_tensorboard(tmp_path: Path):
    writer = RecordingWriter()
    engine = Engine(lambda e, batch: batch)
    engine.inferer = SimpleNamespace(last_output={"entropy": torch.rand(2, 1, 12, 16)})
    handler = SegmentationFiguresHandler(
        figure_file=tmp_path / "figures" / "overlays_{epoch:02d}.png", summary_writer=writer, max_images=3
    )
    handler.attach(engine)
    engine.run(decollated_outputs(), max_epochs=2)
    for epoch in (1, 2):
        png = tmp_path / "figures" / f"overlays_{epoch:02d}.png"
        assert png.is_file() and Image.open(png).size[0] > 100
    assert [(tag, step) for tag, _, step in writer.calls] == [
        ("segmentation/overlays", 1),
        ("segmentation/overlays", 2),
    ]
    figure = writer.calls[-1][1]
    axes = image_axes(figure)
    assert len(axes) == 9  # 3 images (first batch of 2 + one of the next), each with an uncertainty map
    assert [ax.get_title() for ax in axes[::3]] == ["img_0_0.png", "img_0_1.png", "img_1_0.png"]
    assert handler.last_figure_file == tmp_path / "figures" / "overlays_02.png"


def test_handler_with_batched_output_without_labels_and_no_samples(tmp_path: Path):
    images, preds, _ = toy_batch(n=2)
    engine = Engine(lambda e, batch: {"image": images, "pred": preds})
    SegmentationFiguresHandler(figure_file=tmp_path / "o.png", uncertainty_key=None).attach(engine)
    engine.run([0], max_epochs=1)
    assert (tmp_path / "o.png").is_file()
    handler = SegmentationFiguresHandler(figure_file=tmp_path / "none.png")
    empty = Engine(lambda e, batch: batch)
    handler.epoch_started(empty)
    with pytest.warns(UserWarning, match="no samples"):
        handler.epoch_completed(empty)
    assert not (tmp_path / "none.png").exists()
