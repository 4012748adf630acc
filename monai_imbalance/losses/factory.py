"""``get_loss``: one place that turns a loss name and a set of common keywords into a configured loss module.

Bundles switch the loss with a single override of ``name`` while always passing the same common keywords:
classification bundles ``get_loss(name, class_counts=[...], weight=<class weights or None>)`` with logits
``(B, C)`` and labels ``(B,)`` / ``(B, 1)``; segmentation bundles ``get_loss(name, sigmoid=True)`` (one output
channel, binary masks) or ``get_loss(name, softmax=True, to_onehot_y=True)`` (``C`` channels, label maps).
Each loss takes the common keywords that mean something for it and ignores the others:

============== ================================= ============ ======== ================ =====================
name           module                            class_counts weight   sigmoid/softmax  to_onehot_y,
                                                                                        include_background
============== ================================= ============ ======== ================ =====================
ce             ``CrossEntropyLoss``              ignored      used     used (1)         used
focal          ``FocalLoss``                     ignored      used     used (1)         used
ldam           ``LDAMLoss``                      required     used     softmax only (2) used
lmf            ``LMFLoss``                       required     used     softmax only (2) used
lmf_official   ``LMFLoss(weighting="official")`` required     used (5) softmax only (2) used
dice           MONAI ``DiceLoss`` (6)            ignored      ignored  used             used
jaccard        MONAI ``DiceLoss(jaccard=True)``  ignored      ignored  used             used
tversky        MONAI ``TverskyLoss`` (3)(6)      ignored      ignored  used             used
focal_tversky  ``FocalTverskyLoss``              ignored      ignored  used             used
combo          ``ComboLoss``                     ignored      used     used             used
all            ``AdaptiveLogarithmicLoss`` over  ignored      ignored  used (by Dice)   used (by Dice)
               MONAI ``DiceLoss`` (4)
============== ================================= ============ ======== ================ =====================

(1) the cross-entropy family always takes logits: ``sigmoid=True`` selects binary / multi-label (BCE-style),
otherwise the softmax is implied (``softmax=True`` is accepted, ``softmax=False`` without ``sigmoid`` is an error).
(2) ``sigmoid=True`` is an error. (3) defaults ``alpha=0.3`` (false positives, MONAI convention), ``beta=0.7``
(false negatives): the Tversky setting of Salehi et al. used in the ALL paper, equal to the paper-convention
``FocalTverskyLoss(alpha=0.7, beta=0.3)`` without the focal exponent. (4) ``omega``, ``epsilon``, ``delta`` and
``form`` (``"smooth"``, the default, or ``"wing"``) go to the wrapper, ``inner_dice="authors"`` sets the Dice loss
of the ALL authors' code (``batch=True, smooth_nr=smooth_dr=1``; default ``"monai"``: MONAI's ``DiceLoss``
defaults), every other keyword (``reduction`` included) goes to the Dice loss, and ALL is applied to what the Dice
loss returns. (5) the official LMF setting (the LDAM margins as class weights of both terms, see :mod:`.lmf`); a
``weight`` multiplies the margins. (6) MONAI's class with MONAI's values; targets are checked (whole class indices
for ``to_onehot_y=True``, else masks in ``[0, 1]``) and an empty batch gives zero.

Activation switches must agree: ``sigmoid=True`` with ``softmax=True``, with ``use_softmax=True`` (focal) or with
``other_act`` is refused, naming both (a one-line error in a bundle run), and so is a softmax over a one-channel
output when the loss is called (it is 1 everywhere: a constant loss with zero gradient).

Every loss built here refuses non-integral or out-of-range class labels and overlap targets outside ``[0, 1]``
(``ValueError``), and gives an empty batch (``B = 0``) a zero loss with a zero gradient.

"ignored" means the keyword is dropped (a non-``None`` ``weight`` that is dropped raises a ``UserWarning``).
A common keyword left at ``None`` is not passed, so the module's own default applies. Every other keyword goes
to the loss's constructor (e.g. ``gamma``, ``alpha``, ``max_m``, ``s``, ``reduction``, ``ignore_index``,
``smooth_nr``, ``batch``); a keyword the constructor does not know raises a ``ValueError`` naming the accepted
ones.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

from monai.losses import DiceLoss
from torch.nn.modules.loss import _Loss

from monai_imbalance.errors import check_choice
from monai_imbalance.losses._checked_monai import CheckedDiceLoss, CheckedTverskyLoss
from monai_imbalance.losses._inputs import ClassVector, LossSettingError
from monai_imbalance.losses.adaptive_log import AdaptiveLogarithmicLoss
from monai_imbalance.losses.combo import ComboLoss
from monai_imbalance.losses.cross_entropy import CrossEntropyLoss
from monai_imbalance.losses.focal import FocalLoss
from monai_imbalance.losses.focal_tversky import FocalTverskyLoss
from monai_imbalance.losses.ldam import LDAMLoss
from monai_imbalance.losses.lmf import LMFLoss

__all__ = ["LOSS_NAMES", "get_loss"]

LOSS_NAMES = (
    "ce",
    "focal",
    "ldam",
    "lmf",
    "lmf_official",
    "dice",
    "jaccard",
    "tversky",
    "focal_tversky",
    "combo",
    "all",
)
_WEIGHTED = frozenset({"ce", "focal", "ldam", "lmf", "lmf_official", "combo"})
_ALL_KEYWORDS = frozenset({"omega", "epsilon", "delta", "form"})
# the Dice loss of the ALL authors' code: pooled over the batch, smooth 1 (their binary setting has one channel)
_AUTHORS_DICE = {"batch": True, "smooth_nr": 1.0, "smooth_dr": 1.0}


def _accepted(factory: Callable[..., Any]) -> set[str]:
    return {
        name
        for name, p in inspect.signature(factory).parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def _build(name: str, factory: Callable[..., Any], fixed: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``factory(**fixed, **kwargs)`` with a clear error for unknown or clashing keywords."""
    accepted = _accepted(factory)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise LossSettingError(
            f"get_loss({name!r}): unknown keyword(s) {unknown}; {factory.__name__} accepts "
            f"{sorted(accepted - set(fixed))} besides the common keywords class_counts, weight, sigmoid, softmax, "
            "to_onehot_y, include_background."
        )
    clash = sorted(set(kwargs) & set(fixed))
    if clash:
        raise LossSettingError(f"get_loss({name!r}): keyword(s) {clash} are set by the loss name or a common keyword.")
    return factory(**fixed, **kwargs)


