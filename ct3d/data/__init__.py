"""Data: datasets and splits, synthetic cohorts, and the input pipeline."""
