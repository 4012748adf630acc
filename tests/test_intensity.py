"""ScaleIntensityByType: pixel values to [0, 1] by the stored type (8-bit, 16-bit, float, DICOM), in every bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dicom_helpers import write_dicom
from monai.data import MetaTensor
from monai.transforms import Compose, ScaleIntensityRange
from PIL import Image

from monai_imbalance.errors import DataError, UnknownChoiceError
from monai_imbalance.transforms import (
    LoadImageOrArray,
    LoadImageOrArrayd,
    MammogramIntensity,
    NonFinitePixelsError,
    ScaleIntensityByType,
    ScaleIntensityByTyped,
)
from monai_imbalance.transforms.mammography import apply_window

H, W = 24, 32


def _ramp(high: float, dtype) -> np.ndarray:
    """An (H, W) ramp from 0 to ``high`` (rows first, as numpy.asarray(PIL image))."""
    return np.linspace(0, high, H * W).reshape(H, W).astype(dtype)


def _expected(array: np.ndarray) -> np.ndarray:
    """What the loader's MONAI orientation gives for an (H, W) picture: (1, W, H)."""
    return array.T[None].astype(np.float64)


def _scaled(path_or_array, rule: str = "auto") -> MetaTensor:
    return ScaleIntensityByType(rule)(LoadImageOrArray()(path_or_array))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Files of every stored type, with the array each holds."""
    out = {}
    for name, array in {
        "png8": _ramp(255, np.uint8),
        "png16": _ramp(65535, np.uint16),
        "tif16": _ramp(65535, np.uint16),
        "tif_float01": _ramp(1.0, np.float32),
        "tif_float": _ramp(1.0, np.float32) * 5000.0 - 1000.0,
    }.items():
        path = tmp_path / f"{name}.{'png' if name.startswith('png') else 'tif'}"
        Image.fromarray(array).save(path)
        out[name] = (path, array)
    out["dicom12"] = (write_dicom(tmp_path / "d12.dcm", _ramp(4095, np.uint16)), _ramp(4095, np.uint16))
    return out


def test_integer_files_are_scaled_by_their_type_range(files):
    for name, high in (("png8", 255.0), ("png16", 65535.0), ("tif16", 65535.0), ("dicom12", 4095.0)):
        path, array = files[name]
        out = _scaled(path)
        np.testing.assert_allclose(out.numpy(), _expected(array) / high, atol=1e-6, err_msg=name)
        assert out.dtype == torch.float32 and out.meta["intensity_rule"] == "dtype"
        assert "stored_intensity" not in out.meta


def test_eight_bit_images_give_what_the_old_fixed_range_gave(files):
    path, _ = files["png8"]
    old = ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)(LoadImageOrArray()(path))
    torch.testing.assert_close(_scaled(path).as_tensor(), old.as_tensor())


def test_the_16_bit_regression_the_fixed_range_whitened_it(files):
    path, _ = files["png16"]
    old = ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)(LoadImageOrArray()(path))
    assert float(old.std()) < 0.1 and float(old.mean()) > 0.9  # what the bundles gave before: almost all white
    new = _scaled(path)
    assert float(new.std()) > 0.25 and float(new.min()) == 0.0 and float(new.max()) == pytest.approx(1.0)


def test_float_images_are_kept_in_0_1_else_scaled_per_image(files):
    path, array = files["tif_float01"]
    out = _scaled(path)
    np.testing.assert_allclose(out.numpy(), _expected(array), atol=1e-7)
    assert out.meta["intensity_rule"] == "float"
    path, array = files["tif_float"]
    expected = (_expected(array) - array.min()) / (array.max() - array.min())
    np.testing.assert_allclose(_scaled(path).numpy(), expected, atol=1e-6)


def test_arrays_are_scaled_by_their_dtype():
    for dtype, high in ((np.uint8, 255.0), (np.uint16, 65535.0)):
        array = _ramp(high, dtype)
        np.testing.assert_allclose(_scaled(array).numpy(), _expected(array) / high, atol=1e-6)
    signed = np.array([[-32768, 0], [32767, 100]], dtype=np.int16)
    expected = (_expected(signed) + 32768.0) / 65535.0
    np.testing.assert_allclose(_scaled(signed).numpy(), expected, atol=1e-6)
    wide = np.array([[70000, 80000], [90000, 170000]], dtype=np.int32)  # no fixed range: by its values
    np.testing.assert_allclose(_scaled(wide).numpy(), (_expected(wide) - 70000.0) / 100000.0, atol=1e-6)
    boolean = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(_scaled(boolean).numpy(), _expected(boolean))


def test_dicom_window_slope_signed_and_monochrome1(tmp_path):
    stored = _ramp(4095, np.uint16)
    windowed = write_dicom(tmp_path / "w.dcm", stored, WindowCenter=1000, WindowWidth=800)
    out = _scaled(windowed)
    reference = apply_window(torch.as_tensor(_expected(stored)), 1000.0, 800.0).numpy()
    np.testing.assert_allclose(out.numpy(), reference, atol=1e-6)
    assert out.meta["intensity_rule"] == "window"
    # slope 2, intercept -1000: the 12-bit range [0, 4095] maps to [-1000, 7190]
    rescaled = write_dicom(tmp_path / "s.dcm", stored, RescaleSlope=2, RescaleIntercept=-1000)
    np.testing.assert_allclose(_scaled(rescaled).numpy(), _expected(stored) / 4095.0, atol=1e-6)
    bad = write_dicom(tmp_path / "bad.dcm", stored, WindowCenter=1000, WindowWidth=0.5)
    with pytest.raises(DataError, match=r"bad\.dcm: invalid DICOM window in its header: .*Width >= 1"):
        _scaled(bad)
    # MONOCHROME1: the minimum is white; inverted so bright means dense
    inverted = write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1")
    np.testing.assert_allclose(_scaled(inverted).numpy(), 1.0 - _expected(stored) / 4095.0, atol=1e-6)


def test_minmax_and_mammogram_rules(files, tmp_path):
    path, array = files["png16"]
    expected = (_expected(array) - array.min()) / (array.max() - array.min())
    np.testing.assert_allclose(_scaled(path, "minmax").numpy(), expected, atol=1e-6)
    assert float(_scaled(np.full((4, 4), 7, np.uint8), "minmax").abs().max()) == 0.0  # constant image: zeros
    dicom = write_dicom(tmp_path / "w.dcm", _ramp(4095, np.uint16), WindowCenter=1000, WindowWidth=800)
    loaded = LoadImageOrArray(dicom_tags=True)(dicom)
    torch.testing.assert_close(
        ScaleIntensityByType("mammogram")(loaded).as_tensor(), MammogramIntensity()(loaded).as_tensor()
    )


def test_non_finite_pixels_stop_with_the_file_named(tmp_path):
    array = _ramp(1.0, np.float32)
    array[3, 4], array[5, 6] = np.nan, np.inf
    path = tmp_path / "bad.tif"
    Image.fromarray(array).save(path)
    for rule in ("auto", "minmax", "mammogram"):
        with pytest.raises(NonFinitePixelsError, match=r"bad\.tif: 1 NaN and 1 infinite pixel value"):
            _scaled(path, rule)
    transform = ScaleIntensityByTyped(keys="image")
    with pytest.raises(NonFinitePixelsError, match=r"item 'knee_7'.*1 NaN"):
        transform(LoadImageOrArrayd(keys="image")({"image": array, "id": "knee_7"}))


def test_bad_rule_and_unknown_type_are_refused():
    with pytest.raises(UnknownChoiceError, match="unknown intensity rule 'mnmax'"):
        ScaleIntensityByType("mnmax")
    with pytest.raises(ValueError, match="stored data type is unknown"):
        ScaleIntensityByType("auto")(torch.rand(1, 4, 4))
    np.testing.assert_allclose(ScaleIntensityByType("minmax")(torch.arange(4.0).view(1, 2, 2)).max(), 1.0)


BUNDLES = {
    "skin_lesion_classification": "auto",
    "glaucoma_classification": "auto",
    "rnfld_classification": "auto",
    "knee_oa_grading": "minmax",
    "breast_density": "mammogram",
    "skin_lesion_segmentation": "auto",
    "nuclei_segmentation": "auto",
    "retinal_vessel_segmentation": "auto",
}


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_every_bundle_keeps_the_contrast_of_16_bit_float_and_dicom_images(bundle, files):
    """The regression of issue 19: each family's pre-processing (classification, segmentation, repeatability) fed
    8-bit and 16-bit PNG, 16-bit TIFF, float TIFF and DICOM keeps a ramp's contrast (0.29 is a ramp's std)."""
    from bundle_runner import parse_bundle

    parser = parse_bundle(bundle, ("inference",))
    assert parser.get_parsed_content("intensity") == BUNDLES[bundle]
    preprocessing = Compose(parser.get_parsed_content("preprocessing"))
    for name, (path, _) in files.items():
        image = preprocessing({"image": str(path)})["image"]
        assert float(image.min()) < 0.05 and float(image.max()) > 0.9, (name, float(image.min()), float(image.max()))
        assert float(image.std()) > 0.2, (name, float(image.std()))
