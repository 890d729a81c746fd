"""Evaluation of an exported model: `python -m captioning.evaluate` (flags in __main__, measures in evaluation)."""
