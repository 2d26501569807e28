"""Feature stage: the batch feature job (Spark or pandas), `feast apply`, materialization to the online store."""

from steps.features.apply_feature_repo import apply_feature_repo
from steps.features.compute_features import compute_features
from steps.features.materialize_features import materialize_features

__all__ = ["compute_features", "apply_feature_repo", "materialize_features"]
