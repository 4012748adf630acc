"""Datalists, samplers for class imbalance and the repeat-acquisition simulation."""
