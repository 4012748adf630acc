"""AtomicCheckpointSaver: a write stopped half-way (a signal) leaves the earlier checkpoint, never a part of one."""

from __future__ import annotations

import stat

import pytest
import torch
from ignite.engine import Engine, Events

from monai_imbalance.workflow import AtomicCheckpointSaver


def _trainer_with(saver: AtomicCheckpointSaver, epochs: int) -> Engine:
    engine = Engine(lambda engine, batch: None)
    saver.attach(engine)
    engine.run([0], max_epochs=epochs)
    return engine


def _interrupted_save(monkeypatch) -> None:
    """Make torch.save write a few bytes, then stop as Ctrl-C stops it."""

    def partial_save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 half")
        else:
            with open(f, "wb") as file:
                file.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", partial_save)


def test_interval_checkpoints_are_whole_or_absent(tmp_path, monkeypatch):
    network = torch.nn.Linear(2, 1)
    state = {"model": network, "optimizer": torch.optim.SGD(network.parameters(), lr=0.1)}
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict=state, file_prefix="last", save_interval=1, n_saved=2
    )
    engine = _trainer_with(saver, epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint_epoch=1.pt", "last_checkpoint_epoch=2.pt"]
    mode = (tmp_path / "last_checkpoint_epoch=2.pt").stat().st_mode
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # readable by the group, as MONAI's own saver writes them

    _interrupted_save(monkeypatch)
    engine.state.epoch = 3
    with pytest.raises(KeyboardInterrupt):  # epoch 3's checkpoint stopped half-way
        engine.fire_event(Events.EPOCH_COMPLETED)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "last_checkpoint_epoch=3.pt" not in names and not [n for n in names if n.endswith(".tmp")]
    assert names == ["last_checkpoint_epoch=2.pt"]  # ignite removed the oldest first; the newest whole one stays
    saved = torch.load(tmp_path / "last_checkpoint_epoch=2.pt", weights_only=True)
    assert torch.equal(saved["model"]["weight"], network.weight)


def test_a_fixed_file_name_keeps_the_previous_model_until_the_new_one_is_whole(tmp_path, monkeypatch):
    network = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": network}, save_key_metric=True, key_metric_filename="model.pt"
    )
    evaluator = Engine(lambda engine, batch: None)
    saver.attach(evaluator)
    evaluator.state.metrics = {"score": 0.5}
    evaluator.state.key_metric_name = "score"
    evaluator.fire_event(Events.EPOCH_COMPLETED)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)

    with torch.no_grad():
        network.weight.add_(1.0)
    evaluator.state.metrics = {"score": 0.9}  # a new best, written over model.pt ...
    _interrupted_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):  # ... and stopped half-way
        evaluator.fire_event(Events.EPOCH_COMPLETED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], saved["weight"])

    monkeypatch.undo()
    evaluator.state.metrics = {"score": 0.95}
    evaluator.fire_event(Events.EPOCH_COMPLETED)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], network.weight)


def test_the_key_metric_file_records_the_epoch_it_holds_and_its_hash(tmp_path):
    """model.pt's epoch is the best epoch (2 of 3 here), recorded with the file's SHA-256 at each save."""
    import hashlib
    import json

    network = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path),
        save_dict={"model": network},
        save_key_metric=True,
        key_metric_filename="model.pt",
        record_file=str(tmp_path / "metrics.json"),
    )
    scores = {1: 0.2, 2: 0.9, 3: 0.5}
    engine = Engine(lambda engine, batch: None)
    engine.state.key_metric_name = "acc"

    @engine.on(Events.EPOCH_COMPLETED)
    def _score(engine):
        engine.state.metrics = {"acc": scores[engine.state.epoch]}
        with torch.no_grad():
            network.weight.fill_(float(engine.state.epoch))

    saver.attach(engine)
    engine.run([0], max_epochs=3)
    record = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    digest = hashlib.sha256((tmp_path / "model.pt").read_bytes()).hexdigest()
    assert record == {"file": "model.pt", "epoch": 2, "sha256": digest, "key_metric": "acc", "value": 0.9}
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].flatten().tolist() == [2.0, 2.0]


def test_no_record_without_record_file(tmp_path):
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": torch.nn.Linear(2, 1)}, file_prefix="last", save_interval=1
    )
    _trainer_with(saver, epochs=1)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]  # no metrics file
