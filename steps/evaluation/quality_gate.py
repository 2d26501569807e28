"""Step: decide whether the trained recommender may be registered (see recsys.registry.gate)."""

from typing import Annotated, Any, Dict

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.registry.gate import check_gate
from steps.names import GATE_PASSED

logger = get_logger(__name__)


@step
def quality_gate(evaluation_metrics: pd.DataFrame, thresholds: Dict[str, Any]) -> Annotated[bool, GATE_PASSED]:
    """`thresholds`: {"min_<metric>": bound, ..., "must_beat": [model, ...], "beat_metric": metric}."""
    passed, reasons = check_gate(evaluation_metrics, thresholds)
    log = logger.info if passed else logger.warning
    log("quality gate %s:\n  %s", "passed" if passed else "FAILED", "\n  ".join(reasons) or "(no checks)")
    return passed
