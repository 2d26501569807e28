"""Feature pipeline: data -> batch feature job (Spark or pandas) -> feast apply -> materialize.

`feature_store_pipeline` is the sub-graph the train pipeline reuses when its ranker reads store features."""

from typing import Any, Dict, Optional

from zenml import pipeline

from pipelines.data import data_pipeline
from steps.cache import CACHE_POLICY
from steps.features import apply_feature_repo, compute_features, materialize_features


@pipeline(cache_policy=CACHE_POLICY)
def feature_store_pipeline(interactions, items):
    """Tables from the validated interactions and items; returns the materialized store's description."""
    tables = compute_features(interactions, items)
    store = apply_feature_repo(tables)
    return materialize_features(store)


@pipeline(cache_policy=CACHE_POLICY)  # reuse a step only while recsys/ is unchanged
def features_pipeline(source: str = "synthetic", source_params: Optional[Dict[str, Any]] = None):
    """`source` / `source_params` choose the dataset (recsys.data.loader), as in the training configs."""
    interactions, items, _ = data_pipeline(source, source_params)
    feature_store_pipeline(interactions, items)
