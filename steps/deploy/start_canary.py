"""Step: put the deployed version on the running service as the canary: the MLflow alias `canary` (by
config) points at it, and the service's A/B treatment (RECSYS_TREATMENT_MODEL=models:/<name>@canary, a
share of users by stable hash) hot-swaps to it. Off unless `canary.enabled`; never for the version already
in production. The canary pipeline (pipelines/canary.py) later reads the experiment and concludes it."""

from datetime import datetime, timezone
from typing import Annotated, Any, Dict, Optional

from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.deploy.canary import CanarySettings, start
from recsys.registry.mlflow_registry import resolve_alias, set_version_tags
from recsys.registry.promotion import PRODUCTION
from steps.names import CANARY

logger = get_logger(__name__)


@step(enable_cache=False)
def start_canary(deployment: Dict[str, Any],
                 canary: Optional[Dict[str, Any]] = None) -> Annotated[Dict[str, Any], CANARY]:
    settings = CanarySettings.model_validate(canary or {})
    name, version, uri = deployment["name"], str(deployment["version"]), deployment["tracking_uri"]
    if not settings.enabled:
        return {"started": False, "summary": "no canary (canary.enabled is off in the deploy config)"}
    production = resolve_alias(uri, name, PRODUCTION)[0]
    if production == version:
        logger.warning("no canary: %s version %s is the production version already", name, version)
        return {"started": False, "summary": f"no canary: version {version} is in production already"}
    replaced = start(uri, name, version, settings.alias)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    set_version_tags(uri, name, version, {"canary_started_at": started_at, "canary_share": settings.share,
                                          "canary_experiment": settings.experiment})
    result = {"started": True, "model": name, "version": version, "alias": settings.alias, "replaced": replaced,
              "production_version": production, "share": settings.share, "experiment": settings.experiment,
              "started_at": started_at, "summary": f"canary: {name}@{settings.alias} -> version {version} for "
                                                   f"{settings.share:.0%} of users (production: version {production})"}
    log_metadata({"canary": result})
    logger.info("canary: %s@%s -> version %s (was %s) for %.0f%% of users; production stays version %s; conclude "
                "it with: python run.py --pipeline canary", name, settings.alias, version, replaced,
                100 * settings.share, production)
    return result
