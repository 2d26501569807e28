"""Evaluation stage: score the recommender beside its baselines on test, then gate its promotion."""

from steps.evaluation.evaluate import evaluate
from steps.evaluation.quality_gate import quality_gate

__all__ = ["evaluate", "quality_gate"]
