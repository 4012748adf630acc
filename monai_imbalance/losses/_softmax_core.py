"""The softmax cross-entropy family (cross-entropy, focal, LDAM margins, LMF) behind one function (private).

Every softmax loss of this package is a weighted sum of *terms* of the form

    z_c  = s * (x_c - Delta_y [c == y])           (scale s, class margin Delta: LDAM)
    l    = log softmax(z)_y                        (log p_t, unweighted)
    term = -(1 - exp(l))^gamma * l                 (focal; gamma = 0 gives cross-entropy)

per element (sample or pixel) with true class ``y``: ``p_t`` comes from the unweighted ``log_softmax`` (never
``log(p + eps)`` and never ``exp(-weighted CE)``), and the focal factor is per element. An element weight
``w = weight[y]`` (times the focal ``alpha[y]``) multiplies the element; ``'mean'`` divides the sum by
``sum weight[y]`` over the counted elements, exactly as ``F.cross_entropy`` does, so ``gamma = 0`` reproduces
(weighted) cross-entropy. Dense (one-hot or probability) targets follow ``F.cross_entropy``'s probability-target
rule: ``term = -sum_c w_c t_c (1 - p_c)^gamma log p_c`` and ``'mean'`` divides by the number of elements, with or
without class weights (so, as in PyTorch, a weighted one-hot target and the same class indices differ in the
normaliser). An empty batch gives a zero loss with a zero gradient. ``1 - p_t`` is clamped to the smallest
normal float: the gradient stays finite for ``0 < gamma < 1`` when ``p_t -> 1``.

Two engines, chosen per call, for class-index targets:

- a single cross-entropy term without per-class ``alpha`` (CE, LDAM, focal with ``gamma = 0``): plain autograd
  on ``F.cross_entropy`` (double backward works);
- everything else (focal, LMF): a fused ``autograd.Function`` that forms the gradient in closed form during the
  forward pass,

      dterm/dz = dterm/dl * (onehot(y) - softmax(z)),   dterm/dl = (1-p)^g (g (l / (1-p) - l) - 1),

  (finite as ``p -> 1`` because ``l / (1 - p) -> -1``), so the backward pass is one product. It supports first
  derivatives only (a second backward raises).

Classification logits ``(B, C)`` are processed as a ``(1, C, B)`` view so that the softmax runs along a
non-innermost axis: on CPU that is several times faster than PyTorch's ``(B, C)`` path for small ``C``, and it is
equally valid on GPU. Dense (one-hot or soft) targets use ``log_softmax`` with autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from monai_imbalance.losses._inputs import (
    as_class_indices,
    check_unit_interval,
    empty_batch_loss,
    reduce_loss,
    split_target,
)


@dataclass(frozen=True)
class SoftmaxTerm:
    """One term ``coef * focal_gamma(log_softmax(scale * (x - margins[y] e_y)))`` of a softmax loss.

    Attributes:
        coef: multiplier of the term.
        scale: logit scale ``s`` (LDAM uses 30).
        gamma: focal exponent (0 gives cross-entropy).
        margins: per-class margins ``Delta`` of shape ``(C,)`` subtracted from the true-class logit, or ``None``.
    """

    coef: float = 1.0
    scale: float = 1.0
    gamma: float = 0.0
    margins: torch.Tensor | None = None


def _cross_entropy_term(
    input: torch.Tensor,
    labels: torch.Tensor,
    safe_labels: torch.Tensor,
    term: SoftmaxTerm,
    weight: torch.Tensor | None,
    ignore_index: int | None,
    reduction: str,
) -> torch.Tensor:
    """``coef * F.cross_entropy(z, labels, weight, ignore_index, reduction)`` (autograd).

    Args:
        input: logits ``(B, C)`` or ``(B, C, *S)``.
        labels: class indices ``(B,)`` / ``(B, *S)``, possibly holding ``ignore_index``.
        safe_labels: ``labels`` with ignored entries replaced by 0 (for indexing the margins).
        term: a term with ``gamma == 0``.
        weight: class weights ``(C,)`` or ``None``.
        ignore_index: the ignored label value, or ``None``.
        reduction: ``"none"`` (labels' shape), ``"sum"`` or ``"mean"``.
    """
    z = input * term.scale if term.scale != 1.0 else input
    if term.margins is not None:
        shift = term.margins.to(input)[safe_labels].mul_(-term.scale)
        z = z.scatter_add(1, safe_labels.unsqueeze(1), shift.unsqueeze(1))
    ignore = -100 if ignore_index is None else ignore_index
    if input.ndim == 2:  # (1, C, B) view: see the module docstring
        z, labels = z.t().unsqueeze(0), labels.unsqueeze(0)
    value = F.cross_entropy(z, labels, weight=weight, reduction=reduction, ignore_index=ignore)
    if reduction == "none" and input.ndim == 2:
        value = value.squeeze(0)
    return value * term.coef if term.coef != 1.0 else value


def _term_log_probs(logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, term: SoftmaxTerm) -> torch.Tensor:
    """``log_softmax`` along axis 1 of the (scaled, margin-shifted) logits ``(N, C, M)``."""
    z = logits * term.scale if term.scale != 1.0 else logits
    if term.margins is not None:
        shift = term.margins.to(logits)[labels].mul_(-term.scale)
        z = z.scatter_add(1, index, shift.unsqueeze(1))
    return torch.log_softmax(z, dim=1)


class _FusedSoftmaxTerms(torch.autograd.Function):
    """Forward pass and closed-form gradient of a sum of :class:`SoftmaxTerm` for class-index targets.

    Shapes: ``input (B, C)`` with ``labels (B,)`` (classification, processed as ``(1, C, B)``), or
    ``input (N, C, M)`` with ``labels (N, M)``; ``labels`` int64 in ``[0, C)``; ``element_weight`` like ``labels``
    (zero for ignored elements) or ``None``; ``normaliser`` a scalar tensor, or ``None`` for the element count.
    Output: like ``labels`` for ``reduction='none'``, else a scalar.

    When the input needs a gradient, the forward pass also forms ``G``, the gradient of the output for a unit
    upstream gradient (weighted and normalised), and the backward pass is one product with ``grad_output``. ``G``
    takes the place of the ``log_softmax`` output that ``F.cross_entropy`` keeps: the memory stays the same.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        input: torch.Tensor,
        labels: torch.Tensor,
        element_weight: torch.Tensor | None,
        normaliser: torch.Tensor | None,
        terms: tuple[SoftmaxTerm, ...],
        reduction: str,
    ) -> torch.Tensor:
        need_grad = ctx.needs_input_grad[0]
        transposed = input.ndim == 2
        if transposed:
            logits, labels = input.t().unsqueeze(0), labels.unsqueeze(0)
            element_weight = element_weight.unsqueeze(0) if element_weight is not None else None
        else:
            logits = input
        tiny = torch.finfo(logits.dtype).tiny
        index = labels.unsqueeze(1)
        mean = reduction == "mean"
        # d(output)/d(term of an element) = element_scale * unit (weight / normaliser for 'mean')
        unit = 1.0 / max(float(labels.numel()), 1.0) if mean and normaliser is None else 1.0
        element_scale = element_weight
        if need_grad and mean and normaliser is not None:
            inverse = normaliser.reciprocal()
            element_scale = inverse if element_scale is None else element_scale * inverse

        minus_one = logits.new_full((1, 1, 1), -1.0).expand(index.shape) if need_grad else None
        total: torch.Tensor | None = None  # sum over terms of coef * (1-p)^g * l
        grad: torch.Tensor | None = None  # sum over terms of ncoeff * (softmax - onehot)
        for term in terms:
            logp = _term_log_probs(logits, labels, index, term)
            logp_t = logp.gather(1, index).squeeze(1)
            factor = term.coef * term.scale * unit
            ncoeff: torch.Tensor | float = factor  # d(output)/dz = ncoeff * (softmax - onehot)
            if term.gamma == 0.0:
                value = logp_t
            else:
                one_minus_p = torch.expm1(logp_t).neg_().clamp_min_(tiny)
                focal = one_minus_p.pow(term.gamma)
                value = focal.mul(logp_t)
                if need_grad:
                    # -dterm/dl = (1-p)^g (1 - g (l / (1-p) - l))
                    ratio = torch.div(logp_t, one_minus_p).sub_(logp_t)
                    ncoeff = torch.addcmul(focal * factor, focal, ratio, value=-term.gamma * factor)
            if total is None:
                total = value if term.coef == 1.0 else value.mul_(term.coef)
            else:
                total = total.add_(value, alpha=term.coef)
            if need_grad:
                if element_scale is not None:
                    ncoeff = element_scale * ncoeff
                term_grad = torch.exp(logp).scatter_add_(1, index, minus_one)
                term_grad.mul_(ncoeff if isinstance(ncoeff, float) else ncoeff.unsqueeze(1))
                grad = term_grad if grad is None else grad.add_(term_grad)
        assert total is not None
        ctx.transposed = transposed
        ctx.unreduced = reduction == "none"
        ctx.grad = grad

        if reduction == "none":
            out = total.neg() if element_weight is None else total.mul_(element_weight).neg_()
            return out.squeeze(0) if transposed else out
        summed = total.sum() if element_weight is None else total.mul_(element_weight).sum()
        if mean and normaliser is not None:
            return summed.neg_().div_(normaliser)
        return summed.mul_(-unit)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        grad = ctx.grad
        if ctx.unreduced:
            grad_output = grad_output.unsqueeze(0) if ctx.transposed else grad_output
            grad = grad * grad_output.unsqueeze(1)
        else:
            grad = grad * grad_output
        return (grad.squeeze(0).t() if ctx.transposed else grad), None, None, None, None, None


