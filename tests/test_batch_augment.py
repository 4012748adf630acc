"""BatchRandAugment and PrepareBatchAugment: per-sample random flips, 90-degree turns and affine maps of a batch."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.transforms import Affine, RandomizableTrait

from monai_imbalance.data import resolve_num_workers
from monai_imbalance.transforms import BatchRandAugment, PrepareBatchAugment, augment_placement
from monai_imbalance.transforms.batch_augment import _affine_grid

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def smooth_batch(batch=8, channels=2, height=24, width=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, channels, height, width, generator=generator)
    return F.avg_pool2d(noise, 5, stride=1, padding=2)


def block_mask(batch=8, height=32, width=32, block=8, seed=0):
    """A binary mask of ``block`` x ``block`` squares (B, 1, H, W), as uint8."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 1, height // block, width // block, generator=generator) > 0.5
    return F.interpolate(coarse.float(), scale_factor=block, mode="nearest").to(torch.uint8)


def test_shapes_dtypes_and_input_untouched():
    image, mask = smooth_batch(), (smooth_batch(channels=1) > 0.5).to(torch.uint8)
    before_image, before_mask = image.clone(), mask.clone()
    augment = BatchRandAugment(flip_axes=(0, 1), affine_prob=0.5, rotate_range=0.3, scale_range=0.1, seed=1)
    out_image, out_mask = augment(image, mask)
    assert out_image.shape == image.shape and out_image.dtype == image.dtype
    assert out_mask.shape == mask.shape and out_mask.dtype == torch.uint8
    assert set(out_mask.unique().tolist()) <= {0, 1}
    assert torch.equal(image, before_image) and torch.equal(mask, before_mask)
    assert augment(image)[1] is None


def test_flip_is_exact_and_follows_the_draws():
    image = smooth_batch(batch=16)
    always = BatchRandAugment(flip_axes=(1,), flip_prob=1.0)
    assert torch.equal(always(image)[0], image.flip(3))
    both = BatchRandAugment(flip_axes=(0, 1), flip_prob=1.0)
    assert torch.equal(both(image)[0], image.flip(2).flip(3))

    augment = BatchRandAugment(flip_axes=(0, 1), flip_prob=0.5, seed=7)
    draws = BatchRandAugment(flip_axes=(0, 1), flip_prob=0.5, seed=7).draw(16)["flip"]
    out = augment(image)[0]
    for i in range(16):
        expected = image[i]
        if draws[i, 0]:
            expected = expected.flip(1)
        if draws[i, 1]:
            expected = expected.flip(2)
        assert torch.equal(out[i], expected)
    assert 0 < draws[:, 0].sum() < 16 and 0 < draws[:, 1].sum() < 16


def test_rotate90_is_exact_and_needs_a_square():
    image = smooth_batch(batch=12, height=16, width=16)
    augment = BatchRandAugment(rotate90_prob=1.0, seed=3)
    k = BatchRandAugment(rotate90_prob=1.0, seed=3).draw(12)["rotate90"]
    out = augment(image)[0]
    assert set(k.tolist()) <= {1, 2, 3}
    for i in range(12):
        assert torch.equal(out[i], torch.rot90(image[i], int(k[i]), dims=(1, 2)))
    with pytest.raises(ValueError, match="square"):
        augment(smooth_batch(height=16, width=20))


def test_zero_ranges_give_the_input():
    image = smooth_batch()
    mask = block_mask(height=24, width=32)
    augment = BatchRandAugment(affine_prob=1.0, rotate_range=0.0, scale_range=0.0, translate_range=0.0)
    out_image, out_mask = augment(image, mask)
    assert torch.allclose(out_image, image, atol=1e-6)
    assert torch.equal(out_mask, mask)
    nothing = BatchRandAugment(flip_axes=(0, 1), flip_prob=0.0, affine_prob=0.0, rotate_range=0.5)
    assert torch.equal(nothing(image)[0], image)


@pytest.mark.parametrize(
    "angle, scale, shift",
    [(0.3, (1.1, 0.9), (0.0, 0.0)), (-0.17, (0.95, 1.05), (3.0, -2.0)), (math.pi / 2, (1.0, 1.0), (0.0, 1.5))],
)
def test_affine_matches_monai_affine(angle, scale, shift):
    """The same parameters as MONAI's Affine (rotate, translate, scale; border padding) give the same image."""
    image = smooth_batch(batch=1, channels=1, height=40, width=56)
    reference = Affine(
        rotate_params=[angle],
        scale_params=list(scale),
        translate_params=list(shift),
        padding_mode="border",
        mode="bilinear",
        image_only=True,
    )(image[0])
    theta = BatchRandAugment.theta(
        torch.tensor([angle], dtype=torch.float64),
        torch.tensor([scale], dtype=torch.float64),
        torch.tensor([shift], dtype=torch.float64),
        40,
        56,
    )
    grid = F.affine_grid(theta.float(), [1, 1, 40, 56], align_corners=False)
    ours = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert torch.allclose(ours[0], reference.as_tensor(), atol=1e-5)


