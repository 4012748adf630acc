"""Networks (FocusNet) and helpers that build MONAI networks with dropout."""
