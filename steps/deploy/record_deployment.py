"""Step: record the bento that passed its smoke test on the model version it ships: MLflow version tags and
the ZenML model version's metadata (the one whose `registration` names that MLflow version).

Runs only after smoke_test succeeded (it takes its report), so a bento on record has been served and
checked. Tags: `bento_tag`, `bento_archive`, `deployed_at` and the smoke test's figures (`smoke_*`).
"""

from datetime import datetime, timezone
from typing import Annotated, Any, Dict

from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.registry.mlflow_registry import set_version_tags
from steps.context import registered_model_version
from steps.names import DEPLOYMENT

logger = get_logger(__name__)
FIGURES = ("parity_users", "parity_mismatches", "p50_ms", "p99_ms", "p99_budget_ms", "load_rps", "load_errors",
           "fuzz_cases", "fuzz_failures", "fuzz_server_errors", "fuzz_phase_status")


@step(enable_cache=False)
def record_deployment(deploy_target: Dict[str, Any], bento: Dict[str, Any],
                      smoke_report: Dict[str, Any]) -> Annotated[Dict[str, Any], DEPLOYMENT]:
    if not smoke_report.get("passed"):  # smoke_test raises on failure; this guards a hand-made report
        raise ValueError(f"refusing to record {bento['bento_tag']}: its smoke test did not pass")
    target = deploy_target
    record = {"bento_tag": bento["bento_tag"], "bento_version": bento["bento_version"],
              "bento_archive": bento["archive"], "model_tag": bento["model_tag"],
              "deployed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    smoke = {f"smoke_{k}": smoke_report[k] for k in FIGURES if k in smoke_report}
    set_version_tags(target["tracking_uri"], target["name"], target["version"], {**record, **smoke})
    version = registered_model_version(target["name"], target["version"])
    deployment = {**target, **record, "zenml_model_version": version.name if version is not None else None,
                  "summary": f"bento {record['bento_tag']} ({bento['archive']}) recorded on {target['name']} "
                             f"version {target['version']}"}
    if version is not None:
        log_metadata({"deployment": {**record, **smoke}}, model_version_id=version.id)
    log_metadata({"deployment": deployment})
    logger.info("recorded bento %s on %s version %s (ZenML model version %s)", record["bento_tag"], target["name"],
                target["version"], deployment["zenml_model_version"])
    return deployment