def test_draws_stay_in_the_ranges():
    augment = BatchRandAugment(
        flip_axes=(1,), affine_prob=0.5, rotate_range=0.17, scale_range=(0.1, 0.2), translate_range=3.0, seed=0
    )
    draws = augment.draw(4000)
    assert draws["angle"].abs().max() <= 0.17 and draws["angle"].abs().max() > 0.16
    assert (draws["scale"][:, 0] - 1).abs().max() <= 0.1 and (draws["scale"][:, 1] - 1).abs().max() <= 0.2
    assert draws["shift"].abs().max() <= 3.0
    assert abs(draws["affine"].float().mean() - 0.5) < 0.03 and abs(draws["flip"][:, 1].float().mean() - 0.5) < 0.03
    assert not draws["flip"][:, 0].any()  # axis 0 is not in flip_axes


def test_image_and_mask_get_the_same_geometry():
    """A mask and an image made of the same blocks stay aligned: where the image is clearly 0 or 1, so is the mask."""
    mask = block_mask(batch=16)
    image = mask.float().repeat(1, 2, 1, 1)
    augment = BatchRandAugment(
        flip_axes=(0, 1), rotate90_prob=0.5, affine_prob=1.0, rotate_range=0.5, scale_range=0.2, translate_range=4.0
    )
    out_image, out_mask = augment(image, mask)
    assert not torch.equal(out_mask, mask)
    assert torch.equal(out_image[:, 0], out_image[:, 1])
    clearly_on, clearly_off = out_image[:, :1] > 0.99, out_image[:, :1] < 0.01
    assert clearly_on.sum() > 1000 and clearly_off.sum() > 1000
    assert bool((out_mask[clearly_on] == 1).all()) and bool((out_mask[clearly_off] == 0).all())


def test_seeded_determinism():
    image = smooth_batch()
    options = {"flip_axes": (1,), "affine_prob": 0.5, "rotate_range": 0.17, "scale_range": 0.1}
    first, second = BatchRandAugment(**options, seed=5), BatchRandAugment(**options, seed=5)
    a1, a2 = first(image)[0], first(image)[0]
    assert torch.equal(a1, second(image)[0]) and torch.equal(a2, second(image)[0])
    assert not torch.equal(a1, a2)
    assert not torch.equal(a1, BatchRandAugment(**options, seed=6)(image)[0])
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(BatchRandAugment(**options, seed=5)(image)[0], a1)


def test_same_draws_whatever_the_probabilities_and_mask():
    image, mask = smooth_batch(height=16, width=16), block_mask(height=16, width=16)
    quiet, busy = BatchRandAugment(seed=2), BatchRandAugment(flip_axes=(0, 1), rotate90_prob=1, affine_prob=1, seed=2)
    quiet(image)
    busy(image, mask)
    assert torch.equal(quiet.state_dict()["generator"], busy.state_dict()["generator"])


def test_state_dict_round_trip_resumes_exactly():
    image = smooth_batch()
    options = {"flip_axes": (1,), "affine_prob": 0.5, "rotate_range": 0.17, "scale_range": 0.1}
    augment = BatchRandAugment(**options, seed=3)
    augment(image)
    buffer = io.BytesIO()
    torch.save({"batch_augment": PrepareBatchAugment(augment).state_dict()}, buffer)
    expected = [augment(image)[0] for _ in range(2)]
    buffer.seek(0)
    restored = BatchRandAugment(**options, seed=99)
    PrepareBatchAugment(restored).load_state_dict(torch.load(buffer, weights_only=True)["batch_augment"])
    assert all(torch.equal(restored(image)[0], e) for e in expected)
    with pytest.raises(KeyError, match="generator"):
        restored.load_state_dict({})


@pytest.mark.parametrize("device", DEVICES)
def test_device_agnostic(device):
    image, mask = smooth_batch(height=16, width=16), block_mask(height=16, width=16)
    options = {"flip_axes": (0, 1), "rotate90_prob": 0.5, "affine_prob": 0.5, "rotate_range": 0.3, "scale_range": 0.1}
    on_cpu = BatchRandAugment(**options)(image, mask)
    on_device = BatchRandAugment(**options)(image.to(device), mask.to(device))
    assert on_device[0].device.type == device and on_device[1].device.type == device
    assert torch.allclose(on_device[0].cpu(), on_cpu[0], atol=1e-5)
    assert (on_device[1].cpu() != on_cpu[1]).float().mean() < 0.01  # nearest: rounding ties may differ


