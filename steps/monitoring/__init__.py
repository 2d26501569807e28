"""Monitoring stage: the windows a drift check compares, the check itself, the retrain decision."""

from steps.monitoring.check_drift import check_drift
from steps.monitoring.decide_retrain import decide_retrain
from steps.monitoring.load_windows import load_windows

__all__ = ["load_windows", "check_drift", "decide_retrain"]
