"""Ignite handlers: metric reports, TensorBoard figures, deferred re-weighting."""
