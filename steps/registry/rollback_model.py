"""Step: put the previous production version back (or a given one): MLflow alias and ZenML model stage.

`production` moves to the `previous` alias's version (or `to_version`), and the version it leaves becomes
`previous`, so running it twice undoes it. The ZenML model version registered with that MLflow version
(its `registration` metadata) gets the production stage back. The service follows the alias.
"""

from typing import Annotated, Any, Dict, Optional

from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.registry.promotion import rollback
from steps.context import mlflow_tracking_uri, registered_model_version, resolve_model_name
from steps.names import ROLLBACK

logger = get_logger(__name__)


@step(enable_cache=False)
def rollback_model(to_version: Optional[str] = None, model_name: Optional[str] = None,
                   tracking_uri: Optional[str] = None) -> Annotated[Dict[str, Any], ROLLBACK]:
    """`to_version`: the MLflow version to serve (default: the `previous` alias)."""
    name, uri = resolve_model_name(model_name), mlflow_tracking_uri(tracking_uri)
    left, target = rollback(uri, name, to_version)
    stage = None
    version = registered_model_version(name, target)
    if version is not None:
        version.set_stage("production", force=True)
        stage = version.name
    result = {"model": name, "from_version": left, "to_version": target, "zenml_model_version": stage}
    logger.warning("rolled %s back from version %s to %s (ZenML model version %s is production)", name, left,
                   target, stage)
    log_metadata(result)
    return result