def _dense_softmax_terms(
    logits: torch.Tensor,
    dense: torch.Tensor,
    terms: Sequence[SoftmaxTerm],
    class_num: torch.Tensor | None,
    reduction: str,
) -> torch.Tensor:
    """Softmax terms for one-hot or soft targets (plain autograd), output ``(B, *S)`` or a scalar.

    ``term = -sum_c num_c t_c (1 - p_c)^gamma log p_c``; 'mean' divides by the number of elements ``B * S``
    (``F.cross_entropy`` with probability targets).
    """
    tiny = torch.finfo(logits.dtype).tiny
    target = dense.to(dtype=logits.dtype)
    view = (1, -1) + (1,) * (logits.ndim - 2)
    total: torch.Tensor | None = None
    for term in terms:
        if term.margins is not None:
            raise ValueError("margin terms need class-index (or one-hot) targets")
        logp = torch.log_softmax(logits * term.scale if term.scale != 1.0 else logits, dim=1)
        per_class = -logp
        if term.gamma != 0.0:
            per_class = per_class * torch.expm1(logp).neg().clamp_min(tiny).pow(term.gamma)
        value = per_class * target
        if term.coef != 1.0:
            value = value * term.coef
        total = value if total is None else total + value
    assert total is not None
    if class_num is not None:
        total = total * class_num.to(total).view(view)
    return reduce_loss(total.sum(dim=1), reduction)


