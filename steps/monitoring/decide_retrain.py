"""Step: the retrain decision for the window just checked (recsys.monitoring.policy), with its reason.

Reads the earlier verdicts for the same production model version (ZenML artifacts) and the window end of
the last retrain (a tag on the MLflow registered model); the training steps after it run only when it
says so. The decision is also published to Prometheus.
"""

from typing import Annotated, Any, Dict, Optional

from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.monitoring import loop_metrics
from recsys.monitoring.policy import RetrainPolicy, decide
from recsys.monitoring.verdict import Decision, DriftVerdict
from recsys.registry.promotion import last_retrain
from steps.context import previous_verdicts
from steps.names import RETRAIN_DECISION

logger = get_logger(__name__)


@step(enable_cache=False)
def decide_retrain(drift_verdict: DriftVerdict, promoted_info: Dict[str, Any],
                   policy: Optional[Dict[str, Any]] = None,
                   metrics_file: Optional[str] = "data/monitoring/recsys_loop.prom",
                   pushgateway: Optional[str] = None) -> Annotated[Decision, RETRAIN_DECISION]:
    """`policy`: recsys.monitoring.policy.RetrainPolicy fields (configs/retrain.yaml)."""
    rules = RetrainPolicy.model_validate(policy or {})
    earlier = [v for v in previous_verdicts(promoted_info["name"])
               if v.model_version == drift_verdict.model_version and v.window_end < drift_verdict.window_end]
    decision = decide(drift_verdict, earlier, rules, last_retrain(promoted_info["tracking_uri"], promoted_info["name"]))
    (logger.warning if decision.retrain else logger.info)("retrain: %s (%s)", decision.retrain, decision.reason)
    log_metadata({"retrain": decision.retrain, "reason": decision.reason, "alert": decision.alert})
    loop_metrics.publish(promoted_info["name"], decision=decision, textfile=metrics_file, pushgateway=pushgateway)
    return decision
