"""Retrain pipeline: drift check -> decision -> challenger -> champion vs challenger -> promote or keep.

A static DAG (as Kubeflow needs): every step runs, and the ones after the decision do nothing when it says
no (no challenger, no comparison, nothing promoted), recording why. Scheduled, it is the whole loop.
"""

from typing import Any, Dict, Optional

from zenml import pipeline

from pipelines.drift import drift_check
from steps.monitoring import decide_retrain
from steps.retrain import compare_models, promote_challenger, train_challenger


@pipeline(enable_cache=False)
def retrain_pipeline(current: Dict[str, Any], window_days: float = 7.0, reference_days: float = 28.0,
                     window_start: Optional[str] = None, training_days: Optional[float] = None):
    """`training_days`: the challenger's sliding training window (null: all data before the window)."""
    champion, info, reference, before, window_interactions, items, users, window, verdict = drift_check(
        current, window_days, reference_days, window_start)
    decision = decide_retrain(verdict, info)
    challenger, challenger_info = train_challenger(decision, info, window, items, users, current, training_days)
    comparison = compare_models(champion, challenger, before, window_interactions, reference)
    promote_challenger(decision, comparison, challenger, challenger_info, window_interactions, window, info, items,
                       users, current)