def _check_activation_flags(key: str, sigmoid: bool | None, softmax: bool | None, kwargs: dict[str, Any]) -> None:
    """Refuse activation switches that contradict each other, naming both (one line for a bundle run).

    The switches are the common ``sigmoid`` / ``softmax``, MONAI's ``use_softmax`` (``FocalLoss``) and ``other_act``
    (the Dice family). A bundle passes its output's activation as a common keyword (``sigmoid=True`` for a
    one-channel output); a loss-specific keyword that says otherwise (``loss_kwargs={use_softmax: true}``) used to
    be dropped without a word, and a softmax over one channel gives a constant loss with zero gradient.
    """
    said: list[tuple[str, str]] = []  # (how the flag was written, the activation it means)
    if sigmoid:
        said.append(("sigmoid=True", "sigmoid"))
    if softmax:
        said.append(("softmax=True", "softmax"))
    if kwargs.get("use_softmax") is not None:
        use_softmax = bool(kwargs["use_softmax"])
        said.append((f"use_softmax={use_softmax}", "softmax" if use_softmax else "sigmoid"))
    if kwargs.get("other_act") is not None:
        said.append(("other_act", "other_act"))
    for i, (flag, meaning) in enumerate(said):
        for other_flag, other_meaning in said[i + 1 :]:
            if meaning != other_meaning:
                raise LossSettingError(
                    f"get_loss({key!r}): {flag} and {other_flag} contradict each other; give one activation "
                    "(a bundle sets sigmoid=True for a one-channel output: drop the other from loss_kwargs)."
                )


