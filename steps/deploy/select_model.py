"""Step: pin the model version the deploy pipeline ships (the first step: every later one uses this version,
even if the alias moves meanwhile).

`reference` is an MLflow alias (default `production`: what the last train or retrain promoted), a version
number, or a model URI (`models:/<name>@<alias>`, `models:/<name>/<version>`).
"""

from typing import Annotated, Any, Dict, Optional

from zenml import step
from zenml.logger import get_logger

from recsys.registry.mlflow_registry import resolve_reference, version_tags
from steps.context import mlflow_tracking_uri, resolve_model_name
from steps.names import DEPLOY_TARGET

logger = get_logger(__name__)


@step(enable_cache=False)  # an alias moves between runs
def select_model(reference: str = "production", model_name: Optional[str] = None,
                 tracking_uri: Optional[str] = None) -> Annotated[Dict[str, Any], DEPLOY_TARGET]:
    """`model_name` defaults to the pipeline's ZenML model name; `tracking_uri` to the stack's tracker."""
    name, uri = resolve_model_name(model_name), mlflow_tracking_uri(tracking_uri)
    version, run_id = resolve_reference(uri, name, reference)
    tags = version_tags(uri, name, version)
    target = {"name": name, "version": version, "run_id": run_id, "reference": str(reference),
              "bundle_version": tags.get("bundle_version"), "tracking_uri": uri}
    logger.info("deploying %s version %s (%s; bundle %s)", name, version, reference, target["bundle_version"])
    return target
