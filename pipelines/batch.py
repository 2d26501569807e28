"""Batch inference pipeline: the promoted recommender writes top-K lists for every (or the listed) user,
never recommending what the known interactions say users already have."""

from typing import Any, Dict, Optional

from zenml import pipeline

from pipelines.data import data_pipeline
from steps.cache import CACHE_POLICY
from steps.inference import batch_predict, load_promoted_bundle


@pipeline(cache_policy=CACHE_POLICY)  # reuse a step only while recsys/ is unchanged
def batch_inference_pipeline(source: str = "synthetic", source_params: Optional[Dict[str, Any]] = None):
    """`source` / `source_params` name the known interactions (as in the training configs)."""
    recommender, _ = load_promoted_bundle()
    interactions, _, users = data_pipeline(source, source_params)
    batch_predict(recommender, interactions, users)
