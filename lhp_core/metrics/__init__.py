"""Measures computed along the training-step axis, one module per family."""
