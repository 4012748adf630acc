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


# the loaders give (1, W, H), MONAI's orientation: expected rows-first arrays are compared as out[0].T
def test_single_png_gives_zero_one_mask_in_monai_orientation(tmp_path: Path, masks):
    out = LoadBinaryMask()(tmp_path / "a.png")
    assert isinstance(out, MetaTensor)
    assert out.shape == (1, 7, 5) and out.dtype == torch.float32  # (1, W, H), as LoadImaged reads the picture
    np.testing.assert_array_equal(out[0].numpy(), (masks["a"] > 0).astype(np.float32).T)
    display = LoadBinaryMask(reverse_indexing=False)(tmp_path / "a.png")  # the order of versions 0.1.x
    np.testing.assert_array_equal(display[0].numpy(), (masks["a"] > 0).astype(np.float32))
    assert out.meta["filename_or_obj"] == str(tmp_path / "a.png")
    # same orientation and size as the project's image loader
    assert LoadImageOrArray()(tmp_path / "a.png").shape == out.shape


def test_union_of_instance_masks(tmp_path: Path, masks):
    paths = [str(tmp_path / f"{n}.png") for n in "abc"]
    out = LoadBinaryMask()(paths)
    expected = (masks["a"] > 0) | (masks["b"] > 0) | (masks["c"] > 0)
    np.testing.assert_array_equal(out[0].numpy().T, expected.astype(np.float32))
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
        np.testing.assert_array_equal(out[0].numpy().T, (masks["a"] > 0).astype(np.float32), err_msg=name)


def test_colour_mask_counts_any_coloured_pixel(tmp_path: Path, masks):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = masks["a"]  # red lesion
    Image.fromarray(rgb).save(tmp_path / "red.png")
    out = LoadBinaryMask()(tmp_path / "red.png")
    assert out.shape == (1, 7, 5)
    np.testing.assert_array_equal(out[0].numpy().T, (masks["a"] > 0).astype(np.float32))


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
    assert restored({"label": tmp_path / "a.png"})["label"].shape == (1, 7, 5)


def test_bad_input_names_the_problem(tmp_path: Path, masks):
    load = LoadBinaryMask()
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(tmp_path / "taller.png")
    with pytest.raises(ValueError, match=r"taller\.png has spatial size \(7, 6\), but .*a\.png has \(7, 5\)"):
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


def test_background_stored_as_one_is_not_foreground(tmp_path: Path, masks):
    # issue 12.5: nuclei masks with background 1 and foreground 255 became 100 % foreground under "any non-zero"
    noisy = np.where(masks["a"] > 0, 255, 1).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    out = LoadBinaryMask()(tmp_path / "noisy.png")
    np.testing.assert_array_equal(out[0].numpy().T, (masks["a"] > 0).astype(np.float32))
    assert 0 < float(out.mean()) < 1
    # the same for the union of DSB instance masks
    Image.fromarray(np.where(masks["b"] > 0, 255, 1).astype(np.uint8)).save(tmp_path / "noisy_b.png")
    union = LoadBinaryMask()([tmp_path / "noisy.png", tmp_path / "noisy_b.png"])
    np.testing.assert_array_equal(union[0].numpy().T, ((masks["a"] > 0) | (masks["b"] > 0)).astype(np.float32))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([0, 1], np.uint8), 0.5),  # masks stored 0/1
        (np.array([0.0, 0.7]), 0.5),  # probabilities
        (np.array([True, False]), 0.5),
        (np.array([1, 255], np.uint8), 127.5),  # 8-bit: foreground > 127
        (np.array([0, 128], np.uint8), 127.5),
        (np.array([0, 65535], np.uint16), 32767.5),  # 16-bit PNG
        (np.array([1, 255], np.int64), 127.5),  # integer arrays: the middle of [0, max]
        (np.array([-1, 3], np.int64), 1.0),
    ],
)
def test_default_threshold_is_the_middle_of_the_value_range(values, expected):
    from monai_imbalance.transforms import default_mask_threshold

    assert default_mask_threshold(torch.as_tensor(values)) == expected


def test_zero_one_and_explicit_thresholds(tmp_path: Path, masks):
    zero_one = (masks["a"] > 0).astype(np.uint8)
    Image.fromarray(zero_one).save(tmp_path / "zero_one.png")
    expected = zero_one.astype(np.float32)
    np.testing.assert_array_equal(LoadBinaryMask()(tmp_path / "zero_one.png")[0].numpy().T, expected)
    grades = np.where(masks["a"] > 0, 200, 60).astype(np.uint8)
    out = LoadBinaryMask(mask_threshold=100)(grades)
    np.testing.assert_array_equal(out[0].numpy().T, expected)
    assert float(LoadBinaryMaskd(keys="m", mask_threshold=0)({"m": grades})["m"].mean()) == 1.0  # any non-zero
    with pytest.raises(ValueError, match="mask_threshold must be a finite number"):
        LoadBinaryMask(mask_threshold=float("nan"))


def test_all_or_nothing_masks_are_warned_by_file(tmp_path: Path, masks):
    Image.fromarray(np.full((5, 7), 1, np.uint8)).save(tmp_path / "all_ones.png")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "empty.png")
    with pytest.warns(UserWarning, match=r"100% of the pixels of .*all_ones\.png are foreground"):
        assert float(LoadBinaryMask()(tmp_path / "all_ones.png").mean()) == 1.0
    with pytest.warns(UserWarning, match=r"0% of the pixels of .*empty\.png are foreground"):
        LoadBinaryMask()(tmp_path / "empty.png")
    with pytest.warns(UserWarning, match=r"the 2 masks in .*are foreground"):
        LoadBinaryMask()([tmp_path / "empty.png", tmp_path / "empty.png"])
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="implausible mask")
        LoadBinaryMask(warn_implausible=False)(tmp_path / "empty.png")
        LoadBinaryMask()(tmp_path / "a.png")  # a plausible mask is not warned about
