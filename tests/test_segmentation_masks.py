"""SegmentationMaskWriter: PNG masks (and uncertainty maps) per sample, names, sizes, FOV, no silent overwrite."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.transforms import Lambdad
from PIL import Image
from torch import nn

from monai_imbalance.handlers import SegmentationMaskWriter
from monai_imbalance.inferers import MCDropoutInferer


def _items(n=3, size=(6, 8), with_ids=True):
    """Images whose single channel is the foreground probability itself (the network is the identity)."""
    items = []
    for i in range(n):
        prob = torch.zeros(1, *size)
        prob[0, : i + 1, :3] = 0.9  # the top i + 1 rows of the left 3 columns
        prob[0, -1, -1] = 0.5  # exactly the threshold: foreground
        item = {"image": MetaTensor(prob, meta={"filename_or_obj": f"/data/pic_{i}.png"})}
        if with_ids:
            item["id"] = f"case/{i}"  # an unsafe character, replaced in the file name
        items.append(item)
    return items


def _run(items, handler, inferer=None, network=None, batch_size=2, postprocessing=None):
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=batch_size, shuffle=False, num_workers=0),
        network=network if network is not None else nn.Identity(),
        inferer=inferer,
        postprocessing=postprocessing,
        val_handlers=[handler],
    )
    evaluator.run()
    return evaluator


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_masks_per_sample_in_picture_orientation(tmp_path):
    # predictions in MONAI's layout (C, x, y) are written as pictures (y rows, x columns): transposed
    writer = SegmentationMaskWriter(tmp_path / "masks")
    _run(_items(), writer)
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert names == ["case_0_mask.png", "case_1_mask.png", "case_2_mask.png"]
    mask = _read(tmp_path / "masks" / "case_1_mask.png")
    expected = np.zeros((6, 8), np.uint8)
    expected[:2, :3] = 255
    expected[-1, -1] = 255
    expected = expected.T
    assert mask.dtype == np.uint8 and Image.open(tmp_path / "masks" / "case_1_mask.png").mode == "L"
    np.testing.assert_array_equal(mask, expected)
    assert len(writer.written) == 3


def test_ids_from_file_names_then_positions(tmp_path):
    _run(_items(with_ids=False), SegmentationMaskWriter(tmp_path / "a"))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"pic_{i}_mask.png" for i in range(3)]
    items = [{"image": item["image"].as_tensor()} for item in _items()]
    _run(items, SegmentationMaskWriter(tmp_path / "b"))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["00000_mask.png", "00001_mask.png", "00002_mask.png"]


def test_field_of_view_clears_the_outside_and_threshold(tmp_path):
    items = _items(n=1)
    fov = torch.ones(1, 6, 8)
    fov[..., 0] = 0
    items[0]["fov"] = fov
    _run(items, SegmentationMaskWriter(tmp_path / "m", mask_key="fov", threshold=0.6))
    mask = _read(tmp_path / "m" / "case_0_mask.png")
    expected = np.zeros((6, 8), np.uint8)
    expected[0, 1:3] = 255  # y = 0 is outside the FOV; 0.5 is below the threshold 0.6
    np.testing.assert_array_equal(mask, expected.T)


def test_several_channels_give_the_argmax_class(tmp_path):
    class TwoChannels(nn.Module):
        def forward(self, x):
            return torch.cat([1 - x, x], dim=1)

    _run(_items(n=1), SegmentationMaskWriter(tmp_path), network=TwoChannels())
    mask = _read(tmp_path / "case_0_mask.png")
    assert set(np.unique(mask)) == {0, 1} and mask[0, 0] == 1 and mask[3, 3] == 0


def test_mc_dropout_uncertainty_map_resized_to_the_prediction(tmp_path):
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(torch.ones_like(x)) - 1.0  # logits 1 or -1 by pass: entropy > 0 everywhere

    inferer = MCDropoutInferer(num_samples=8, activation="sigmoid", seed=0)
    writer = SegmentationMaskWriter(tmp_path / "m", uncertainty_key="entropy")
    # the post-processing doubles the prediction's size, as Invertd does after a Resized
    upsample = Lambdad(keys="pred", func=lambda p: p.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2))
    _run(_items(n=2), writer, inferer=inferer, network=Noisy(), postprocessing=upsample)
    assert _read(tmp_path / "m" / "case_0_mask.png").shape == (16, 12)  # (x 12, y 16) as 16 rows
    entropy = _read(tmp_path / "m" / "case_1_entropy.png")
    assert entropy.shape == (16, 12) and entropy.dtype == np.uint8
    # a corner pixel keeps its value under bilinear resizing: 255 * H(p) / ln 2
    p = inferer.last_output["mean"][1, 0, -1, -1].item()
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert h > 0 and entropy[-1, -1] == round(255 * h / math.log(2))
    assert writer.written[-1].name == "case_1_entropy.png"


def test_no_silent_overwrite(tmp_path):
    folder = tmp_path / "masks"
    _run(_items(n=1), SegmentationMaskWriter(folder))
    with pytest.raises(FileExistsError, match=r"already holds predicted masks.*--overwrite true"):
        SegmentationMaskWriter(folder)
    SegmentationMaskWriter(folder, overwrite=True)  # allowed
    # a user's file with the same name as a mask but written after the check is still refused
    other = tmp_path / "other"
    writer = SegmentationMaskWriter(other)
    other.mkdir()
    (other / "case_0_mask.png").write_bytes(b"user data")
    with pytest.raises(FileExistsError, match=r"already holds predicted masks \(e\.g\. case_0_mask\.png\)"):
        _run(_items(n=1), writer)
    assert (other / "case_0_mask.png").read_bytes() == b"user data"


class _Killed(BaseException):
    """Stands in for SIGTERM: not an ``Exception``, so ignite runs no exception handler, as for a killed process."""


def test_an_interrupted_run_leaves_no_complete_looking_folder_and_the_next_run_cleans_up(tmp_path):
    from ignite.engine import Events

    folder = tmp_path / "masks"
    writer = SegmentationMaskWriter(folder)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(_items(n=4)), batch_size=1, shuffle=False, num_workers=0),
        network=nn.Identity(),
        val_handlers=[writer],
    )

    def kill(engine):
        raise _Killed

    evaluator.add_event_handler(Events.ITERATION_COMPLETED(once=2), kill)  # after the writer's 2nd sample
    with pytest.raises(_Killed):
        evaluator.run()
    assert not folder.exists()  # no masks folder at all: nothing looks complete
    assert sorted(p.name for p in writer.partial_dir.iterdir()) == ["case_0_mask.png", "case_1_mask.png"]
    assert writer.partial_dir.name == ".masks.partial"  # hidden, and says what it is

    _run(_items(n=4), SegmentationMaskWriter(folder))  # the next run removes the partial set and completes
    assert not writer.partial_dir.exists()
    assert sorted(p.name for p in folder.iterdir()) == [f"case_{i}_mask.png" for i in range(4)]


def test_overwrite_replaces_the_whole_set_and_foreign_files_are_refused(tmp_path):
    folder = tmp_path / "masks"
    _run(_items(n=3), SegmentationMaskWriter(folder))
    _run(_items(n=1), SegmentationMaskWriter(folder, overwrite=True))
    assert sorted(p.name for p in folder.iterdir()) == ["case_0_mask.png"]  # no mask of the earlier run is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds notes\.txt, which is not a predicted mask"):
        SegmentationMaskWriter(folder, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        SegmentationMaskWriter(tmp_path / "file")


def test_two_samples_with_one_file_name_are_an_error(tmp_path):
    items = _items(n=2)
    items[1]["id"] = "case/0"
    with pytest.raises(ValueError, match=r"both written as case_0_mask\.png"):
        _run(items, SegmentationMaskWriter(tmp_path / "masks"), batch_size=1)
    assert not (tmp_path / "masks").exists()


def test_bad_arguments_and_multi_process_ids(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="threshold"):
        SegmentationMaskWriter(tmp_path, threshold=1.0)
    with pytest.raises(ValueError, match="uncertainty_max"):
        SegmentationMaskWriter(tmp_path, uncertainty_key="spread")
    SegmentationMaskWriter(tmp_path, uncertainty_key="spread", uncertainty_max=2.0)
    with pytest.raises(ValueError, match="must be > 0"):
        SegmentationMaskWriter(tmp_path, uncertainty_max=0.0)
    with pytest.raises(ValueError, match=r"channel-first \(C, H, W\)"):
        _run([{"image": torch.rand(1, 2, 4, 4), "id": "v"}], SegmentationMaskWriter(tmp_path / "3d"))
    with pytest.raises(KeyError, match="mask_key 'fov'"):
        _run(_items(n=1), SegmentationMaskWriter(tmp_path / "nofov", mask_key="fov"))

    import ignite.distributed as idist

    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    items = [{"image": item["image"].as_tensor()} for item in _items(n=1)]
    with pytest.raises(ValueError, match="multi-process run needs an id"):
        _run(items, SegmentationMaskWriter(tmp_path / "ddp"))
