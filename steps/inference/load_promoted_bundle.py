"""Step: load the recommender that the registry alias (e.g. "production") points at.

The bundle comes from MLflow (`name@alias`), downloaded once per version into `download_dir` (a local cache
of this process, under the project directory). When MLflow has no such model or alias, or cannot be reached,
and `fallback_bundles_dir` is set, the newest bundle of the model there (`<fallback_bundles_dir>/<model
name>/`, shared as steps/locations.py says) is used instead: bundles are only written for models that
passed the gate.
"""

from typing import Annotated, Optional

from zenml import step
from zenml.logger import get_logger

from recsys.registry.bundle import latest_shared_bundle, load_bundle
from recsys.registry.mlflow_registry import download_bundle
from recsys.serving.recommender import Recommender
from steps.context import mlflow_tracking_uri, resolve_model_name
from steps.locations import state_location
from steps.materializers import RecsysModelMaterializer
from steps.names import PROMOTED_RECOMMENDER

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=RecsysModelMaterializer)  # the alias may move between runs
def load_promoted_bundle(model_name: Optional[str] = None, alias: str = "production",
                         download_dir: str = "data/mlflow/downloads", fallback_bundles_dir: Optional[str] = None,
                         tracking_uri: Optional[str] = None) -> Annotated[Recommender, PROMOTED_RECOMMENDER]:
    """`model_name` defaults to the pipeline's ZenML model name; `tracking_uri` to the stack's tracker."""
    name = resolve_model_name(model_name)
    try:
        path = download_bundle(mlflow_tracking_uri(tracking_uri), name, alias,
                               str(state_location(download_dir).local))
    except Exception as error:  # unknown model/alias, unreachable server, no tracker in the stack
        if not fallback_bundles_dir:
            raise
        newest = latest_shared_bundle(state_location(fallback_bundles_dir).child(name))
        path = newest.pull()
        logger.warning("no %s@%s from MLflow (%s); using the newest bundle %s", name, alias, error, newest.shared)
    recommender, meta = load_bundle(path)
    logger.info("loaded %s version %s from %s (created %s)", name, meta["version"], path, meta["created_at"])
    return recommender
