"""ResumeState: random states and best-metric tracking survive a weights-only checkpoint round trip."""

# ruff: noqa: NPY002  (the legacy global NumPy generator is what a resume must restore)

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver
from monai.transforms import Compose, RandAffined, RandFlipd

from monai_imbalance.workflow import ResumeState, randomizable_objects


def _draws(transforms):
    inner = transforms.transforms[1].rand_affine
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        [random.random() for _ in range(3)],
        [t.R.rand() for t in transforms.transforms],
        inner.R.rand(),
        np.random.randn(),  # the legacy generator's cached Gaussian
    )


def _round_trip(state, tmp_path):
    torch.save(state, tmp_path / "state.pt")
    return torch.load(tmp_path / "state.pt", weights_only=True)  # no code unpickled


def test_randomizable_objects_finds_nested_generators_once():
    flip = RandFlipd(keys="image", prob=0.5)
    affine = RandAffined(keys="image", prob=0.5, rotate_range=0.1)
    found = randomizable_objects([Compose([flip, affine]), {"again": flip}])
    assert isinstance(found[0], Compose) and found[1:4] == [flip, affine, affine.rand_affine]
    assert affine.rand_affine.rand_affine_grid in found and len({id(t) for t in found}) == len(found) == 5


def test_random_states_are_restored_after_a_weights_only_round_trip(tmp_path):
    transforms = Compose([RandFlipd(keys="image", prob=0.5), RandAffined(keys="image", prob=0.5, rotate_range=0.1)])
    transforms.set_random_state(seed=3)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    np.random.randn()  # leaves a cached Gaussian in the global generator
    state = _round_trip(ResumeState(transforms=[transforms]).state_dict(), tmp_path)
    expected = _draws(transforms)

    torch.manual_seed(1), np.random.seed(1), random.seed(1), transforms.set_random_state(seed=4)
    fresh = Compose([RandFlipd(keys="image", prob=0.5), RandAffined(keys="image", prob=0.5, rotate_range=0.1)])
    ResumeState(transforms=[fresh]).load_state_dict(state)  # a new process builds new transform objects
    assert _draws(fresh) == expected


def _evaluator_with_best_saver(folder, scores):
    """An engine scoring ``scores[epoch - 1]`` per epoch, with MONAI's best-metric state and key-metric saver."""
    net = torch.nn.Linear(1, 1)
    engine = Engine(lambda engine, batch: None)
    engine.state.best_metric, engine.state.best_metric_epoch = -1, -1

    @engine.on(Events.EPOCH_COMPLETED)
    def score(engine):
        value = scores[engine.state.epoch - 1]
        engine.state.metrics = {"acc": value}
        if engine.state.best_metric_epoch == -1 or value > engine.state.best_metric:
            engine.state.best_metric, engine.state.best_metric_epoch = value, engine.state.epoch

    CheckpointSaver(
        str(folder), {"model": net}, save_key_metric=True, key_metric_name="acc", key_metric_filename="model.pt"
    ).attach(engine)
    return engine, net


def test_best_metric_and_best_model_tracking_are_restored(tmp_path):
    scores = [0.5, 0.8, 0.6]
    first, net = _evaluator_with_best_saver(tmp_path, scores)
    first.run([0], max_epochs=2)  # epoch 2 (0.8) is the best so far
    best_weights = {k: v.clone() for k, v in net.state_dict().items()}
    state = _round_trip(ResumeState(evaluator=first).state_dict(), tmp_path)
    assert state["best_metric"] == 0.8 and state["best_metric_epoch"] == 2
    (((score, _),),) = state["best_model_saved"]  # one saver, holding one file
    assert score == 0.8

    resumed, resumed_net = _evaluator_with_best_saver(tmp_path, scores)
    ResumeState(evaluator=resumed).load_state_dict(state)
    with torch.no_grad():
        resumed_net.weight.fill_(123.0)  # weights of a worse epoch
    resumed.state.epoch = 2
    resumed.run([0], max_epochs=3)  # epoch 3 scores 0.6 < 0.8
    assert resumed.state.best_metric == 0.8 and resumed.state.best_metric_epoch == 2
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.testing.assert_close(saved, best_weights)  # model.pt still holds the best epoch


def test_best_model_savers_must_track_a_key_metric(tmp_path):
    plain = CheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)}, save_final=True)
    with pytest.raises(ValueError, match="save_key_metric=True"):
        ResumeState(best_model_savers=[plain])
