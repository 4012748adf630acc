import logging

import pytest
from ignite.engine import Engine, Events

from monai_imbalance.handlers.epoch_handler import EpochHandler


class Counter(EpochHandler):
    def __init__(self, name=None):
        self._init_logger(name)
        self.calls = []

    def epoch_started(self, engine):
        self.calls.append("start")

    def iteration_completed(self, engine):
        self.calls.append(engine.state.output)

    def epoch_completed(self, engine):
        self.calls.append("end")


def test_attach_registers_each_method_once_and_uses_the_engine_logger():
    engine = Engine(lambda engine, batch: batch * 10)
    handler = Counter()
    handler.attach(engine)
    handler.attach(engine)  # a second attach is harmless
    engine.run([1, 2], max_epochs=1)
    assert handler.calls == ["start", 10, 20, "end"]
    assert handler.logger is engine.logger
    assert engine.has_event_handler(handler.epoch_completed, Events.EPOCH_COMPLETED)


def test_named_logger_is_kept_and_the_base_methods_must_be_overridden():
    handler = Counter(name="reports")
    handler.attach(Engine(lambda engine, batch: None))
    assert handler.logger is logging.getLogger("reports")
    with pytest.raises(NotImplementedError):
        EpochHandler().iteration_completed(None)
