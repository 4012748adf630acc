"""DeferredReweighting: weights switched on at the right epoch, in place, in a real MONAI trainer."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.losses import FocalLoss as MonaiFocalLoss

from monai_imbalance.handlers import DeferredReweighting
from monai_imbalance.losses import LDAMLoss, LMFLoss, drw_class_weights

COUNTS = [300, 60, 12]


def _record_weights(loss, handler, max_epochs):
    """Run an engine with a no-op step and return the loss weight seen in every epoch."""
    seen = []
    engine = Engine(lambda e, b: seen.append(loss.weight.clone()) if e.state.iteration % 2 == 1 else None)
    handler.attach(engine)
    handler.attach(engine)  # attaching twice registers once
    engine.run([0, 1], max_epochs=max_epochs)
    return seen


def test_uniform_then_drw_weights_in_place():
    loss = LDAMLoss(COUNTS, weight=[1.0, 1.0, 1.0])
    buffer = loss.weight
    seen = _record_weights(loss, DeferredReweighting(loss, COUNTS, start_epoch=2, beta=0.999), max_epochs=4)
    drw = drw_class_weights(COUNTS, 0.999, dtype=torch.float64)
    assert [torch.equal(w, torch.ones(3, dtype=torch.float64)) for w in seen] == [True, True, False, False]
    torch.testing.assert_close(seen[2], drw)
    torch.testing.assert_close(seen[3], drw)
    assert loss.weight is buffer  # updated in place: optimisers, .to() moves and references stay valid


def test_creates_the_buffer_when_the_loss_has_no_weights():
    loss = LMFLoss(COUNTS)
    assert loss.weight is None
    handler = DeferredReweighting(loss, COUNTS, start_epoch=0)
    seen = _record_weights(loss, handler, max_epochs=1)
    torch.testing.assert_close(seen[0], drw_class_weights(COUNTS, dtype=torch.float64))
    assert "weight" in dict(loss.named_buffers())


def test_a_created_buffer_goes_to_the_trainer_device():
    loss = LDAMLoss(COUNTS)
    engine = Engine(lambda e, b: None)
    engine.state.device = torch.device("meta")  # as MONAI's workflows set it; "meta" stands in for a GPU here
    handler = DeferredReweighting(loss, COUNTS, start_epoch=0)
    engine.state.epoch = 1
    handler(engine)
    assert loss.weight.device.type == "meta"
    explicit = DeferredReweighting(LDAMLoss(COUNTS), COUNTS, start_epoch=0, device="meta")
    explicit(engine)
    assert explicit.loss.weight.device.type == "meta"


def test_update_by_epoch_index_and_resume():
    loss = LDAMLoss(COUNTS)
    handler = DeferredReweighting(loss, COUNTS, start_epoch=160)
    assert torch.equal(handler.update(159), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(handler.update(170), drw_class_weights(COUNTS, dtype=torch.float64))  # resumed late
    torch.testing.assert_close(handler.update(3), torch.ones(3, dtype=torch.float64))


def test_other_buffer_names_and_dtypes():
    monai_focal = MonaiFocalLoss(use_softmax=True, to_onehot_y=True, weight=torch.ones(3, dtype=torch.float64))
    handler = DeferredReweighting(monai_focal, COUNTS, start_epoch=0, attribute="class_weight")
    handler.update(0)
    assert monai_focal.class_weight.dtype == torch.float64
    torch.testing.assert_close(monai_focal.class_weight.float(), drw_class_weights(COUNTS))


def test_changes_the_training_loss_in_a_supervised_trainer():
    torch.manual_seed(0)
    data = [{"image": torch.randn(4, 5), "label": torch.tensor([0, 0, 1, 2])} for _ in range(2)]
    net = torch.nn.Linear(5, 3)
    loss = LDAMLoss(COUNTS, s=5.0)
    losses_per_epoch = []
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=3,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),  # frozen network: only the weights change
        loss_function=loss,
        train_handlers=[DeferredReweighting(loss, COUNTS, start_epoch=2)],
    )
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: losses_per_epoch.append(e.state.output[0]["loss"]))
    trainer.run()
    assert losses_per_epoch[0] == pytest.approx(losses_per_epoch[1])
    assert losses_per_epoch[2] != pytest.approx(losses_per_epoch[1])
    torch.testing.assert_close(loss.weight, drw_class_weights(COUNTS, dtype=torch.float64))


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        DeferredReweighting(lambda x, y: x, COUNTS, start_epoch=1)
    with pytest.raises(ValueError, match="start_epoch"):
        DeferredReweighting(LDAMLoss(COUNTS), COUNTS, start_epoch=-1)
    with pytest.raises(ValueError, match="counts > 0"):
        DeferredReweighting(LDAMLoss(COUNTS), [3, 0, 1], start_epoch=1)
    with pytest.raises(ValueError, match="has 2 entries but class_counts has 3"):
        DeferredReweighting(LDAMLoss([5, 1], weight=[1.0, 1.0]), COUNTS, start_epoch=1)
    with pytest.raises(TypeError, match="not a tensor buffer"):
        DeferredReweighting(LDAMLoss(COUNTS), COUNTS, start_epoch=1, attribute="s")
