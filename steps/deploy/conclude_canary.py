"""Step: act on the canary decision. Promote: `production` moves to the canary version (recsys.registry.
promotion.promote keeps `previous`), its ZenML model version gets the production stage, and the registered
model's `production_bento` tag names its recorded bento. Roll back: the canary alias points at the production
version again (the treatment group is served production). Wait: nothing. The decision, its rule and
numbers are tags of the canary's MLflow version (`canary_*`) and metadata of this run and model version."""

from typing import Annotated, Any, Dict

from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.deploy.canary import CanaryDecision, conclude
from recsys.registry.mlflow_registry import set_registered_model_tag, version_tags
from steps.context import registered_model_version
from steps.names import CANARY_RESULT

logger = get_logger(__name__)


@step(enable_cache=False)
def conclude_canary(canary_decision: CanaryDecision, canary: Dict[str, Any],
                    stage: str = "production") -> Annotated[Dict[str, Any], CANARY_RESULT]:
    name, uri = canary["model"], canary["tracking_uri"]
    if canary["treatment_version"] != conclude_target(canary):
        raise ValueError("the canary alias moved since the readout; run the canary pipeline again")
    result = conclude(uri, name, canary_decision, canary["alias"])
    numbers = {"action": canary_decision.action, "reason": canary_decision.reason, **canary_decision.figures(),
               "rule": canary_decision.rule.model_dump()}
    version = registered_model_version(name, canary["treatment_version"])
    if version is not None and canary_decision.action != "wait":
        log_metadata({"canary": numbers}, model_version_id=version.id)
    if canary_decision.action == "promote":
        bento = version_tags(uri, name, canary["treatment_version"]).get("bento_tag")
        if bento:
            set_registered_model_tag(uri, name, "production_bento", bento)
        if version is not None and stage:
            version.set_stage(stage, force=True)
        result.update({"bento_tag": bento, "zenml_model_version": version.name if version is not None else None})
    result["summary"] = {"promote": f"promoted {name} version {result['canary_version']} to production",
                         "rollback": f"rolled back: {name}@{canary['alias']} points at production version "
                                     f"{result['production_version']} again",
                         "wait": "no decision yet: the canary keeps running"}[canary_decision.action]
    log_metadata({"canary_result": {**result, **numbers}})
    (logger.info if canary_decision.action == "wait" else logger.warning)(
        "%s -> %s", canary_decision.summary(), result)
    return result


def conclude_target(canary: Dict[str, Any]) -> str:
    """The version the canary alias points at now."""
    from recsys.registry.mlflow_registry import resolve_alias

    return resolve_alias(canary["tracking_uri"], canary["model"], canary["alias"])[0]
