"""Evaluation data for a repeatability report: true repeat images from the datalist, or simulated ones.

The repeatability report (:func:`monai_imbalance.metrics.repeatability_report`) compares the scores of
several images of one *unit*: one patient at one visit and, for paired organs, one side (a knee is
patient + side). :class:`RepeatEvaluationDataset` builds the evaluation set of a bundle and decides
where the repeats come from (``repeats``):

- ``"datalist"``: the datalist's own images. Items with the same ``patient_id`` AND ``visit_id`` AND the
  same values of ``unit_keys`` (e.g. ``("side",)`` for knees, ``()`` for breast density, where the
  views of one visit are repeats of the breast density) form one unit; units with more than one image
  are the true repeats. Items without a patient or visit id are units of their own (the report counts
  them as skipped).
- ``"simulate"``: every item is taken ``num_repeats`` times through
  :class:`~monai_imbalance.data.RepeatAcquisitions` (seeded, mildly perturbed copies; each source image
  is its own unit, its patient id is kept so that the bootstrap resamples a patient's images together).
  The LoA then measures the model's sensitivity to those perturbations, not a test-retest repeatability.
- ``"auto"`` (default): ``"datalist"`` when at least one unit has more than one image, else ``"simulate"``.
- ``"none"``: the datalist as it is, without repeatability ids.

Every item of the dataset carries ``patient_key`` and ``unit_key`` (default ``"repeat_unit"``) as
strings (except with ``"none"``), so a
:class:`~monai_imbalance.handlers.RepeatabilityHandler` ``(patient_key="patient_id",
visit_key="repeat_unit")`` groups the images correctly in either mode. :attr:`RepeatEvaluationDataset.info`
is a JSON-ready description of the choice (source, units, simulation parameters) for the report.

Bundle use (``evaluate.yaml``)::

    dataset:
      _target_: monai_imbalance.data.RepeatEvaluationDataset
      datalist: $@datalists['test']
      transform: '@preprocessing'          # load + deterministic pre-processing (channel-first tensors)
      post_transform: '@finalise'          # after the simulated perturbation (e.g. EnsureTyped)
      repeats: auto
      unit_keys: [side]
      simulation: {num_repeats: 2, strength: 1.0, seed: 0}
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai.data import Dataset
from monai.transforms import Compose
from monai.utils import ensure_tuple
from torch.utils.data import Dataset as TorchDataset

from monai_imbalance.data.repeats import RepeatAcquisitions

__all__ = ["REPEAT_MODES", "REPEAT_UNIT_KEY", "RepeatEvaluationDataset", "repeat_units"]

#: values of ``RepeatEvaluationDataset(repeats=...)``
REPEAT_MODES: tuple[str, ...] = ("auto", "datalist", "simulate", "none")

#: item key of the repeat unit (visit and unit keys) that the evaluation items carry
REPEAT_UNIT_KEY = "repeat_unit"

#: perturbation strengths of :class:`RepeatAcquisitions` that ``strength`` multiplies
_SCALED = ("max_rotation_deg", "max_translation", "max_zoom", "intensity_scale", "noise_std")


def _simulation_defaults() -> dict[str, Any]:
    """The perturbation keywords of :class:`RepeatAcquisitions` and their defaults."""
    skip = {"self", "data", "keys", "mask_keys", "transform", "patient_key", "visit_key"}
    parameters = inspect.signature(RepeatAcquisitions.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name not in skip}


def _present(value: Any) -> bool:
    return value is not None and str(value) != ""


def repeat_units(
    datalist: Sequence[Mapping[str, Any]],
    patient_key: str = "patient_id",
    visit_key: str = "visit_id",
    unit_keys: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """The ``(patient id, unit id)`` of every item: the unit id joins the visit and ``unit_keys`` values by ``/``.

    An item without a patient or a visit id is a unit of its own: ``("item:<i>", "item:<i>")`` without a
    patient id, ``(patient, "item:<i>")`` without a visit id (``i`` its position). A missing ``unit_keys``
    value counts as empty.

    Example: ``{"patient_id": "9003126", "visit_id": "v00", "side": "L"}`` with ``unit_keys=("side",)`` ->
    ``("9003126", "v00/L")``.
    """
    units = []
    for index, item in enumerate(datalist):
        if not isinstance(item, Mapping):
            raise TypeError(f"datalist item {index} is a {type(item).__name__}, expected a dict")
        own = f"item:{index}"
        patient = item.get(patient_key)
        if not _present(patient):
            units.append((own, own))
            continue
        visit = item.get(visit_key)
        if not _present(visit):
            units.append((str(patient), own))
            continue
        parts = [str(visit)] + [str(item.get(key, "") if _present(item.get(key)) else "") for key in unit_keys]
        units.append((str(patient), "/".join(parts)))
    return units


class _LastItemCache(TorchDataset):
    """Remembers the last item read: the ``num_repeats`` consecutive copies of one image load it once."""

    def __init__(self, data: TorchDataset) -> None:
        self.data = data
        self._index: int | None = None
        self._item: Any = None

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if index != self._index:
            self._item, self._index = self.data[index], index
        return dict(self._item) if isinstance(self._item, Mapping) else self._item


class RepeatEvaluationDataset(TorchDataset):
    """The evaluation set of a repeatability study, with true or simulated repeats (see the module docstring).

    Args:
        datalist: the evaluation items (dicts with ``image`` and ``label``; a path or an array in ``image``).
        transform: loading and deterministic pre-processing, giving channel-first tensors (a transform or a
            sequence of them). Simulated repeats are perturbed after it.
        post_transform: applied last (after the perturbation), e.g. ``EnsureTyped``; ``None`` for nothing.
        repeats: ``"auto"``, ``"datalist"``, ``"simulate"`` or ``"none"``.
        patient_key: item key of the patient id (the bootstrap cluster).
        visit_key: item key of the visit id.
        unit_keys: further item keys that must agree for two images to be repeats (``("side",)`` for knees).
        unit_key: the key written into every item: the unit id the repeatability handler groups by.
        simulation: :class:`RepeatAcquisitions` keywords for ``"simulate"`` (``num_repeats``, ``seed``,
            ``max_rotation_deg``, ``max_translation``, ``max_zoom``, ``intensity_scale``, ``gamma_range``,
            ``noise_std``) plus ``strength``: a factor on every perturbation (rotation, translation, zoom,
            intensity scale and noise multiplied; the gamma range's distance from 1 multiplied), default 1.

    Attributes:
        source: ``"datalist"``, ``"simulated"`` or ``"none"``: what was used.
        info: JSON-ready description: ``source``, ``n_images`` and, per source, ``unit`` (the keys that
            define a unit), ``n_units_with_repeats``, ``n_images_in_repeat_units``, or ``num_repeats``,
            ``n_source_images``, ``strength``, ``perturbation`` (the effective :class:`RepeatAcquisitions`
            parameters) and a ``note``.

    Raises:
        ValueError: an unknown ``repeats`` mode or simulation keyword, a bad strength, or
            ``repeats="datalist"`` on a datalist without any unit of two or more images.
    """

    def __init__(
        self,
        datalist: Sequence[Mapping[str, Any]],
        transform: Callable | Sequence[Callable],
        post_transform: Callable | Sequence[Callable] | None = None,
        repeats: str = "auto",
        patient_key: str = "patient_id",
        visit_key: str = "visit_id",
        unit_keys: str | Sequence[str] = (),
        unit_key: str = REPEAT_UNIT_KEY,
        simulation: Mapping[str, Any] | None = None,
    ) -> None:
        mode = str(repeats).strip().lower()
        if mode not in REPEAT_MODES:
            raise ValueError(f"repeats must be one of {REPEAT_MODES}, got {repeats!r}")
        items = list(datalist)
        if not items:
            raise ValueError("the evaluation datalist is empty")
        keys = tuple(str(k) for k in ensure_tuple(unit_keys))
        pre = _as_transform(transform)
        post = None if post_transform is None else _as_transform(post_transform)
        settings = self._simulation_settings(simulation)  # checked in every mode: a typo fails early

        units = repeat_units(items, patient_key, visit_key, keys)
        sizes = Counter(units)
        repeated = {unit for unit, n in sizes.items() if n > 1}
        if mode == "datalist" and not repeated:
            raise ValueError(
                f"repeats='datalist' but no two items share {patient_key!r}, {visit_key!r}"
                + "".join(f", {k!r}" for k in keys)
                + f" ({len(items)} items): give repeat images the same patient and visit ids, or use "
                "repeats='simulate'"
            )
        if mode == "auto":
            mode = "datalist" if repeated else "simulate"

        self.unit_key = unit_key
        self.patient_key = patient_key
        if mode == "none":
            self.source = "none"
            self.data: TorchDataset = Dataset(items, _chain(pre, post))
            self.info: dict[str, Any] = {"source": "none", "n_images": len(items)}
        elif mode == "datalist":
            self.source = "datalist"
            tagged = [
                {**item, patient_key: patient, unit_key: unit}
                for item, (patient, unit) in zip(items, units, strict=True)
            ]
            self.data = Dataset(tagged, _chain(pre, post))
            self.info = {
                "source": "datalist",
                "unit": [patient_key, visit_key, *keys],
                "n_images": len(items),
                "n_units_with_repeats": len(repeated),
                "n_images_in_repeat_units": sum(sizes[u] for u in repeated),
            }
        else:
            self.source = "simulated"
            # each source image is its own unit: RepeatAcquisitions writes its index when unit_key is absent
            sources = [{k: v for k, v in item.items() if k != unit_key} for item in items]
            self.data = RepeatAcquisitions(
                _LastItemCache(Dataset(sources, pre)),
                transform=post,
                patient_key=patient_key,
                visit_key=unit_key,
                **settings["parameters"],
            )
            self.info = {
                "source": "simulated",
                "n_images": len(self.data),
                "n_source_images": len(items),
                "num_repeats": settings["parameters"]["num_repeats"],
                "strength": settings["strength"],
                "perturbation": {k: v for k, v in settings["parameters"].items() if k != "num_repeats"},
                "note": "simulated perturbations of each image (RepeatAcquisitions), not test-retest acquisitions; "
                "LoA values are not comparable with those of real repeat images",
            }

    @staticmethod
    def _simulation_settings(simulation: Mapping[str, Any] | None) -> dict[str, Any]:
        defaults = _simulation_defaults()
        given = dict(simulation or {})
        strength = given.pop("strength", 1.0)
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(f"unknown simulation keyword(s) {unknown}; accepted: {sorted(defaults)} and 'strength'")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength >= 0:
            raise ValueError(f"simulation strength must be a number >= 0, got {strength!r}")
        parameters = {**defaults, **given}
        for key in _SCALED:
            parameters[key] = float(parameters[key]) * float(strength)
        low, high = (float(g) for g in ensure_tuple(parameters["gamma_range"]))
        parameters["gamma_range"] = (1.0 + strength * (low - 1.0), 1.0 + strength * (high - 1.0))
        if parameters["gamma_range"][0] <= 0:
            raise ValueError(f"simulation strength {strength} makes the gamma range {parameters['gamma_range']} <= 0")
        return {"strength": float(strength), "parameters": parameters}

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.data[index]


def _as_transform(transform: Callable | Sequence[Callable]) -> Callable:
    return transform if callable(transform) else Compose(list(transform))


def _chain(pre: Callable, post: Callable | None) -> Callable:
    return pre if post is None else Compose([pre, post])