def _one_hot_to_indices(dense: torch.Tensor) -> torch.Tensor:
    """Indices of a one-hot target along axis 1; ``ValueError`` when the target is not one-hot."""
    is_binary = bool(((dense == 0) | (dense == 1)).all())
    if not is_binary or not bool((dense.sum(1) == 1).all()):
        raise ValueError(
            "margin losses (LDAM, LMF) need class indices or a one-hot target; soft or empty target rows are "
            "not supported."
        )
    return dense.argmax(1)


def softmax_family_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    terms: Sequence[SoftmaxTerm],
    *,
    weight: torch.Tensor | None = None,
    alpha: torch.Tensor | float | None = None,
    include_background: bool = True,
    to_onehot_y: bool | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """A weighted sum of softmax terms with MONAI/PyTorch target conventions.

    Args:
        input: float logits ``(B, C[, *S])`` with ``C >= 2`` (already checked and promoted to float32).
        target: class indices ``(B[, 1], *S)`` or dense ``(B, C, *S)`` (see ``_inputs.split_target``).
        terms: the terms to sum.
        weight: class weights ``(C,)``: multiply the elements of class ``y`` and enter the 'mean' normaliser.
        alpha: focal balancing factor: a scalar (multiplies every element) or ``(C,)`` per true class; not part of
            the normaliser.
        include_background: ``False`` gives class 0 a zero weight (its elements neither count nor contribute).
        to_onehot_y: ``None`` infers the target form, ``True``/``False`` demand labels/dense.
        ignore_index: label value excluded from the loss and from the normaliser (class-index targets only).
        reduction: ``"none"`` -> ``(B, *S)`` (``(B,)`` for classification), ``"mean"``, ``"sum"``.
    """
    channels = input.shape[1]
    labels, dense = split_target(input, target, to_onehot_y)
    if dense is not None:
        check_unit_interval(dense, None, "target")
        if any(t.margins is not None for t in terms):
            labels, dense = _one_hot_to_indices(dense), None

    alpha_vec = alpha if isinstance(alpha, torch.Tensor) else None
    alpha_scalar = float(alpha) if alpha is not None and alpha_vec is None else 1.0
    class_den = weight
    if not include_background:
        keep = torch.ones(channels, dtype=input.dtype, device=input.device)
        keep[0] = 0.0
        class_den = keep if class_den is None else class_den.to(keep) * keep
    class_num = class_den
    if alpha_vec is not None:
        class_num = alpha_vec if class_num is None else class_num.to(alpha_vec) * alpha_vec

    if dense is not None:
        empty = empty_batch_loss(input, reduction)
        if empty is not None:
            return empty
        loss = _dense_softmax_terms(input, dense, terms, class_num, reduction)
        return loss * alpha_scalar if alpha_scalar != 1.0 else loss

    labels = as_class_indices(labels, channels, ignore_index)
    empty = empty_batch_loss(input, reduction)
    if empty is not None:
        return empty
    valid: torch.Tensor | None = None
    safe_labels = labels
    if ignore_index is not None:
        valid = labels != ignore_index
        safe_labels = labels.masked_fill(~valid, 0)

    def summed_weights(element_weight: torch.Tensor | None) -> torch.Tensor | None:
        """The 'mean' normaliser: summed weights of the counted elements (None: the element count)."""
        if class_den is not None:
            den = element_weight if class_den is class_num else class_den.to(input)[safe_labels]
            den = den * valid if valid is not None else den
            return den.sum().clamp_min(torch.finfo(input.dtype).tiny)  # all ignored: a zero loss
        if valid is not None:
            return valid.sum().clamp_min(1).to(input.dtype)
        return None

    if len(terms) == 1 and terms[0].gamma == 0.0 and alpha_vec is None:
        # PyTorch's fused cross-entropy. Its 'mean' is 0/0 = nan when no element counts (all ignored, or only
        # zero-weight classes): then take the sum and divide by the clamped normaliser instead
        weight_vec = class_den.to(input) if class_den is not None else None
        may_be_empty = valid is not None or (weight_vec is not None and not bool(weight_vec.min() > 0))
        if reduction == "mean" and may_be_empty:
            element_weight = class_num.to(input)[safe_labels] if class_num is not None else None
            loss = _cross_entropy_term(input, labels, safe_labels, terms[0], weight_vec, ignore_index, "sum")
            loss = loss / summed_weights(element_weight)
        else:
            loss = _cross_entropy_term(input, labels, safe_labels, terms[0], weight_vec, ignore_index, reduction)
    else:
        element_weight = class_num.to(input)[safe_labels] if class_num is not None else None
        normaliser = summed_weights(element_weight) if reduction == "mean" else None
        if valid is not None:
            element_weight = valid.to(input.dtype) if element_weight is None else element_weight * valid
        if input.ndim > 3 or (input.ndim == 3 and not input.is_contiguous()):
            flat = (input.shape[0], -1)
            input = input.reshape(input.shape[0], channels, -1)
            safe_flat = safe_labels.reshape(flat)
            weight_flat = element_weight.reshape(flat) if element_weight is not None else None
        else:
            safe_flat, weight_flat = safe_labels, element_weight
        loss = _FusedSoftmaxTerms.apply(input, safe_flat, weight_flat, normaliser, tuple(terms), reduction)
        if reduction == "none":
            loss = loss.reshape(labels.shape)
    return loss * alpha_scalar if alpha_scalar != 1.0 else loss
