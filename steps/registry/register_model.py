"""Step: promote a recommender that passed the gate: bundle it, log it to MLflow, register, alias, stage.

The recommender registered is the refit one (steps/training/refit_recommender.py: it learnt from train +
valid + test), and the bundle records the data window it learnt from (`data_window` in config.json: where
the drift checks start). The run's MLflow run (steps/tracking.py: opened by the first training step, with
the curves and figures) gets the run's parameters, the headline metrics and the evaluation table and
feature importance as CSV whether or not the gate passed, so failed attempts stay comparable; only a
passing model gets a bundle (`<bundles_dir>/<model name>/<version>`, shared as steps/locations.py says,
and the run's `bundle/` artifact), an MLflow model (pyfunc flavor with a signature, recsys.registry.pyfunc)
registered as a new version with `alias`, and the ZenML `stage`. Then the MLflow run is closed.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.registry.bundle import publish_bundle, save_bundle
from recsys.registry.mlflow_registry import BUNDLE_ARTIFACT_PATH, register_bundle, set_alias
from recsys.registry.promotion import promote
from recsys.serving.recommender import Recommender
from steps.context import current_model, mlflow_tracking_uri, resolve_model_name, run_configuration
from steps.locations import project_path, state_location
from steps.names import REGISTRATION
from steps.tracking import carry_over_cached, training_run

logger = get_logger(__name__)
BASELINE_METRICS = ("ndcg@10", "recall@10")  # per comparison model; the recommender logs every column


def headline_metrics(evaluation_metrics: pd.DataFrame, candidate_recall: Dict[str, float]) -> Dict[str, float]:
    """What the MLflow run charts: the recommender's metrics, the baselines' NDCG and recall @10, recall."""
    model, others = evaluation_metrics.index[0], evaluation_metrics.index[1:]
    metrics = {f"{model}/{metric}": float(value) for metric, value in evaluation_metrics.loc[model].items()}
    metrics.update({f"{other}/{metric}": float(evaluation_metrics.loc[other, metric]) for other in others
                    for metric in BASELINE_METRICS if metric in evaluation_metrics.columns})
    return {**metrics, **candidate_recall}


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
    from recsys.registry.pyfunc import log_model
    from recsys.registry.tracking import finish_run, log_directory, log_files, log_values

    name = resolve_model_name(model_name)
    metrics = headline_metrics(evaluation_metrics, candidate_recall)
    config, uri = run_configuration(), mlflow_tracking_uri(tracking_uri)
    tags = {"zenml_pipeline": config["pipeline"], "zenml_run": config["run"], "gate_passed": gate_passed}
    params = {**config["parameters"], **{step: _own(values, config["parameters"])
                                         for step, values in config["steps"].items()}}
    tables = {"evaluation.csv": evaluation_metrics.to_csv(), "feature_importance.csv": feature_importance.to_csv()}
    run = training_run(uri, experiment or name)
    log_values(uri, run.run_id, metrics, params, tags)
    log_files(uri, run.run_id, tables)
    carry_over_cached(run)  # curves and figures of steps this run took from the cache
    if not gate_passed:
        finish_run(uri, run.run_id)
        logger.warning("quality gate failed: nothing registered; figures in MLflow run %s", run.run_id)
        return {"registered": False, "mlflow_run_id": run.run_id, "tracking_uri": uri}

    recommender.version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    config = {**config, "data_window": data_window}
    shared = state_location(bundles_dir).child(name, recommender.version)
    bundle = save_bundle(recommender, shared.local, {**metrics, **_all(evaluation_metrics)}, config)
    publish_bundle(shared)  # where batch inference's fallback finds it, before anything points at it
    log_directory(uri, run.run_id, bundle, BUNDLE_ARTIFACT_PATH)  # what download_bundle reads
    requirements = Path(project_path("requirements.txt"))
    model_uri = log_model(uri, run.run_id, bundle, recommender.history.users[:2],
                          requirements if requirements.is_file() else None)
    version = register_bundle(uri, run.run_id, name, None, tags={"bundle_version": recommender.version},
                              model_uri=model_uri)
    if alias == "production":
        promote(uri, name, version)  # keeps the version it replaces as `previous`
    elif alias:
        set_alias(uri, name, alias, version)
    log_values(uri, run.run_id, tags={"bundle_version": recommender.version, "registered_version": version})
    finish_run(uri, run.run_id)
    result = {"registered": True, "bundle": shared.shared, "bundle_version": recommender.version,
              "mlflow_model": name, "mlflow_version": version, "alias": alias, "mlflow_run_id": run.run_id,
              "tracking_uri": uri}
    zenml_model = current_model()
    if zenml_model is not None:
        zenml_model.log_metadata({"registration": result, "metrics": metrics})
        if stage:
            zenml_model.set_stage(stage, force=True)
    logger.info("registered %s version %s as %r, bundle %s", name, version, alias, bundle)
    return result


def _own(values: Dict[str, Any], pipeline_parameters: Dict[str, Any]) -> Dict[str, Any]:
    """A step's parameters for MLflow: `params` dicts flattened one level, values the step got from the
    pipeline's parameters (e.g. load_data's source) left out: logged once, as the pipeline's."""
    inherited = list(pipeline_parameters.values())
    own = {k: v for k, v in values.items() if v not in inherited}
    return {**{k: v for k, v in own.items() if k != "params"}, **(own.get("params") or {})}


def _all(table: pd.DataFrame) -> Dict[str, float]:
    """Every model's every metric, for the bundle's metrics.json (what drift checks compare against)."""
    return {f"{model}/{metric}": float(value) for model, row in table.iterrows() for metric, value in row.items()}
