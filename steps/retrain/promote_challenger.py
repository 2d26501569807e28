"""Step: promote the challenger that won (bundle, MLflow version, `production` alias, ZenML stage), or keep
the champion; either way record why and when (the policy's cooldown reads it).

A winner is first refit to learn the held-out window too (recsys.training.absorb_window, with the settings
its validation chose), so the production model knows everything up to now; its figure at registration is
its NDCG@10 on that window (what the next drift checks compare with). The
service follows the `production` alias and hot-swaps the new version; `previous` keeps the one it replaced
(python run.py --pipeline rollback undoes a promotion).
"""

from datetime import datetime, timezone
from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.monitoring import loop_metrics
from recsys.monitoring.verdict import Decision
from recsys.registry.bundle import publish_bundle, save_bundle
from recsys.registry.mlflow_registry import log_run, register_bundle, set_alias
from recsys.registry.promotion import CHALLENGER, Comparison, promote, record_retrain
from recsys.serving.recommender import Recommender
from recsys.data.windows import EventSource
from recsys.training import absorb_window
from steps.context import current_model, run_configuration
from steps.locations import state_location
from steps.names import PROMOTION

logger = get_logger(__name__)


@step(enable_cache=False)
def promote_challenger(retrain_decision: Decision, champion_vs_challenger: Optional[Comparison],
                       challenger: Optional[Recommender], challenger_info: Dict[str, Any],
                       window_interactions: pd.DataFrame, window: Dict[str, Any], promoted_info: Dict[str, Any],
                       window_items: pd.DataFrame, window_users: pd.DataFrame, current: Dict[str, Any],
                       bundles_dir: str = "data/bundles", stage: Optional[str] = "production",
                       metrics_file: Optional[str] = "data/monitoring/recsys_loop.prom",
                       pushgateway: Optional[str] = None) -> Annotated[Dict[str, Any], PROMOTION]:
    name, uri = promoted_info["name"], promoted_info["tracking_uri"]
    if challenger is None or champion_vs_challenger is None:
        return {"promoted": False, "reason": retrain_decision.reason}
    record_retrain(uri, name, pd.Timestamp(window["end"]).to_pydatetime())
    comparison = champion_vs_challenger
    metrics = {f"{who}/{key}": value for who, figures in (("champion", comparison.champion),
                                                          ("recommender", comparison.challenger))
               for key, value in figures.items()}
    tags = {"zenml_run": run_configuration()["run"], "decision": retrain_decision.reason[:500],
            "promoted": comparison.promote}
    if not comparison.promote:
        run_id = log_run(uri, name, {"window": window}, metrics, tags=tags, run_name=f"challenger {window['end'][:10]}",
                         tables={"comparison": pd.DataFrame([comparison.champion, comparison.challenger],
                                                            index=["champion", "challenger"])})
        logger.warning("challenger not promoted; the champion stays:\n  %s", "\n  ".join(comparison.reasons))
        loop_metrics.publish(name, promoted=False, textfile=metrics_file, pushgateway=pushgateway)
        return {"promoted": False, "reason": "; ".join(r for r in comparison.reasons if r.startswith("FAIL")),
                "mlflow_run_id": run_id}

    span = challenger_info["data_window"]
    before = EventSource(current["source"], current.get("params")).read(pd.Timestamp(span["start"]),
                                                                         pd.Timestamp(span["end"]))
    challenger = absorb_window(challenger, challenger_info["settings"], challenger_info["recipe"],
                               before.interactions, window_interactions, window_items,
                               window_users if len(window_users) else before.users)
    challenger.version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    config = {"recipe": challenger_info["recipe"], "split": challenger_info["split"], "window": window,
              "data_window": {**challenger_info["data_window"], "end": window["end"]},
              "decision": retrain_decision.reason, "comparison": comparison.reasons, "replaces": promoted_info}
    shared = state_location(bundles_dir).child(name, challenger.version)  # as register_model: steps/locations.py
    bundle = save_bundle(challenger, shared.local, metrics, config)
    publish_bundle(shared)
    run_id = log_run(uri, name, {"window": window, "settings": challenger_info["settings"]}, metrics,
                     artifacts_dir=bundle, tags={**tags, "bundle_version": challenger.version},
                     run_name=f"challenger {window['end'][:10]}")
    version = register_bundle(uri, run_id, name, None, tags={"bundle_version": challenger.version})
    set_alias(uri, name, CHALLENGER, version)
    previous = promote(uri, name, version)
    result = {"promoted": True, "registered": True, "mlflow_model": name, "mlflow_version": version,
              "previous_version": previous, "bundle": shared.shared, "bundle_version": challenger.version,
              "alias": "production", "mlflow_run_id": run_id, "tracking_uri": uri}
    model = current_model()
    if model is not None:
        model.log_metadata({"registration": result, "metrics": metrics})
        if stage:
            model.set_stage(stage, force=True)
    log_metadata(result)
    loop_metrics.publish(name, promoted=True, textfile=metrics_file, pushgateway=pushgateway)
    logger.info("promoted %s version %s (was %s): %s", name, version, previous, "; ".join(comparison.reasons))
    return result
