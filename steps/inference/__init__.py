"""Inference stage: load the promoted recommender, write top-K lists for many users."""

from steps.inference.batch_predict import batch_predict
from steps.inference.load_promoted_bundle import load_promoted_bundle

__all__ = ["load_promoted_bundle", "batch_predict"]