def test_bad_input_and_options():
    augment = BatchRandAugment(flip_axes=(1,))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.rand(2, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        augment(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="mask"):
        augment(torch.rand(2, 1, 8, 8), torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="flip_axes"):
        BatchRandAugment(flip_axes=(2,))
    with pytest.raises(ValueError, match="affine_prob"):
        BatchRandAugment(affine_prob=1.5)
    with pytest.raises(ValueError, match="scale_range"):
        BatchRandAugment(scale_range=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="padding_mode"):
        BatchRandAugment(padding_mode="edge")
    with pytest.raises(TypeError, match="BatchRandAugment"):
        PrepareBatchAugment(augment="flip")


def test_prepare_batch_classification_and_segmentation():
    image = smooth_batch(batch=4)
    labels = torch.tensor([0, 1, 2, 3])
    flip = BatchRandAugment(flip_axes=(1,), flip_prob=1.0)
    out_image, out_label = PrepareBatchAugment(flip)({"image": image, "label": labels}, "cpu")
    assert torch.equal(out_image, image.flip(3)) and torch.equal(out_label, labels)
    mask = block_mask(batch=4, height=24, width=32)
    seg_image, seg_mask = PrepareBatchAugment(flip, augment_label=True)({"image": image, "label": mask}, "cpu")
    assert torch.equal(seg_image, image.flip(3)) and torch.equal(seg_mask, mask.flip(3))
    plain = PrepareBatchAugment()
    assert torch.equal(plain({"image": image, "label": labels})[0], image) and plain.state_dict() == {}


def test_prepare_batch_in_a_supervised_trainer():
    """The trainer calls it with MONAI's prepare_batch signature and trains on the augmented batch."""
    seen = []
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 24 * 32, 3))
    augment = BatchRandAugment(flip_axes=(1,), flip_prob=1.0)

    class Recording(PrepareBatchAugment):
        def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
            out = super().__call__(batchdata, device, non_blocking, **kwargs)
            seen.append(out[0])
            return out

    image = smooth_batch(batch=4)
    data = [{"image": image, "label": torch.tensor([0, 1, 2, 0])}]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
        loss_function=torch.nn.CrossEntropyLoss(),
        prepare_batch=Recording(augment),
    )
    trainer.run()
    assert len(seen) == 1 and torch.equal(seen[0], image.flip(3))


def test_augment_placement():
    assert augment_placement(True, "batch") == "batch" and augment_placement(True, "sample") == "sample"
    assert augment_placement(False, "batch") == "none"
    with pytest.raises(ValueError, match="augment_on"):
        augment_placement(True, "gpu")


def test_broadcast_grid_equals_affine_grid():
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(5, 2, 3, generator=generator)
    expected = F.affine_grid(theta, [5, 1, 7, 11], align_corners=False)
    assert torch.allclose(_affine_grid(theta, 7, 11), expected, atol=1e-6)


def _bundle(name, overrides, tmp_path):
    from bundle_runner import parse_bundle

    return parse_bundle(name, ["train"], {"ckpt_dir": str(tmp_path / "m"), "log_dir": str(tmp_path / "l"), **overrides})


def test_knee_bundle_places_its_augmentation(tmp_path, shared_data):
    """Batches by default, with the ranges of the per-sample RandFlipd / RandAffined; per sample on request."""
    data = {"data_format": "medmnist", "dataset_dir": str(shared_data / "knee_kl" / "knee_kl_64_trainval.npz")}
    parser = _bundle("knee_oa_grading", {**data, "image_size": 64}, tmp_path)
    assert parser.get_parsed_content("augment_where") == "batch"
    steps = parser.get_parsed_content("train#preprocessing").transforms
    assert not any(isinstance(t, RandomizableTrait) for t in steps)
    batch = parser.get_parsed_content("train#prepare_batch").augment
    flip, affine = parser.get_parsed_content("augmentation")
    assert batch.flip_axes == (flip.flipper.spatial_axis,) and batch.flip_prob == flip.prob
    assert batch.affine_prob == affine.prob and batch.padding_mode == affine.rand_affine.resampler.padding_mode
    assert batch.rotate_range == affine.rand_affine.rand_affine_grid.rotate_range[0]
    assert batch.scale_range == tuple(affine.rand_affine.rand_affine_grid.scale_range)
    assert parser.get_parsed_content("cache_share") == 1.0 and parser.get_parsed_content("loader_workers") == 0

    per_sample = _bundle("knee_oa_grading", {**data, "image_size": 64, "augment_on": "sample"}, tmp_path)
    names = [type(t).__name__ for t in per_sample.get_parsed_content("train#preprocessing").transforms]
    assert "RandFlipd" in names and "RandAffined" in names
    assert per_sample.get_parsed_content("train#prepare_batch").augment is None
    assert per_sample.get_parsed_content("loader_workers") == resolve_num_workers("auto", cache_rate=1.0)
    plain = _bundle("knee_oa_grading", {**data, "image_size": 64, "augment": False}, tmp_path)
    assert plain.get_parsed_content("train#prepare_batch").augment is None
    with pytest.raises(Exception, match="augment_on"):
        _bundle("knee_oa_grading", {**data, "augment_on": "gpu"}, tmp_path).get_parsed_content("augment_where")


def test_nuclei_bundle_moves_masks_with_images(tmp_path, shared_data):
    overrides = {"dataset_dir": str(shared_data / "dsb2018" / "dsb2018_256.npz"), "augment": True}
    prepare = _bundle("nuclei_segmentation", overrides, tmp_path).get_parsed_content("train#prepare_batch")
    assert prepare.augment_label and prepare.augment.flip_axes == (0, 1) and prepare.augment.rotate90_prob == 0.5
