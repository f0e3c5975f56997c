"""Evaluation: labels (what happened after each decision) and the information-coefficient metrics
that score any forecast against them (docs/EVALUATION.md)."""
