"""Step: load the recommender that the registry alias (e.g. "production") points at.

The bundle comes from MLflow (`name@alias`), downloaded once per version into `download_dir` (a local cache
of this process, under the project directory). When MLflow has no such model or alias, or cannot be reached,
and `fallback_bundles_dir` is set, the newest bundle of the model there (`<fallback_bundles_dir>/<model
name>/`, shared as steps/locations.py says) is used instead: bundles are only written for models that
passed the gate.
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.registry.bundle import latest_shared_bundle, load_bundle
from recsys.registry.mlflow_registry import download_bundle
from recsys.serving.recommender import Recommender
from recsys.training import STAGES
from steps.context import mlflow_tracking_uri, resolve_model_name
from steps.locations import state_location
from steps.materializers import RecsysModelMaterializer
from steps.names import PROMOTED_INFO, PROMOTED_RECOMMENDER

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers={PROMOTED_RECOMMENDER: RecsysModelMaterializer})  # alias moves
def load_promoted_bundle(model_name: Optional[str] = None, alias: str = "production",
                         download_dir: str = "data/mlflow/downloads", fallback_bundles_dir: Optional[str] = None,
                         tracking_uri: Optional[str] = None) -> Tuple[
    Annotated[Recommender, PROMOTED_RECOMMENDER],
    Annotated[Dict[str, Any], PROMOTED_INFO],
]:
    """`model_name` defaults to the pipeline's ZenML model name; `tracking_uri` to the stack's tracker.
    The info: name, alias, MLflow version (None from the fallback), bundle version, its figures at
    registration and the data window it learnt from (what the drift checks compare against)."""
    name = resolve_model_name(model_name)
    uri, mlflow_version = mlflow_tracking_uri(tracking_uri), None
    try:
        path = download_bundle(uri, name, alias, str(state_location(download_dir).local))
        mlflow_version = path.parent.name  # <download_dir>/<name>/<version>/bundle
    except Exception as error:  # unknown model/alias, unreachable server, no tracker in the stack
        if not fallback_bundles_dir:
            raise
        newest = latest_shared_bundle(state_location(fallback_bundles_dir).child(name))
        path = newest.pull()
        logger.warning("no %s@%s from MLflow (%s); using the newest bundle %s", name, alias, error, newest.shared)
    recommender, meta = load_bundle(path)
    logger.info("loaded %s version %s from %s (created %s)", name, meta["version"], path, meta["created_at"])
    config = meta.get("config") or {}
    info = {"name": name, "alias": alias, "mlflow_version": mlflow_version, "bundle_version": meta["version"],
            "tracking_uri": uri, "metrics": meta.get("metrics", {}), "data_window": data_window(recommender, meta),
            "recipe": recipe(config), "split": config.get("split") or (config.get("steps") or {}).get("split_data", {})}
    return recommender, info


def recipe(config: dict) -> Dict[str, Any]:
    """The training steps' params the bundle was made with (a challenger is trained the same way): a
    retrained bundle records them as `recipe`, a trained one as its run's step parameters."""
    if config.get("recipe") is not None:
        return config["recipe"]
    steps = config.get("steps") or {}
    return {name: (steps.get(name) or {}).get("params") or {} for name in STAGES if name in steps}


def data_window(recommender: Recommender, meta: dict) -> Dict[str, Any]:
    """The bundle's recorded data window; for bundles from before it was recorded, the span of the
    recommender's history."""
    recorded = (meta.get("config") or {}).get("data_window")
    if recorded:
        return recorded
    frame = recommender.history.to_frame()
    start, end = (pd.Timestamp(frame.t.min(), unit="s", tz="UTC"), pd.Timestamp(frame.t.max(), unit="s", tz="UTC"))
    return {"start": start.isoformat(), "end": end.isoformat(), "events": int(len(frame))}
