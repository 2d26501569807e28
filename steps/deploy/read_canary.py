"""Step: the canary's readout and the decision (recsys/deploy/canary.py): the service's experiment log
(impressions and feedback per variant) -> per-variant success rate, z-test -> promote, roll back or wait.

Only impressions served by the versions in play count: control by the `production` version, treatment by
the canary alias's version (their bundle versions, as the log records them). `log_dir` holds the service's
`experiments-*.jsonl` (RECSYS_LOG_DIR; shared as steps/locations.py says: on a cluster, a volume or bucket
the service pods write to).
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.deploy.canary import CanaryDecision, CanaryRule, CanarySettings, read_decision
from recsys.registry.mlflow_registry import resolve_alias, version_tags
from recsys.registry.promotion import PRODUCTION
from recsys.serving.readout import read_log
from steps.context import mlflow_tracking_uri, resolve_model_name
from steps.locations import state_location
from steps.names import CANARY, CANARY_DECISION

logger = get_logger(__name__)


@step(enable_cache=False)  # the log grows
def read_canary(canary: Optional[Dict[str, Any]] = None, rule: Optional[Dict[str, Any]] = None,
                log_dir: str = "data/serving/logs", model_name: Optional[str] = None,
                tracking_uri: Optional[str] = None) -> Tuple[
    Annotated[CanaryDecision, CANARY_DECISION],
    Annotated[Dict[str, Any], CANARY],
]:
    settings, rule = CanarySettings.model_validate(canary or {}), CanaryRule.model_validate(rule or {})
    name, uri = resolve_model_name(model_name), mlflow_tracking_uri(tracking_uri)
    versions = {"control": resolve_alias(uri, name, PRODUCTION)[0],
                "treatment": resolve_alias(uri, name, settings.alias)[0]}
    bundles = {variant: version_tags(uri, name, version).get("bundle_version") for variant, version in versions.items()}
    logs = sorted(state_location(log_dir).pull().glob("**/experiments-*.jsonl"))  # a directory per pod too
    log = read_log([str(p) for p in logs]) if logs else pd.DataFrame(columns=["type"])  # none yet: wait
    decision = read_decision(log, settings.experiment, bundles, rule)
    info = {"model": name, "tracking_uri": uri, "alias": settings.alias, "experiment": settings.experiment,
            "control_version": versions["control"], "treatment_version": versions["treatment"],
            "bundles": bundles, "logs": len(logs)}
    log_metadata({"canary_decision": {"action": decision.action, "reason": decision.reason, **decision.figures()}})
    logger.info("%s (control: version %s, treatment: version %s)", decision.summary(), versions["control"],
                versions["treatment"])
    return decision, info
