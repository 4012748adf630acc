"""The bundles' loaders give exactly what a plain MONAI pipeline gives (issue 13.3).

``LoadImageOrArrayd`` (and ``LoadBinaryMaskd`` for masks) must equal ``LoadImaged(keys, image_only=True)`` +
``EnsureChannelFirstd(keys)`` for pictures and DICOM, so a model trained by a bundle predicts the same for an
image fed through either pipeline. Non-square images: a swapped axis changes the shape.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dicom_helpers import write_dicom
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, RepeatChanneld, ScaleIntensityRanged
from PIL import Image

from monai_imbalance.transforms import LoadBinaryMaskd, LoadImageOrArrayd


def monai_pipeline(path, extra=()):
    chain = Compose([LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"), *extra])
    return chain({"image": str(path)})["image"]


def bundle_loader(source, **kwargs):
    return LoadImageOrArrayd(keys="image", **kwargs)({"image": source})["image"]


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(5, 9, 3), dtype=np.uint8)  # 5 rows, 9 columns


@pytest.mark.parametrize(("name", "mode"), [("grey.png", "L"), ("rgb.png", "RGB"), ("rgb.jpg", "RGB")])
def test_picture_equals_loadimaged_ensurechannelfirstd(tmp_path, picture, name, mode):
    path = tmp_path / name
    Image.fromarray(picture).convert(mode).save(path)
    expected = monai_pipeline(path)
    ours = bundle_loader(str(path))
    channels = 1 if mode == "L" else 3
    assert expected.shape == ours.shape == (channels, 9, 5)  # (C, W, H)
    assert ours.dtype == expected.dtype == torch.float32
    assert torch.equal(ours.as_tensor(), expected.as_tensor())
    # and the array of the same picture (a MedMNIST npz item) gives the same tensor
    array = np.asarray(Image.open(path))
    assert torch.equal(bundle_loader(array).as_tensor(), expected.as_tensor())


def test_grey_to_three_channels_equals_repeatchanneld(tmp_path, picture):
    path = tmp_path / "grey.png"
    Image.fromarray(picture[..., 0]).save(path)
    expected = monai_pipeline(path, [RepeatChanneld(keys="image", repeats=3)])
    assert torch.equal(bundle_loader(str(path), channels=3).as_tensor(), expected.as_tensor())


def test_dicom_equals_loadimaged_ensurechannelfirstd(tmp_path):
    pixels = (np.arange(4 * 7, dtype=np.uint16).reshape(4, 7) * 37) % 4096  # 4 rows, 7 columns
    path = write_dicom(tmp_path / "m.dcm", pixels)
    expected = monai_pipeline(path)
    ours = bundle_loader(str(path))
    assert expected.shape == ours.shape == (1, 7, 4)
    assert torch.equal(ours.as_tensor(), expected.as_tensor())


def test_masks_stay_aligned_with_their_images(tmp_path, picture):
    mask = np.zeros((5, 9), np.uint8)
    mask[1:3, 6:8] = 255  # a lesion right of centre, in the upper half
    Image.fromarray(picture).save(tmp_path / "image.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    item = {"image": str(tmp_path / "image.png"), "label": str(tmp_path / "mask.png")}
    ours = LoadBinaryMaskd(keys="label")(LoadImageOrArrayd(keys="image")(item))
    plain = Compose(
        [LoadImaged(keys=["image", "label"], image_only=True), EnsureChannelFirstd(keys=["image", "label"])]
    )(item)
    assert torch.equal(ours["image"].as_tensor(), plain["image"].as_tensor())
    assert torch.equal(ours["label"].as_tensor(), (plain["label"] > 127).float().as_tensor())
    # the npz form of the same sample (DSB 2018 npz) lines up identically
    arrays = LoadBinaryMaskd(keys="label")(LoadImageOrArrayd(keys="image")({"image": picture, "label": mask}))
    assert torch.equal(arrays["label"].as_tensor(), ours["label"].as_tensor())


def test_a_trained_model_predicts_the_same_through_either_pipeline(tmp_path, picture):
    path = tmp_path / "x.png"
    Image.fromarray(picture).save(path)
    scale = ScaleIntensityRanged(keys="image", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2)).eval()
    ours = scale({"image": bundle_loader(str(path))})["image"]
    plain = monai_pipeline(path, [scale])
    with torch.no_grad():
        assert torch.equal(model(ours.as_tensor()[None]), model(plain.as_tensor()[None]))


def test_display_order_of_earlier_versions_on_request(tmp_path, picture):
    path = tmp_path / "x.png"
    Image.fromarray(picture).save(path)
    old = bundle_loader(str(path), reverse_indexing=False)
    assert old.shape == (3, 5, 9)
    assert torch.equal(old.as_tensor(), monai_pipeline(path).as_tensor().transpose(1, 2))
