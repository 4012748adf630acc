"""LoadImageOrArray(d): files of every format and in-memory arrays give the same channel-first tensor."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from dicom_helpers import write_dicom
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Resized, ScaleIntensityd
from PIL import Image

from monai_imbalance.transforms import LoadImageOrArray, LoadImageOrArrayd, PictureReader
from monai_imbalance.transforms.io import convert_channels, strip_dicom_tags


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # non-square: a swapped axis would show


def test_png_on_disk_equals_array_rgb(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "x.png")
    load = LoadImageOrArray()
    from_file, from_array = load(str(tmp_path / "x.png")), load(rgb)
    assert from_file.shape == from_array.shape == (3, 7, 5)
    assert from_file.dtype == from_array.dtype == torch.float32
    assert torch.equal(from_file.as_tensor(), from_array.as_tensor())
    # MONAI's orientation: channel k, column c (x), row r (y) of the picture
    assert from_file[2, 6, 4].item() == rgb[4, 6, 2]
    # the display order of versions 0.1.x on request
    old = LoadImageOrArray(reverse_indexing=False)
    assert torch.equal(old(str(tmp_path / "x.png")).as_tensor(), from_file.as_tensor().transpose(1, 2))
    assert torch.equal(old(rgb).as_tensor(), from_file.as_tensor().transpose(1, 2))


def test_real_knee_png_equals_its_array(shared_data):
    path = shared_data / "knee_kl" / "png224_sample" / "train" / "0" / "9001695L.png"
    array = np.asarray(Image.open(path))
    load = LoadImageOrArray()
    assert torch.equal(load(path).as_tensor(), load(array).as_tensor())
    assert load(path).shape == (1, 224, 224)


def test_medmnist_item_and_its_png_go_through_the_same_transforms(tmp_path, shared_data):
    with np.load(shared_data / "medmnist" / "dermamnist.npz") as npz:
        image = npz["val_images"][3]
    Image.fromarray(image).save(tmp_path / "d.png")
    chain = Compose(
        [LoadImageOrArrayd(keys="image"), ScaleIntensityd(keys="image"), Resized(keys="image", spatial_size=(40, 40))]
    )
    a = chain({"image": image})["image"]
    b = chain({"image": str(tmp_path / "d.png")})["image"]
    assert a.shape == (3, 40, 40)
    assert torch.allclose(a.as_tensor(), b.as_tensor())


def test_tiff_16bit_and_nifti_equal_their_arrays(tmp_path):
    grey = (np.arange(6 * 9, dtype=np.uint16).reshape(6, 9) * 1000).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.tif")
    nib.save(nib.Nifti1Image(grey.astype(np.float32), np.eye(4)), tmp_path / "g.nii.gz")
    load = LoadImageOrArray()
    picture = torch.as_tensor(grey.astype(np.float32)).T[None]  # a picture: columns (x) first, as MONAI reads it
    assert torch.equal(load(tmp_path / "g.tif").as_tensor(), picture)
    assert torch.equal(load(grey).as_tensor(), picture)
    # NIfTI keeps its voxel axes (MONAI's NibabelReader): the array's first axis is the file's first axis
    assert torch.equal(load(tmp_path / "g.nii.gz").as_tensor(), torch.as_tensor(grey.astype(np.float32))[None])


def test_dicom_rows_columns_and_tag_handling(tmp_path):
    pixels = np.arange(4 * 6, dtype=np.uint16).reshape(4, 6) * 100
    path = write_dicom(tmp_path / "m.dcm", pixels, WindowCenter=500, WindowWidth=300)
    plain = LoadImageOrArray()(path)
    assert plain.shape == (1, 6, 4)  # (C, Columns, Rows), MONAI's PydicomReader(swap_ij=True)
    assert torch.equal(plain.as_tensor(), torch.as_tensor(pixels.astype(np.float32)).T[None])
    assert "00281050" not in plain.meta  # header dropped by default
    tagged = LoadImageOrArray(dicom_tags=True)(path)
    assert tagged.meta["00281050"]["Value"] == [500.0]
    assert tagged.meta["00280004"]["Value"] == ["MONOCHROME2"]


def test_dicoms_with_different_headers_collate_into_one_batch(tmp_path):
    a = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)), WindowCenter=1, WindowWidth=2)
    b = write_dicom(tmp_path / "b.dcm", np.ones((4, 4)), photometric="MONOCHROME1")
    data = [{"image": str(a), "label": 0}, {"image": str(b), "label": 1}]
    batch = next(iter(DataLoader(Dataset(data, LoadImageOrArrayd(keys="image")), batch_size=2)))
    assert batch["image"].shape == (2, 1, 4, 4)


def test_channel_conversion(rgb):
    grey = LoadImageOrArray(channels=1)(rgb)
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    assert grey.shape == (1, 7, 5)
    np.testing.assert_allclose(grey[0].numpy(), luma.T, rtol=1e-5)
    three = LoadImageOrArray(channels=3)(rgb[..., 0])
    assert three.shape == (3, 7, 5)
    assert torch.equal(three[0], three[2])
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=-1)
    assert torch.equal(LoadImageOrArray(channels=3)(rgba).as_tensor(), LoadImageOrArray()(rgb).as_tensor())
    with pytest.raises(ValueError, match="channels"):
        convert_channels(torch.zeros(5, 2, 2), 1)


def test_volume_and_explicit_channel_dim():
    volume = np.zeros((10, 6, 6), dtype=np.uint8)
    assert LoadImageOrArray()(volume).shape == (1, 10, 6, 6)  # last axis 6 > 4: (D, H, W)
    assert LoadImageOrArray(array_channel_dim=None)(np.zeros((6, 6, 3))).shape == (1, 6, 6, 3)
    assert LoadImageOrArray(array_channel_dim=0)(np.zeros((2, 6, 5))).shape == (2, 5, 6)  # a 2-D picture


def test_jpeg_draft_decodes_large_mammogram_small(shared_data):
    path = shared_data / "breast_density_sample" / "A" / "sample_A4.jpg"  # 3328 x 4096
    small = LoadImageOrArray(draft_size=256)(path)
    assert small.shape[0] == 3
    assert 256 <= min(small.shape[1:]) < 1024
    assert small.shape[1] < small.shape[2]  # portrait kept: width (first spatial axis) < height


def test_picture_reader_reports_array_order_spatial_shape(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "x.png")
    reader = PictureReader()
    _, meta = reader.get_data(reader.read(tmp_path / "x.png"))
    assert tuple(meta["spatial_shape"]) == (7, 5)  # (width, height), the order of the array
    display = PictureReader(reverse_indexing=False)
    data, meta = display.get_data(display.read(tmp_path / "x.png"))
    assert tuple(meta["spatial_shape"]) == (5, 7) == data.shape[:2]
    with pytest.raises(ValueError, match="draft_size"):
        PictureReader(draft_size=0)


def test_bad_inputs_name_the_problem(tmp_path):
    load = LoadImageOrArray()
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load(tmp_path / "missing.png")
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not a dicom file")
    with pytest.raises(ValueError, match=r"broken\.dcm"):
        load(bad)
    with pytest.raises(TypeError, match="path or an array"):
        load(3)
    with pytest.raises(ValueError, match="2 or 3 dimensions"):
        load(np.zeros(5))
    with pytest.raises(ValueError, match="channels"):
        LoadImageOrArray(channels=2)


def test_strip_dicom_tags_keeps_other_meta():
    meta = {"00280004": {}, "0028100A": {}, "spacing": 1, "filename_or_obj": "x"}
    assert strip_dicom_tags(meta) == {"spacing": 1, "filename_or_obj": "x"}


def test_picture_reader_returns_a_writable_array(tmp_path, rgb):
    """``numpy.asarray`` of a Pillow image is read-only; the reader copies it so the tensor may be written."""
    Image.fromarray(rgb).save(tmp_path / "x.png")
    reader = PictureReader()
    data, meta = reader.get_data(reader.read(str(tmp_path / "x.png")))
    assert data.flags.writeable
    np.testing.assert_array_equal(data, rgb.transpose(1, 0, 2))
    assert tuple(meta["spatial_shape"]) == data.shape[:2]
