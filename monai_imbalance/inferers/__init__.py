"""Inferers: Monte Carlo dropout around any MONAI inferer."""
