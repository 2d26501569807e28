"""Step: load the daily views' latest rows into the online store (what `feast materialize` does)."""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.features.store import materialize, open_store, pull_state, push_state
from steps.locations import project_path
from steps.names import FEATURE_MATERIALIZATION

logger = get_logger(__name__)


@step(enable_cache=False)  # writes the online store
def materialize_features(feature_store: Dict[str, Any], end: Optional[str] = None,
                         ) -> Annotated[Dict[str, Any], FEATURE_MATERIALIZATION]:
    """Up to `end` (default: the job's last snapshot, the data's "now"; "now" for the wall clock)."""
    end_ts = pd.Timestamp.now(tz="UTC") if end == "now" else pd.Timestamp(end or feature_store["last_snapshot"])
    end_ts = end_ts.tz_localize("UTC") if end_ts.tz is None else end_ts
    repo = project_path(feature_store["repo_path"])
    pull_state(repo, feature_store["fs_yaml"])
    store = open_store(repo, feature_store["fs_yaml"])
    result = materialize(store, end_ts.to_pydatetime())
    push_state(repo, feature_store["fs_yaml"], which=("feast",))  # the online rows and the registry's intervals
    logger.info("materialized %s (%s .. %s) into the %s online store", ", ".join(result["views"]),
                result["start"][:10], result["end"][:10], store.config.online_store.type)
    return {**feature_store, "materialized": result}
