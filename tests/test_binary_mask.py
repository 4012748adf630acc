"""LoadBinaryMask(d): one mask or the union of several, from PNG / GIF / arrays, in LoadImageOrArray's orientation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_imbalance.transforms import LoadBinaryMask, LoadBinaryMaskd, LoadImageOrArray


@pytest.fixture()
def masks(tmp_path: Path) -> dict[str, np.ndarray]:
    """Three 0/255 masks of 5 x 7 pixels (rows x columns), saved as PNG."""
    a = np.zeros((5, 7), np.uint8)
    a[1:3, 2:6] = 255
    b = np.zeros((5, 7), np.uint8)
    b[4, 0] = 255
    c = np.zeros((5, 7), np.uint8)
    c[1, 2] = 255  # overlaps a
    for name, m in (("a", a), ("b", b), ("c", c)):
        Image.fromarray(m).save(tmp_path / f"{name}.png")
    return {"a": a, "b": b, "c": c}


def test_single_png_gives_zero_one_mask_in_row_major_orientation(tmp_path: Path, masks):
    out = LoadBinaryMask()(tmp_path / "a.png")
    assert isinstance(out, MetaTensor)
    assert out.shape == (1, 5, 7) and out.dtype == torch.float32
    np.testing.assert_array_equal(out[0].numpy(), (masks["a"] > 0).astype(np.float32))
    assert out.meta["filename_or_obj"] == str(tmp_path / "a.png")
    # same orientation and size as the project's image loader
    assert LoadImageOrArray()(tmp_path / "a.png").shape == out.shape


def test_union_of_instance_masks(tmp_path: Path, masks):
    paths = [str(tmp_path / f"{n}.png") for n in "abc"]
    out = LoadBinaryMask()(paths)
    expected = (masks["a"] > 0) | (masks["b"] > 0) | (masks["c"] > 0)
    np.testing.assert_array_equal(out[0].numpy(), expected.astype(np.float32))
    assert out.meta["filename_or_obj"] == str(tmp_path)
    assert out.meta["num_masks"] == 3
    assert out.max() == 1  # overlapping masks do not add up


def test_array_and_list_of_arrays_match_the_files(tmp_path: Path, masks):
    load = LoadBinaryMask()
    torch.testing.assert_close(load(masks["a"]).as_tensor(), load(tmp_path / "a.png").as_tensor())
    torch.testing.assert_close(
        load([masks["a"], torch.from_numpy(masks["b"])]).as_tensor(),
        load([tmp_path / "a.png", tmp_path / "b.png"]).as_tensor(),
    )


def test_gif_masks_with_any_palette(tmp_path: Path, masks):
    """GIF values are palette indices; a palette whose index 0 is white must still give the right foreground."""
    Image.fromarray(masks["a"]).save(tmp_path / "plain.gif")  # Pillow writes a 'P' image, indices 0/1
    inverted = Image.fromarray(np.where(masks["a"] > 0, 0, 1).astype(np.uint8), mode="P")
    inverted.putpalette([255, 255, 255, 0, 0, 0] + [0, 0, 0] * 254)  # index 0 = white, index 1 = black
    inverted.save(tmp_path / "inverted.gif")
    assert Image.open(tmp_path / "inverted.gif").mode == "P"
    Image.fromarray(masks["a"]).convert("1").save(tmp_path / "bilevel.gif")
    for name in ("plain.gif", "inverted.gif", "bilevel.gif"):
        out = LoadBinaryMask()(tmp_path / name)
        np.testing.assert_array_equal(out[0].numpy(), (masks["a"] > 0).astype(np.float32), err_msg=name)


def test_colour_mask_counts_any_coloured_pixel(tmp_path: Path, masks):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = masks["a"]  # red lesion
    Image.fromarray(rgb).save(tmp_path / "red.png")
    out = LoadBinaryMask()(tmp_path / "red.png")
    assert out.shape == (1, 5, 7)
    np.testing.assert_array_equal(out[0].numpy(), (masks["a"] > 0).astype(np.float32))


def test_dictionary_version_and_dtype(tmp_path: Path, masks):
    data = {"label": [tmp_path / "a.png", tmp_path / "b.png"], "mask": tmp_path / "c.png", "id": "x"}
    out = LoadBinaryMaskd(keys=["label", "mask"], dtype=torch.uint8)(data)
    assert out["id"] == "x"
    assert out["label"].dtype == torch.uint8 and out["mask"].dtype == torch.uint8
    assert int(out["label"].sum()) == int(((masks["a"] > 0) | (masks["b"] > 0)).sum())
    assert isinstance(data["label"], list)  # the input dict is not modified
    assert LoadBinaryMaskd(keys="absent", allow_missing_keys=True)({"label": 1}) == {"label": 1}


def test_transform_pickles_for_dataloader_workers(tmp_path: Path, masks):
    restored = pickle.loads(pickle.dumps(LoadBinaryMaskd(keys="label")))
    assert restored({"label": tmp_path / "a.png"})["label"].shape == (1, 5, 7)


def test_bad_input_names_the_problem(tmp_path: Path, masks):
    load = LoadBinaryMask()
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(tmp_path / "taller.png")
    with pytest.raises(ValueError, match=r"taller\.png has spatial size \(6, 7\), but .*a\.png has \(5, 7\)"):
        load([tmp_path / "a.png", tmp_path / "taller.png"])
    with pytest.raises(FileNotFoundError, match=r"mask file not found: .*missing\.png"):
        load([tmp_path / "a.png", tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="no mask given"):
        load([])
    with pytest.raises(TypeError, match="expected a mask path or array"):
        load(3)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read mask file .*broken\.png"):
        load(tmp_path / "broken.png")
