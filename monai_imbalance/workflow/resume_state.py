"""What a per-epoch checkpoint must hold, beyond weights, optimizer and scheduler, for a resume to be exact.

A run resumed from epoch ``k`` must continue exactly as the uninterrupted run did after epoch ``k``. MONAI's
``CheckpointLoader`` restores the network, optimizer, scheduler and the trainer's epoch counter, but not:

- **the best metric so far.** The evaluator's ``state.best_metric`` / ``best_metric_epoch`` start again at
  ``-1`` and the key-metric ``CheckpointSaver`` forgets which score ``model.pt`` has, so the first validation
  after resuming is "a new best" and replaces a better ``model.pt`` (and ``metrics.json``) with a worse epoch;
- **the random states.** The global torch, NumPy and Python generators (dropout, the shuffling
  ``RandomSampler``, the seeds of DataLoader workers, which are drawn from torch's generator each time an
  epoch's iterator is created), and the ``np.random.RandomState`` of every MONAI randomizable transform
  used in the main process (``num_workers: 0``).

:class:`ResumeState` gathers these in ``state_dict()`` and puts them back in ``load_state_dict()``, the
protocol ``CheckpointSaver`` / ``CheckpointLoader`` use for every entry of their ``save_dict`` /
``load_dict``. Everything it stores is a tensor, number, string or plain container, so checkpoints stay
readable with ``torch.load(..., weights_only=True)``.

The class samplers are a function of ``(seed, epoch)`` and the trainer (through their ``batch_sampler``, attached
to it) sets their epoch at ``EPOCH_STARTED`` from its restored epoch counter, so they need nothing here.
DataLoader workers that persist across epochs (``persistent_workers: true``) keep transform random states that no
checkpoint can capture; an exact resume with ``num_workers > 0`` needs ``persistent_workers: false`` (the workers
are then seeded afresh from torch's restored generator every epoch).

In a bundle's ``train.yaml``::

    train:
      state:                      # the "last" checkpoint's save_dict / load_dict
        model: '@network'
        optimizer: '@optimizer'
        lr_scheduler: '@lr_scheduler'
        trainer: '@train#trainer'
        resume_state:
          _target_: monai_imbalance.workflow.ResumeState
          evaluator: '@validate#evaluator'
          transforms: ['@train#preprocessing']

In a distributed run only rank 0 writes checkpoints, so every rank resumes from rank 0's random states; the
ranks are seeded alike (``set_determinism(seed)``) and draw alike, so this is what each of them held.

The saver of the "last" checkpoint must be attached after every other ``EPOCH_COMPLETED`` handler that
draws random numbers (validation included), and the loader after every ``STARTED`` handler; the bundles
attach both last, in ``run``.
"""

from __future__ import annotations

import logging
import random
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from monai.handlers import CheckpointSaver
from monai.transforms import Randomizable

__all__ = ["ResumeState", "randomizable_objects"]

logger = logging.getLogger(__name__)

# leaves and objects whose attributes hold no transforms
_SKIPPED = (
    str,
    bytes,
    int,
    float,
    complex,
    type(None),
    np.ndarray,
    np.generic,
    torch.Tensor,
    torch.nn.Module,
    type,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
)


def randomizable_objects(*roots: object) -> list[Randomizable]:
    """Every MONAI ``Randomizable`` reachable from ``roots`` (attributes, lists, tuples, dicts), depth first.

    Nested ones are included (``RandAffined`` holds a ``RandAffine`` with its own generator); each object once,
    in a deterministic order (list order, then attribute definition order), so that two runs built from the same
    config list the same transforms at the same positions.
    """
    found: list[Randomizable] = []
    seen: set[int] = set()

    def walk(obj: object) -> None:
        if isinstance(obj, _SKIPPED) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        if isinstance(obj, dict):
            children: Iterator[object] = iter(obj.values())
        elif isinstance(obj, (list, tuple)):
            children = iter(obj)
        elif hasattr(obj, "__dict__"):
            children = (value for key, value in vars(obj).items() if not key.startswith("__"))
        else:
            return
        for child in children:
            walk(child)

    for root in roots:
        walk(root)
    return found


