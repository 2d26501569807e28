"""Step: the batch feature job: windowed user / item / user x attribute aggregates, daily snapshots, written as
Parquet partitioned by date where the Feast repo's file sources read them (data/features/), then published to
the shared copy the later steps pull (recsys.features.store.push_state; nothing to copy on the local stack)."""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step

from recsys.features.definitions import features_dir
from recsys.features.job import run_feature_job
from recsys.features.store import pull_state, push_state
from steps.locations import project_path
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
    repo_path = project_path(repo_path)
    pull_state(repo_path, which=("features",))  # keeps what others wrote there (push views' logged rows)
    summary = run_feature_job(interactions, items, features_dir(repo_path), spec or {}, engine, spark, as_of,
                              duckdb)
    push_state(repo_path, which=("features",))
    return summary
