"""Sub-pipeline shared by training and batch inference: load a dataset and validate it."""

from typing import Any, Dict, Optional

from zenml import pipeline

from steps.cache import CACHE_POLICY
from steps.data import load_data, validate_data


@pipeline(cache_policy=CACHE_POLICY)  # reuse a step only while recsys/ is unchanged
def data_pipeline(source: str = "synthetic", source_params: Optional[Dict[str, Any]] = None):
    """Returns the validated (interactions, items, users) artifacts."""
    raw_interactions, raw_items, raw_users = load_data(source=source, params=source_params)
    return validate_data(raw_interactions, raw_items, raw_users)
