"""Baselines every direction's tables report beside the models (floors and probes)."""
