"""Step: promote a recommender that passed the gate: bundle it, log it to MLflow, register, alias, stage.

The recommender registered is the refit one (steps/training/refit_recommender.py: it learnt from train +
valid + test), and the bundle records the data window it learnt from (`data_window` in config.json: where
the drift checks start). The MLflow run gets the run's parameters and metrics whether or
not the gate passed (with the evaluation table and the ranker's feature importance as CSV), so failed
attempts stay comparable; only a passing model gets a bundle
(`<bundles_dir>/<model name>/<version>`, shared as steps/locations.py says), a registered MLflow version
with `alias` and the ZenML `stage`.
"""

from datetime import datetime, timezone
from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.registry.bundle import publish_bundle, save_bundle
from recsys.registry.mlflow_registry import log_run, register_bundle, set_alias
from recsys.registry.promotion import promote
from recsys.serving.recommender import Recommender
from steps.context import current_model, mlflow_tracking_uri, resolve_model_name, run_configuration
from steps.locations import state_location
from steps.names import REGISTRATION

logger = get_logger(__name__)


@step(enable_cache=False)  # side effects: files, MLflow registry, ZenML stage
def register_model(recommender: Recommender, data_window: Dict[str, Any], gate_passed: bool,
                   evaluation_metrics: pd.DataFrame, candidate_recall: Dict[str, float],
                   feature_importance: pd.DataFrame,
                   model_name: Optional[str] = None, alias: str = "production", stage: Optional[str] = "production",
                   bundles_dir: str = "data/bundles", experiment: Optional[str] = None,
                   tracking_uri: Optional[str] = None) -> Annotated[Dict[str, Any], REGISTRATION]:
    """`model_name` (MLflow registered model and experiment, unless `experiment` is set) defaults to the
    pipeline's ZenML model name; `tracking_uri` to the stack's MLflow tracker. With `alias` "production"
    the version it replaces keeps the `previous` alias (the rollback target)."""
    name = resolve_model_name(model_name)
    metrics = {f"{model}/{metric}": value
               for model, row in evaluation_metrics.iterrows() for metric, value in row.items()}
    metrics.update(candidate_recall)
    config, uri = run_configuration(), mlflow_tracking_uri(tracking_uri)
    tags = {"zenml_pipeline": config["pipeline"], "zenml_run": config["run"], "gate_passed": gate_passed}
    tables = {"evaluation": evaluation_metrics, "feature_importance": feature_importance}
    if not gate_passed:
        run_id = log_run(uri, experiment or name, config, metrics, tags=tags, run_name=config["run"], tables=tables)
        logger.warning("quality gate failed: nothing registered; figures in MLflow run %s", run_id)
        return {"registered": False, "mlflow_run_id": run_id, "tracking_uri": uri}

    recommender.version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    config = {**config, "data_window": data_window}
    shared = state_location(bundles_dir).child(name, recommender.version)
    bundle = save_bundle(recommender, shared.local, metrics, config)
    publish_bundle(shared)  # where batch inference's fallback finds it, before anything points at it
    run_id = log_run(uri, experiment or name, config, metrics, artifacts_dir=bundle, tables=tables,
                     tags={**tags, "bundle_version": recommender.version}, run_name=config["run"])
    version = register_bundle(uri, run_id, name, None, tags={"bundle_version": recommender.version})
    if alias == "production":
        promote(uri, name, version)  # keeps the version it replaces as `previous`
    elif alias:
        set_alias(uri, name, alias, version)
    result = {"registered": True, "bundle": shared.shared, "bundle_version": recommender.version,
              "mlflow_model": name, "mlflow_version": version, "alias": alias, "mlflow_run_id": run_id,
              "tracking_uri": uri}
    zenml_model = current_model()
    if zenml_model is not None:
        zenml_model.log_metadata({"registration": result, "metrics": metrics})
        if stage:
            zenml_model.set_stage(stage, force=True)
    logger.info("registered %s version %s as %r, bundle %s", name, version, alias, bundle)
    return result
