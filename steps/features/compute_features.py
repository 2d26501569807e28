"""Step: the batch feature job: windowed user / item / user x attribute aggregates, daily snapshots, written as
Parquet partitioned by date where the Feast repo's file sources read them (data/features/)."""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step

from recsys.features.definitions import features_dir
from recsys.features.job import run_feature_job
from steps.names import FEATURE_TABLES


# Not cached: its output is the tables on disk, which a cache hit would not bring back if they were deleted.
@step(enable_cache=False)
def compute_features(interactions: pd.DataFrame, items: pd.DataFrame, engine: str = "duckdb",
                     spark: Optional[Dict[str, Any]] = None, spec: Optional[Dict[str, Any]] = None,
                     as_of: Optional[str] = None, repo_path: str = "feature_repo",
                     duckdb: Optional[Dict[str, Any]] = None) -> Annotated[Dict[str, Any], FEATURE_TABLES]:
    """`engine`: duckdb | spark; `duckdb`: threads, memory_limit, events_per_bucket, temp_directory; `spark`:
    master, app_name, conf; `spec`: recsys.features.definitions.FeatureSpec fields; `as_of`: the job's "now"
    (None: the end of the last event's day). Returns the job's summary."""
    return run_feature_job(interactions, items, features_dir(repo_path), spec or {}, engine, spark, as_of, duckdb)
