"""Ignite handler that writes one CSV row of predictions per sample of an inference/evaluation run.

Columns, in this order:

- ``id``: the datalist's ``id_key`` entry of the sample (default ``"id"``), else the image file name
  from its MONAI metadata (``filename_or_obj``), else (single process only) the sample's position in
  the run;
- ``predicted_class``: the class name when ``class_names`` are given, else the class index
  (``argmax`` of the probabilities, or the decision rule: a binary ``decision_threshold`` on the class-1
  probability, or ``class_priors`` for prior-corrected decisions);
- ``prob_<class>``: one probability column per class;
- uncertainty columns when the evaluator runs through
  :class:`monai_imbalance.inferers.MCDropoutInferer`: ``entropy`` (predictive entropy),
  ``mutual_information`` (BALD) and ``variance_<class>`` (variance of the class probability over the
  MC passes), read from the inferer's ``last_output`` after every iteration. Another source plugs in
  through ``uncertainty_transform``;
- with a ``referral_rule`` (fitted on validation, :func:`monai_imbalance.transforms.read_referral_rule`):
  ``uncertainty``, the rule's score of the sample, and ``refer``, 1 when it exceeds the rule's threshold (the
  sample goes to a person) else 0. The log says how many were referred.

``pred`` must be class probabilities: softmax in the postprocessing (``Activationsd(softmax=True)``)
or the MC-dropout inferer's mean, and no ``AsDiscreted(argmax=True)`` on it.

The CSV is written when the run's epoch completes, atomically (temporary file, then rename). An
existing file is never replaced unless ``overwrite=True``; the check runs when the handler is created
(so a bundle fails before inference starts) and again before writing. Within one process the handler
replaces its own file on later runs. Multi-process: ids, probabilities and uncertainties of all
ranks are gathered and ``save_rank`` writes the file (a ``DistributedSampler`` that pads its shards
repeats a few samples; ``monai.data.DistributedSampler(even_divisible=False)`` avoids that).
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.data import MetaTensor, decollate_batch
from monai.handlers import from_engine
from monai.utils import (
    CommonKeys,
    IgniteInfo,
    ImageMetaKey,
    evenly_divisible_all_gather,
    min_version,
    optional_import,
    string_list_all_gather,
)

from monai_imbalance.handlers.epoch_handler import EpochHandler
from monai_imbalance.handlers.uncertainty_report import engine_uncertainty
from monai_imbalance.inferers.mc_dropout import MCDropoutInferer
from monai_imbalance.metrics.classification import (
    check_decision_rule,
    check_probabilities,
    predicted_classes,
    prediction_form,
)
from monai_imbalance.transforms.referral import ReferralRuleError, refer

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["MC_UNCERTAINTY_KEYS", "PredictionCSVWriter", "mc_dropout_uncertainty"]

#: uncertainty entries of ``MCDropoutInferer.last_output`` written by default
MC_UNCERTAINTY_KEYS = ("entropy", "mutual_information", "variance")


def mc_dropout_uncertainty(engine: Engine, keys: Sequence[str] = MC_UNCERTAINTY_KEYS) -> dict[str, torch.Tensor]:
    """Uncertainty of the current iteration from the engine's :class:`MCDropoutInferer`, else ``{}``.

    Returns:
        ``{key: tensor}`` as the inferer stores them: ``entropy`` and ``mutual_information`` ``(B, 1)``
        (softmax activation), ``variance`` ``(B, C)``. Entries the inferer did not compute (``None``,
        e.g. without activation) are left out.
    """
    inferer = getattr(engine, "inferer", None)
    if not isinstance(inferer, MCDropoutInferer) or inferer.last_output is None:
        return {}
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        value = inferer.last_output.get(key)
        if isinstance(value, torch.Tensor):
            out[key] = value
    return out


def _as_2d(name: str, value: Any, batch_size: int) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        value = torch.stack([torch.as_tensor(v) for v in value])
    t = torch.as_tensor(value).detach().float().cpu()
    if t.ndim == 1:
        t = t[:, None]
    t = t.reshape(t.shape[0], -1) if t.ndim > 2 else t
    if t.ndim != 2 or t.shape[0] != batch_size:
        raise ValueError(
            f"uncertainty {name!r} has shape {tuple(t.shape)}, expected ({batch_size},) or ({batch_size}, K) for this "
            "batch; does the uncertainty come from the inferer call of this iteration?"
        )
    return t


class PredictionCSVWriter(EpochHandler):
    """Write ``id, predicted_class, prob_<class>..., [uncertainty columns]`` for every sample of a run.

    Args:
        output_file: CSV path (its folder is created).
        class_names: names for ``predicted_class`` and the probability column headers (default indices).
        overwrite: replace an existing ``output_file``; ``False`` (default) raises ``FileExistsError``.
        id_key: datalist key holding the sample id.
        image_key: key of the image whose metadata file name is the fallback id.
        decision_threshold: optional binary decision threshold on the class-1 probability.
        class_priors: optional class priors for prior-corrected decisions (``argmax_c p_c / pi_c``).
        output_transform: extracts the class probabilities from ``engine.state.output``; default the
            ``pred`` entry.
        uncertainty_transform: ``engine -> {name: (B,) or (B, K) tensor}`` for the current iteration;
            default :func:`mc_dropout_uncertainty` (empty unless the engine's inferer is an
            ``MCDropoutInferer``). A ``(B, K)`` entry gives ``K`` columns ``<name>_<class>`` when
            ``K`` is the number of classes, else ``<name>_<k>``.
        float_format: format spec of probabilities and uncertainties.
        referral_rule: a stored referral rule (``{"score", "threshold", "mc_dropout", ...}``) or ``None``; the run
            must compute the score as the rule was fitted (with or without Monte Carlo dropout), else a
            :class:`~monai_imbalance.transforms.referral.ReferralRuleError` says so.
        save_rank: the rank that writes in a multi-process run.
        name: logger name (default the engine's logger).

    Raises:
        FileExistsError: ``output_file`` exists and ``overwrite`` is ``False``.
    """

    def __init__(
        self,
        output_file: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        overwrite: bool = False,
        id_key: str = "id",
        image_key: str = CommonKeys.IMAGE,
        decision_threshold: float | None = None,
        class_priors: Sequence[float] | None = None,
        output_transform: Callable | None = None,
        uncertainty_transform: Callable[[Engine], Mapping[str, Any]] | None = None,
        float_format: str = ".6g",
        referral_rule: Mapping[str, Any] | None = None,
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        self.output_file = Path(output_file)
        self.referral_rule = dict(referral_rule) if referral_rule else None
        if class_names is not None:
            if isinstance(class_names, str):
                raise TypeError("class_names must be a sequence of names, got a single string")
            class_names = [str(n) for n in class_names]
            if len(set(class_names)) != len(class_names):
                raise ValueError(f"class_names must be unique, got {class_names}")
        self.class_names = class_names
        self.overwrite = bool(overwrite)
        self.id_key = id_key
        self.image_key = image_key
        self.decision_threshold, self.class_priors = check_decision_rule(decision_threshold, class_priors)
        self.output_transform = output_transform if output_transform is not None else from_engine([CommonKeys.PRED])
        self.uncertainty_transform = (
            uncertainty_transform if uncertainty_transform is not None else mc_dropout_uncertainty
        )
        format(0.5, float_format)  # fail early on a bad format spec
        self.float_format = float_format
        self.save_rank = int(save_rank)
        self._init_logger(name)
        self._written = False
        self._check_not_overwriting()
        self._reset()

    def _check_not_overwriting(self) -> None:
        if self.output_file.exists() and not self.overwrite and not self._written:
            raise FileExistsError(
                f"{self.output_file} already exists; move it away, choose another file, or pass overwrite=True"
            )

    def _reset(self) -> None:
        self._ids: list[str] = []
        self._probs: list[torch.Tensor] = []
        self._uncertainty: dict[str, list[torch.Tensor]] = {}
        self._referral: list[torch.Tensor] = []
        self._position = 0

    def epoch_started(self, engine: Engine) -> None:
        self._reset()

    def _sample_id(self, item: Any) -> str | None:
        if not isinstance(item, Mapping):
            return None
        value = item.get(self.id_key)
        if value is None:
            image = item.get(self.image_key)
            if isinstance(image, MetaTensor):
                value = image.meta.get(ImageMetaKey.FILENAME_OR_OBJ)
            if value is None:
                value = item.get(f"{self.image_key}_meta_dict", {}).get(ImageMetaKey.FILENAME_OR_OBJ)
        if isinstance(value, torch.Tensor):
            value = value.item() if value.numel() == 1 else value.tolist()
        return None if value is None or value == "" else str(value)

    def _batch_ids(self, engine: Engine, batch_size: int) -> list[str]:
        batch = engine.state.batch
        items = batch if isinstance(batch, list) else decollate_batch(batch) if isinstance(batch, dict) else []
        ids = [self._sample_id(item) for item in items] if len(items) == batch_size else [None] * batch_size
        if any(i is None for i in ids):
            if idist.get_world_size() > 1:
                raise ValueError(
                    f"a sample has no {self.id_key!r} entry and no image file name; a multi-process run needs an id "
                    f"per sample: give the datalist an {self.id_key!r} key (or set id_key)"
                )
            ids = [i if i is not None else str(self._position + k) for k, i in enumerate(ids)]
        self._position += batch_size
        return ids  # type: ignore[return-value]

    def iteration_completed(self, engine: Engine) -> None:
        probs = check_probabilities(
            self.output_transform(engine.state.output), purpose="PredictionCSVWriter (its prob_* columns)"
        ).cpu()
        if self._probs and probs.shape[1] != self._probs[0].shape[1]:
            raise ValueError(f"the number of classes changed from {self._probs[0].shape[1]} to {probs.shape[1]}")
        if self.class_names is not None and len(self.class_names) != probs.shape[1]:
            raise ValueError(f"got {len(self.class_names)} class_names for {probs.shape[1]} predicted classes")
        batch_size = probs.shape[0]
        self._ids += self._batch_ids(engine, batch_size)
        self._probs.append(probs)
        uncertainty = {k: _as_2d(k, v, batch_size) for k, v in (self.uncertainty_transform(engine) or {}).items()}
        if self._probs[:-1] and set(uncertainty) != set(self._uncertainty):
            raise ValueError(
                f"uncertainty columns changed during the run: {sorted(self._uncertainty)} -> {sorted(uncertainty)}"
            )
        for k, v in uncertainty.items():
            self._uncertainty.setdefault(k, []).append(v)
        if self.referral_rule is not None:
            self._referral.append(self._rule_score(engine, probs))

    def _rule_score(self, engine: Engine, probs: torch.Tensor) -> torch.Tensor:
        """``(B,)`` float64: the referral rule's uncertainty score of this iteration's samples."""
        rule = self.referral_rule
        assert rule is not None
        mc = isinstance(getattr(engine, "inferer", None), MCDropoutInferer)
        fitted_mc = bool(rule.get("mc_dropout"))
        if fitted_mc != mc:
            raise ReferralRuleError(
                f"the referral rule (score {rule.get('score')!r}) was fitted with mc_dropout={str(fitted_mc).lower()}, "
                f"but this run has mc_dropout={str(mc).lower()}: run it with --mc_dropout {str(fitted_mc).lower()} "
                "to apply the rule"
            )
        scores = engine_uncertainty(engine, probs)
        if rule["score"] not in scores:
            raise ReferralRuleError(f"this run gives no uncertainty {rule['score']!r} (it gives {sorted(scores)})")
        return scores[rule["score"]].double()

    def _gather(self) -> tuple[list[str], torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        probs = torch.cat(self._probs) if self._probs else torch.zeros(0, 0)
        uncertainty = {k: torch.cat(v) for k, v in self._uncertainty.items()}
        referral = torch.cat(self._referral) if self._referral else None
        ids = self._ids
        if idist.get_world_size() > 1:
            ids = string_list_all_gather(ids)
            probs = evenly_divisible_all_gather(probs, concat=True)
            uncertainty = {k: evenly_divisible_all_gather(v, concat=True) for k, v in sorted(uncertainty.items())}
            if referral is not None:
                referral = evenly_divisible_all_gather(referral, concat=True)
        return ids, probs, uncertainty, referral

    def _header_and_rows(
        self,
        ids: list[str],
        probs: torch.Tensor,
        uncertainty: dict[str, torch.Tensor],
        referral: torch.Tensor | None = None,
    ) -> tuple[list[str], list[list[str]]]:
        num_classes = probs.shape[1]
        names = self.class_names or [str(c) for c in range(num_classes)]
        predicted = predicted_classes(probs, self.decision_threshold, self.class_priors).tolist()
        header = ["id", "predicted_class", *(f"prob_{n}" for n in names)]
        columns = [probs]
        for key in sorted(uncertainty, key=lambda k: (k not in MC_UNCERTAINTY_KEYS, k)):
            values = uncertainty[key]
            if values.shape[1] == 1:
                header.append(key)
            else:
                suffixes = names if values.shape[1] == num_classes else [str(k) for k in range(values.shape[1])]
                header += [f"{key}_{s}" for s in suffixes]
            columns.append(values)
        table = torch.cat(columns, dim=1).tolist()
        rows = [
            [sample_id, names[c], *(format(v, self.float_format) for v in values)]
            for sample_id, c, values in zip(ids, predicted, table, strict=True)
        ]
        if referral is not None and self.referral_rule is not None:
            header += ["uncertainty", "refer"]
            referred = refer(referral, self.referral_rule).tolist()
            for row, u, r in zip(rows, referral.tolist(), referred, strict=True):
                row += [repr(u), "1" if r else "0"]
        return header, rows

    def epoch_completed(self, engine: Engine) -> None:
        """Gather (all ranks) and write the CSV on ``save_rank``."""
        world_size = idist.get_world_size()
        if self.save_rank >= world_size:
            raise ValueError(f"save_rank={self.save_rank} but the run has only {world_size} processes")
        ids, probs, uncertainty, referral = self._gather()
        if idist.get_rank() != self.save_rank:
            return
        if len(ids) != probs.shape[0]:
            raise RuntimeError(f"gathered {len(ids)} ids for {probs.shape[0]} predictions")
        if probs.shape[0] == 0:
            self.logger.warning(f"no predictions in this run; {self.output_file} not written")
            return
        if prediction_form(probs) == "one-hot":
            warnings.warn(
                f"{type(self).__name__}: every row of y_pred is exactly one-hot, i.e. class decisions (after "
                "AsDiscreted), not probabilities: the prob_* columns of the CSV hold 0 and 1; read 'pred' before "
                "AsDiscreted for probabilities",
                stacklevel=2,
            )
        header, rows = self._header_and_rows(ids, probs, uncertainty, referral)
        self._check_not_overwriting()
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.output_file.parent, prefix=f".{self.output_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(header)
                writer.writerows(rows)
            os.replace(tmp, self.output_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._written = True
        self.logger.info(f"wrote {len(rows)} predictions to {self.output_file}")
        if referral is not None and self.referral_rule is not None:
            count = int(refer(referral, self.referral_rule).sum())
            self.logger.info(
                f"referred {count} of {len(rows)} ({count / len(rows):.1%}) to a person: {self.referral_rule['score']} "
                f"above {self.referral_rule['threshold']:.6g} (the rule fitted on validation referred "
                f"{self.referral_rule.get('referred_fraction', float('nan')):.1%})"
            )
