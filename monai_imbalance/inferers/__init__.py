"""Inferers: Monte Carlo dropout around any MONAI inferer."""

from .mc_dropout import MCDropoutInferer

__all__ = ["MCDropoutInferer"]
