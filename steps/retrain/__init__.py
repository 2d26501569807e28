"""Retrain stage: the challenger, champion vs challenger on the held-out window, promotion."""

from steps.retrain.compare_models import compare_models
from steps.retrain.promote_challenger import promote_challenger
from steps.retrain.train_challenger import train_challenger

__all__ = ["train_challenger", "compare_models", "promote_challenger"]
