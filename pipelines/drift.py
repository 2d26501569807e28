"""Drift pipeline: the production model against the next window of fresh data.

load the production model -> the reference / gap / window ranges -> Evidently reports and the project's
ranking metrics -> a verdict (typed artifact), the HTML report (dashboard), MLflow and Prometheus figures.
Alerts only; `retrain_pipeline` adds the decision and the challenger.
"""

from typing import Any, Dict, Optional

from zenml import pipeline

from steps.inference import load_promoted_bundle
from steps.monitoring import check_drift, load_windows


@pipeline(enable_cache=False)
def drift_check(current: Dict[str, Any], window_days: float = 7.0, reference_days: float = 28.0,
                window_start: Optional[str] = None):
    """The sub-graph the retrain pipeline reuses; returns the models, windows and verdict."""
    champion, info = load_promoted_bundle()
    reference, before, window_interactions, items, users, window = load_windows(
        info, current, window_days, reference_days, window_start)
    verdict, _, _ = check_drift(champion, info, reference, before, window_interactions, items, window)
    return champion, info, reference, before, window_interactions, items, users, window, verdict


@pipeline(enable_cache=False)
def drift_pipeline(current: Dict[str, Any], window_days: float = 7.0, reference_days: float = 28.0,
                   window_start: Optional[str] = None):
    """`current`: where fresh events come from (recsys.data.windows); every other value is a step
    parameter in configs/drift.yaml."""
    drift_check(current, window_days, reference_days, window_start)
