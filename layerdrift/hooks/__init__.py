"""Capture (and patching) on TransformerLens hook points: the only layer that knows TransformerLens."""
