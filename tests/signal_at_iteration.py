"""``python -m monai.bundle <args>``, sending its own process a signal at an exact training iteration (tests only).

Usage (from a bundle folder)::

    python tests/signal_at_iteration.py SIGTERM 2 3 run --config_file configs/train.yaml --key value ...

runs the bundle command as ``python -m monai.bundle`` does (``runpy``, ``sys.argv[0]`` the module's file) with one
handler added to every ``SupervisedTrainer``: at ``ITERATION_COMPLETED`` of iteration 3 of epoch 2 it sends the
signal to this process (``os.kill(os.getpid(), ...)``). Reading the child's log through a pipe and signalling
from the parent raced the run's end (block-buffered output, machine load); here the signal lands at that
iteration whatever the timing: SIGINT raises ``KeyboardInterrupt`` at the next bytecode of the main thread, and
SIGTERM / SIGKILL end the process before ``kill`` returns.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys


def _install(sig: signal.Signals, epoch: int, iteration: int) -> None:
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer

    original_run = SupervisedTrainer.run

    def run(self: SupervisedTrainer) -> None:
        def send(engine: SupervisedTrainer) -> None:
            in_epoch = (engine.state.iteration - 1) % engine.state.epoch_length + 1
            if engine.state.epoch == epoch and in_epoch == iteration:
                print(f"signal_at_iteration: {sig.name} at epoch {epoch}, iteration {iteration}", flush=True)
                os.kill(os.getpid(), sig)

        self.add_event_handler(Events.ITERATION_COMPLETED, send)
        original_run(self)

    SupervisedTrainer.run = run  # type: ignore[method-assign]


def main() -> None:
    name, epoch, iteration, *args = sys.argv[1:]
    _install(signal.Signals[name], int(epoch), int(iteration))
    sys.argv = [sys.argv[0], *args]  # runpy replaces argv[0] with monai/bundle/__main__.py
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
