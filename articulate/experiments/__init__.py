"""Experiment plans (the papers' tables) and the benchmark suite, built on the LightningCLI configs."""
