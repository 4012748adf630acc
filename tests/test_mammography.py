"""Mammogram intensities (DICOM VOI LUT / window / percentiles, MONOCHROME1) and the aspect-keeping resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dicom_helpers import write_dicom
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose
from pydicom.dataset import Dataset as DicomDataset

from monai_imbalance.transforms import (
    LoadImageOrArray,
    LoadImageOrArrayd,
    MammogramIntensity,
    MammogramIntensityd,
    ResizeLongestPad,
    ResizeLongestPadd,
)
from monai_imbalance.transforms.mammography import apply_window, percentile_normalise

PIXELS = (np.arange(8 * 6).reshape(8, 6) * 80).astype(np.uint16)  # 0 .. 3760, 12-bit
# LoadImageOrArray gives DICOM as (C, Columns, Rows), like MONAI: outputs are compared as out[0].T


def linear_window(x, c, w):
    """DICOM PS3.3 C.11.2.1.2.1, written out branch by branch."""
    x = np.asarray(x, dtype=np.float64)
    out = (x - (c - 0.5)) / (w - 1) + 0.5
    out[x <= c - 0.5 - (w - 1) / 2] = 0.0
    out[x > c - 0.5 + (w - 1) / 2] = 1.0
    return out


def load(path):
    return LoadImageOrArray(dicom_tags=True)(path)


def test_apply_window_matches_the_dicom_formulas():
    x = torch.arange(0, 1000, 7, dtype=torch.float32)
    np.testing.assert_allclose(apply_window(x, 500, 301).numpy(), linear_window(x.numpy(), 500, 301), atol=1e-6)
    exact = np.clip((x.numpy() - 500) / 300 + 0.5, 0, 1)
    np.testing.assert_allclose(apply_window(x, 500, 300, "linear_exact").numpy(), exact, atol=1e-6)
    sigmoid = 1 / (1 + np.exp(-4 * (x.numpy() - 500) / 300))
    np.testing.assert_allclose(apply_window(x, 500, 300, "SIGMOID").numpy(), sigmoid, rtol=1e-5)
    assert torch.equal(apply_window(torch.tensor([9.0, 10.0]), 10, 1), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="Window Width"):
        apply_window(x, 10, 0.5)
    with pytest.raises(ValueError, match="VOI LUT Function"):
        apply_window(x, 10, 10, "CUBIC")


def test_percentile_normalise_matches_numpy():
    x = torch.linspace(-5, 20, 1001) ** 2
    lo, hi = np.percentile(x.numpy(), [2, 98])
    expected = np.clip((x.numpy() - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(percentile_normalise(x, 2, 98).numpy(), expected, atol=1e-5)
    assert torch.equal(percentile_normalise(torch.full((3, 3), 7.0)), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="lower < upper"):
        percentile_normalise(x, 50, 50)


def test_window_tags_are_applied(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", PIXELS, WindowCenter=2000, WindowWidth=1001)
    out = MammogramIntensity()(load(path))
    np.testing.assert_allclose(out[0].numpy().T, linear_window(PIXELS, 2000, 1001), atol=1e-6)
    assert out.meta["intensity_normalisation"] == "window"
    assert out.meta["inverted"] is False
    assert not any(len(k) == 8 and k.isalnum() and k.upper() == k for k in out.meta if isinstance(k, str))


def test_rescale_then_window_then_monochrome1_inversion(tmp_path):
    path = write_dicom(
        tmp_path / "m1.dcm",
        PIXELS,
        photometric="MONOCHROME1",
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=[3000, 100],
        WindowWidth=[2001, 50],
        VOILUTFunction="LINEAR_EXACT",
    )
    out = MammogramIntensity()(load(path))
    expected = 1.0 - np.clip((2.0 * PIXELS - 100 - 3000) / 2001 + 0.5, 0, 1)
    np.testing.assert_allclose(out[0].numpy().T, expected, atol=1e-6)
    assert out.meta["inverted"] is True
    second = MammogramIntensity(voi_index=1)(load(path))
    np.testing.assert_allclose(second[0].numpy().T, 1 - np.clip((2.0 * PIXELS - 100 - 100) / 50 + 0.5, 0, 1), atol=1e-6)


def test_monochrome1_without_window_is_percentile_normalised_and_inverted(tmp_path):
    path = write_dicom(tmp_path / "p.dcm", PIXELS, photometric="MONOCHROME1")
    out = MammogramIntensity(percentiles=(1, 99))(load(path))
    lo, hi = np.percentile(PIXELS.astype(np.float64), [1, 99])
    np.testing.assert_allclose(out[0].numpy().T, 1 - np.clip((PIXELS - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert out.meta["intensity_normalisation"] == "percentile"
    # the brightest stored value is displayed darkest
    assert out[0, 0, 0] == 1.0 and out[0, -1, -1] == 0.0


def test_voi_lut_sequence_is_preferred_over_the_window(tmp_path):
    lut = DicomDataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = np.arange(4095, -1, -1, dtype=np.uint16).tobytes()  # an inverting table
    path = write_dicom(tmp_path / "lut.dcm", PIXELS, VOILUTSequence=[lut], WindowCenter=100, WindowWidth=10)
    out = MammogramIntensity()(load(path))
    np.testing.assert_allclose(out[0].numpy().T, (4095 - PIXELS) / 4095, atol=1e-6)
    assert out.meta["intensity_normalisation"] == "voi_lut"
    windowed = MammogramIntensity(voi="window")(load(path))
    assert windowed.meta["intensity_normalisation"] == "window"
    assert MammogramIntensity(voi="percentile")(load(path)).meta["intensity_normalisation"] == "percentile"


def test_bad_window_names_the_file_and_bad_arguments(tmp_path):
    path = write_dicom(tmp_path / "badwin.dcm", PIXELS, WindowCenter=10, WindowWidth=0)
    with pytest.raises(ValueError, match="badwin"):
        MammogramIntensity()(load(path))
    with pytest.raises(ValueError, match="out of range"):
        MammogramIntensity(voi_index=3)(load(write_dicom(tmp_path / "w.dcm", PIXELS, WindowCenter=1, WindowWidth=9)))
    with pytest.raises(ValueError, match="voi"):
        MammogramIntensity(voi="lut")
    with pytest.raises(ValueError, match="percentiles"):
        MammogramIntensity(percentiles=(90, 10))


def test_resize_longest_pad_keeps_aspect_and_pads_symmetrically():
    img = MetaTensor(torch.ones(1, 20, 10))
    out = ResizeLongestPad(8)(img)
    assert out.shape == (1, 8, 8)
    assert torch.equal(out[0, :, 2:6], torch.ones(8, 4))  # 20x10 -> 8x4, centred
    assert out[0, :, :2].abs().sum() == 0 and out[0, :, 6:].abs().sum() == 0
    assert ResizeLongestPad(6)(torch.ones(3, 3, 12)).shape == (3, 6, 6)
    with pytest.raises(ValueError, match="spatial_size"):
        ResizeLongestPad(0)


def test_dicom_batch_with_mixed_headers(tmp_path):
    a = write_dicom(tmp_path / "a.dcm", PIXELS, photometric="MONOCHROME1")
    b = write_dicom(tmp_path / "b.dcm", PIXELS[:, :4], WindowCenter=2000, WindowWidth=1000)
    chain = Compose(
        [
            LoadImageOrArrayd(keys="image", dicom_tags=True, channels=1),
            MammogramIntensityd(keys="image"),
            ResizeLongestPadd(keys="image", spatial_size=16),
        ]
    )
    data = [{"image": str(a), "label": 0}, {"image": str(b), "label": 3}]
    batch = next(iter(DataLoader(Dataset(data, chain), batch_size=2)))
    assert batch["image"].shape == (2, 1, 16, 16)
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert list(batch["image"].meta["intensity_normalisation"]) == ["percentile", "window"]


def test_real_jpeg_mammograms_through_the_density_pipeline(shared_data):
    chain = Compose(
        [
            LoadImageOrArrayd(keys="image", dicom_tags=True, channels=1, draft_size=64),
            MammogramIntensityd(keys="image"),
            ResizeLongestPadd(keys="image", spatial_size=64),
        ]
    )
    paths = sorted((shared_data / "breast_density_sample").glob("*/*.jpg"))
    assert len(paths) == 16
    for path in paths[::5]:
        out = chain({"image": str(path)})["image"]
        assert out.shape == (1, 64, 64)
        assert out.min() >= 0.0 and out.max() <= 1.0 and out.std() > 0.05
        assert out.meta["intensity_normalisation"] == "percentile"
