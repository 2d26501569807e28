"""Step: `feast apply` of feature_repo/ for one environment (feature_store.yaml, or the Redis one)."""

from typing import Annotated, Any, Dict

from zenml import step
from zenml.logger import get_logger

from recsys.features.store import apply_repo, pull_state, push_state
from steps.locations import project_path
from steps.names import FEATURE_STORE

logger = get_logger(__name__)


@step(enable_cache=False)  # registers objects in the Feast registry: a side effect a cache hit would skip
def apply_feature_repo(feature_tables: Dict[str, Any], repo_path: str = "feature_repo",
                       fs_yaml: str = "feature_store.yaml") -> Annotated[Dict[str, Any], FEATURE_STORE]:
    """After the job wrote `feature_tables` (so the schema follows its spec); returns where the store is,
    which the train pipeline's ranker step and the service open."""
    repo = project_path(repo_path)
    pull_state(repo, fs_yaml)  # the job's tables (the schema reads their spec) and the registry so far
    views = apply_repo(repo, fs_yaml)
    push_state(repo, fs_yaml, which=("feast",))
    logger.info("feast apply (%s): %s", fs_yaml, views)
    return {"repo_path": repo_path, "fs_yaml": fs_yaml, "views": views,
            "features_dir": feature_tables["features_dir"], "last_snapshot": feature_tables["last_snapshot"]}