def get_loss(
    name: str,
    *,
    class_counts: ClassVector | None = None,
    weight: ClassVector | None = None,
    sigmoid: bool | None = None,
    softmax: bool | None = None,
    to_onehot_y: bool | None = None,
    include_background: bool | None = None,
    **kwargs: Any,
) -> _Loss:
    """Build the loss called ``name`` (one of :data:`LOSS_NAMES`), see the module docstring for the table.

    Args:
        name: one of :data:`LOSS_NAMES` (case-insensitive): ``ce``, ``focal``, ``ldam``, ``lmf``, ``lmf_official``,
            ``dice``, ``jaccard``, ``tversky``, ``focal_tversky``, ``combo`` or ``all``.
        class_counts: training samples per class, ordered by class index (required by ``ldam``, ``lmf`` and
            ``lmf_official``).
        weight: class weights ``(C,)`` (used by ``ce``, ``focal``, ``ldam``, ``lmf``, ``lmf_official``, ``combo``).
        sigmoid: binary / multi-label output with a per-channel sigmoid.
        softmax: multi-class output with a softmax over the channels.
        to_onehot_y: the target is a label map (``None``: our losses infer it; MONAI's default ``False``).
        include_background: include channel / class 0.
        kwargs: loss-specific arguments passed to the constructor.

    Returns:
        A ``torch.nn.modules.loss._Loss`` module called as ``loss(input, target)``.

    Raises:
        LossSettingError: (a ``UserError`` and ``ValueError``) unknown keyword, missing ``class_counts``, or
            contradictory activation switches (``sigmoid``, ``softmax``, ``use_softmax``, ``other_act``), named both.
        UnknownChoiceError: unknown name.

    Example:
        >>> get_loss("lmf", class_counts=[900, 90, 10], weight=None)
        LMFLoss(classes=3, alpha=1.5, beta=1.0, gamma=1.5, max_m=0.5, s=30.0, weighting='standard', reduction='mean')
        >>> get_loss("all", softmax=True, to_onehot_y=True, delta=0.1)  # doctest: +ELLIPSIS
        AdaptiveLogarithmicLoss(...)
    """
    key = str(name).strip().lower()
    check_choice(key, LOSS_NAMES, "loss name")
    if kwargs.get("use_softmax", 0) is None:
        del kwargs["use_softmax"]  # not given: the package's own focal loss
    _check_activation_flags(key, sigmoid, softmax, kwargs)
    if weight is not None and key not in _WEIGHTED:
        warnings.warn(
            f"get_loss({key!r}): class weights are not used by this loss (only by {sorted(_WEIGHTED)}); ignored.",
            stacklevel=2,
        )
    given = {"to_onehot_y": to_onehot_y, "include_background": include_background}
    shape_kw = {k: v for k, v in given.items() if v is not None}
    act_kw = {k: v for k, v in {"sigmoid": sigmoid, "softmax": softmax}.items() if v is not None}

    if key in ("ce", "focal", "ldam", "lmf", "lmf_official"):
        if softmax is False and not sigmoid:
            raise LossSettingError(
                f"get_loss({key!r}) takes logits: pass sigmoid=True or softmax=True (or neither), not softmax=False."
            )
        fixed: dict[str, Any] = {"weight": weight, **shape_kw}
        if key in ("ldam", "lmf", "lmf_official"):
            if sigmoid:
                raise LossSettingError(
                    f"get_loss({key!r}): the margin losses are softmax losses; sigmoid=True is invalid."
                )
            if class_counts is None:
                raise LossSettingError(f"get_loss({key!r}) needs class_counts (training samples per class).")
            fixed["cls_num_list"] = class_counts
            if key == "lmf_official":
                fixed["weighting"] = "official"
            return _build(key, LDAMLoss if key == "ldam" else LMFLoss, fixed, kwargs)
        if not (key == "focal" and "use_softmax" in kwargs):  # use_softmax: MONAI's semantics (checked to agree)
            fixed["sigmoid"] = bool(sigmoid)
        return _build(key, CrossEntropyLoss if key == "ce" else FocalLoss, fixed, kwargs)
    if key == "combo":
        return _build(key, ComboLoss, {"weight": weight, **act_kw, **shape_kw}, kwargs)
    if key == "focal_tversky":
        return _build(key, FocalTverskyLoss, {**act_kw, **shape_kw}, kwargs)
    if key == "tversky":
        return _build(key, CheckedTverskyLoss, {**act_kw, **shape_kw}, {"alpha": 0.3, "beta": 0.7, **kwargs})
    if key in ("dice", "jaccard"):
        return _build(key, CheckedDiceLoss, {**act_kw, **shape_kw, "jaccard": key == "jaccard"}, kwargs)
    # "all": ALL over MONAI's Dice loss
    all_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in _ALL_KEYWORDS}
    inner_dice = kwargs.pop("inner_dice", "monai")
    if inner_dice not in ("monai", "authors"):
        raise LossSettingError(
            f"get_loss('all'): inner_dice must be 'monai' (MONAI's DiceLoss defaults: per image, smooth 1e-5) or "
            f"'authors' (the ALL authors' Dice: pooled over the batch, smooth 1), got {inner_dice!r}."
        )
    fixed = {**act_kw, **shape_kw, **(_AUTHORS_DICE if inner_dice == "authors" else {})}
    dice = _build(key, DiceLoss, fixed, kwargs)
    return AdaptiveLogarithmicLoss(dice, reduction="none", **all_kw)
