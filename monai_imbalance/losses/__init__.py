"""Loss functions for class imbalance (focal, LDAM, LMF, ALL, Focal Tversky, Combo) and get_loss."""
