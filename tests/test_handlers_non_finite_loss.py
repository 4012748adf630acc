"""StopOnNonFiniteLoss: a NaN or infinite training loss stops the run at once, with epoch, iteration, checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine

from monai_imbalance.errors import UserError
from monai_imbalance.handlers import NonFiniteLossError, StopOnNonFiniteLoss


def _engine(bad_iteration: int, value: float) -> tuple[Engine, list[int]]:
    seen: list[int] = []

    def step(engine, batch):
        seen.append(engine.state.iteration)
        loss = value if engine.state.iteration == bad_iteration else 0.5
        return [{"loss": torch.tensor(loss)}, {"loss": torch.tensor(loss)}]  # MONAI's decollated output

    return Engine(step), seen


def test_a_nan_loss_stops_at_that_iteration_naming_it_and_the_last_checkpoint(tmp_path):
    for epoch in (1, 2):
        (tmp_path / f"last_checkpoint_epoch={epoch}.pt").write_bytes(b"")
    engine, seen = _engine(bad_iteration=7, value=math.nan)  # epoch 3 (4 iterations per epoch), 3rd iteration
    StopOnNonFiniteLoss(ckpt_dir=tmp_path).attach(engine)
    with pytest.raises(NonFiniteLossError) as caught:
        engine.run(range(4), max_epochs=5)
    message = str(caught.value)
    assert "loss is nan at epoch 2, iteration 3 of 4 (iteration 7 overall)" in message
    assert f"last good checkpoint is {tmp_path / 'last_checkpoint_epoch=2.pt'}" in message
    assert seen[-1] == 7  # nothing ran after it
    assert isinstance(caught.value, UserError) and isinstance(caught.value, FloatingPointError)


def test_an_infinite_loss_before_any_checkpoint(tmp_path):
    engine, seen = _engine(bad_iteration=2, value=math.inf)
    StopOnNonFiniteLoss(ckpt_dir=tmp_path).attach(engine)
    with pytest.raises(NonFiniteLossError, match=r"loss is infinite at epoch 1, iteration 2 of 4.*no checkpoint"):
        engine.run(range(4), max_epochs=2)
    assert seen == [1, 2]


def test_finite_losses_run_to_the_end_and_attach_is_idempotent():
    engine, seen = _engine(bad_iteration=-1, value=0.0)
    handler = StopOnNonFiniteLoss(output_transform=lambda output: output[0]["loss"])
    handler.attach(engine)
    handler.attach(engine)
    engine.run(range(3), max_epochs=2)
    assert seen == list(range(1, 7))
