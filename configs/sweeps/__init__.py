"""Sweep configs for `python -m experiments.sweep`: tasks x encodings x seeds."""
