"""Step: measure the drift signals of one window (recsys.monitoring.drift) and publish them.

Outputs the typed verdict (what the retrain decision and later runs read), the Evidently reports as one HTML
page (the artifact's visualization in the ZenML dashboard) and their JSON snapshots. The same figures go to
an MLflow run (experiment `<model>-monitoring`, with the HTML and JSON as artifacts) and to Prometheus
(recsys.monitoring.loop_metrics: a textfile, and a Pushgateway when configured).
"""

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger
from zenml.types import HTMLString

from recsys.monitoring import loop_metrics
from recsys.monitoring.drift import Thresholds, check_window
from recsys.monitoring.verdict import DriftVerdict
from recsys.registry.mlflow_registry import log_run
from recsys.serving.recommender import Recommender
from steps.names import DRIFT_REPORT, DRIFT_SNAPSHOTS, DRIFT_VERDICT

logger = get_logger(__name__)


@step(enable_cache=False)
def check_drift(recommender: Recommender, promoted_info: Dict[str, Any], reference_interactions: pd.DataFrame,
                interactions_before_window: pd.DataFrame, window_interactions: pd.DataFrame,
                window_items: pd.DataFrame, window: Dict[str, Any], thresholds: Optional[Dict[str, float]] = None,
                k: int = 10, max_users: Optional[int] = 2000, min_events: int = 100,
                metrics_file: Optional[str] = "data/monitoring/recsys_loop.prom",
                pushgateway: Optional[str] = None) -> Tuple[
    Annotated[DriftVerdict, DRIFT_VERDICT],
    Annotated[HTMLString, DRIFT_REPORT],
    Annotated[Dict[str, Any], DRIFT_SNAPSHOTS],
]:
    """`thresholds`: recsys.monitoring.drift.Thresholds fields; `min_events`: a window with fewer is not
    checked (the verdict says so); `metrics_file` / `pushgateway`: where the Prometheus figures go."""
    registered = promoted_info["metrics"].get("recommender/ndcg@10")
    result = check_window(recommender, reference_interactions, window_interactions, window_items,
                          interactions_before_window, registered, Thresholds.parse(thresholds),
                          promoted_info["name"], promoted_info["mlflow_version"] or promoted_info["bundle_version"],
                          (pd.Timestamp(window["start"]), pd.Timestamp(window["end"])), k, max_users, min_events)
    verdict = result.verdict
    logger.info("drift check:\n%s", verdict.summary())
    figures = {s.name: s.value for s in verdict.signals if s.value is not None}
    log_metadata({"window": window, "signals": figures, "fired": verdict.fired(), "skipped": verdict.skipped or ""})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "drift_report.html").write_text(result.html or "<p>window not checked</p>")
        (Path(tmp) / "drift_snapshots.json").write_text(json.dumps(result.snapshots, default=str))
        (Path(tmp) / "verdict.json").write_text(verdict.model_dump_json(indent=2))
        log_run(promoted_info["tracking_uri"], f"{promoted_info['name']}-monitoring", {"window": window},
                {**figures, **{f"{s.name}_fired": float(s.fired) for s in verdict.signals}}, artifacts_dir=tmp,
                artifact_path="drift", run_name=f"drift {window['start'][:10]}",
                tags={"model_version": verdict.model_version, "skipped": bool(verdict.skipped)})
    loop_metrics.publish(promoted_info["name"], verdict=verdict, textfile=metrics_file, pushgateway=pushgateway)
    html = result.html or f"<p>{verdict.summary()}</p>"
    return verdict, HTMLString(html), result.snapshots