def _numpy_state(generator: np.random.RandomState | None = None) -> dict[str, Any]:
    """A legacy NumPy generator's state (the global one without ``generator``) as tensors and numbers."""
    name, key, pos, has_gauss, cached = (generator or np.random).get_state(legacy=True)
    return {
        "name": str(name),
        "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(state: dict[str, Any], generator: np.random.RandomState | None = None) -> None:
    key = state["key"].cpu().numpy().astype(np.uint32)
    (generator or np.random).set_state((state["name"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]))


class ResumeState:
    """Best-metric tracking and random states, saved in and restored from the per-epoch checkpoint.

    Args:
        evaluator: the validation ``Evaluator`` whose ``state.best_metric`` / ``best_metric_epoch`` decide
            which epoch is "best" (``model.pt``, ``metrics.json``).
        best_model_savers: the key-metric ``CheckpointSaver`` s (``save_key_metric=True``) whose lists of saved
            scores decide whether a new ``model.pt`` is written; by default those attached to ``evaluator``
            (none on the ranks > 0 of a distributed run, where they are disabled).
        transforms: objects holding the training transforms (e.g. the ``Compose``); the random state of every
            MONAI randomizable transform in them is restored (they draw in the main process with
            ``num_workers: 0``).
    """

    def __init__(
        self,
        *,
        evaluator: Any = None,
        best_model_savers: Sequence[CheckpointSaver] | None = None,
        transforms: Sequence[object] = (),
    ) -> None:
        for saver in best_model_savers or ():
            if getattr(saver, "_key_metric_checkpoint", None) is None:
                raise ValueError(f"best_model_savers must be CheckpointSavers with save_key_metric=True, got {saver!r}")
        self.evaluator = evaluator
        self._best_model_savers = None if best_model_savers is None else list(best_model_savers)
        self.transforms = list(transforms)

    @property
    def best_model_savers(self) -> list[CheckpointSaver]:
        """The key-metric savers: as given, or those attached to the evaluator (found when first needed)."""
        if self._best_model_savers is not None:
            return self._best_model_savers
        found: list[CheckpointSaver] = []
        for handlers in getattr(self.evaluator, "_event_handlers", {}).values():
            for handler, *_ in handlers:
                saver = getattr(handler, "__self__", None)
                is_key_metric_saver = getattr(saver, "_key_metric_checkpoint", None) is not None
                if isinstance(saver, CheckpointSaver) and is_key_metric_saver and saver not in found:
                    found.append(saver)
        return found

    def state_dict(self) -> dict[str, Any]:
        """The current best-metric tracking and random states (tensors, numbers, strings, lists and dicts)."""
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": random.getstate(),
            "transforms": [_numpy_state(t.R) for t in randomizable_objects(self.transforms)],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if self.evaluator is not None:
            state["best_metric"] = float(self.evaluator.state.best_metric)
            state["best_metric_epoch"] = int(self.evaluator.state.best_metric_epoch)
        state["best_model_saved"] = [
            [[float(priority), str(name)] for priority, name in saver._key_metric_checkpoint.state_dict()["_saved"]]
            for saver in self.best_model_savers
        ]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned (called by ``CheckpointLoader`` when the trainer starts)."""
        torch.set_rng_state(state["torch"].cpu())
        _set_numpy_state(state["numpy"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
        transforms = randomizable_objects(self.transforms)
        if len(transforms) == len(state["transforms"]):
            for transform, transform_state in zip(transforms, state["transforms"], strict=True):
                _set_numpy_state(transform_state, transform.R)
        else:
            logger.warning(
                f"the checkpoint holds the random states of {len(state['transforms'])} randomizable transforms, "
                f"this run has {len(transforms)}: the transforms changed, so augmentation cannot continue exactly"
            )
        if self.evaluator is not None and "best_metric" in state:
            self.evaluator.state.best_metric = state["best_metric"]
            self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]
        savers = self.best_model_savers
        if not savers:
            pass  # nothing tracks a best model here (e.g. a rank > 0 of a distributed run, where savers are disabled)
        elif len(savers) == len(state["best_model_saved"]):
            for saver, saved in zip(savers, state["best_model_saved"], strict=True):
                saver.load_state_dict({"_saved": [(priority, name) for priority, name in saved]})
        else:
            logger.warning(
                f"the checkpoint tracks the scores of {len(state['best_model_saved'])} best-model savers, this run "
                f"has {len(savers)}: the next validation may replace model.pt with a worse epoch"
            )
