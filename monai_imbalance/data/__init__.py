"""Datalists, samplers for class imbalance and the repeat-acquisition simulation."""

from .class_weights import as_class_indices, class_counts, class_weights
from .samplers import BatchBalancedSampler, OverSampler, UnderSampler, get_sampler

__all__ = [
    "BatchBalancedSampler",
    "OverSampler",
    "UnderSampler",
    "as_class_indices",
    "class_counts",
    "class_weights",
    "get_sampler",
]
