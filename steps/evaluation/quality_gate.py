"""Step: decide whether the trained recommender may be registered (see recsys.registry.gate).

Besides the decision, a report of every check, the value beside its threshold (HTML for the dashboard, the
figure in the run's MLflow run, the verdict in the run's metadata)."""

from typing import Annotated, Any, Dict, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger
from zenml.types import HTMLString

from recsys.evaluation.report import gate_report
from recsys.registry.gate import check_gate, gate_checks
from steps.names import GATE_PASSED, GATE_REPORT
from steps.tracking import record

logger = get_logger(__name__)


@step
def quality_gate(evaluation_metrics: pd.DataFrame, thresholds: Dict[str, Any]) -> Tuple[
    Annotated[bool, GATE_PASSED],
    Annotated[HTMLString, GATE_REPORT],
]:
    """`thresholds`: {"min_<metric>": bound, ..., "must_beat": [model, ...], "beat_metric": metric}."""
    passed, reasons = check_gate(evaluation_metrics, thresholds)
    if passed:  # one line; the gate_report artifact lists every check
        logger.info("quality gate passed: %d of %d checks", len(reasons), len(reasons))
    else:
        logger.warning("quality gate FAILED:\n  %s", "\n  ".join(reasons))
    checks = gate_checks(evaluation_metrics, thresholds)
    page, figures = gate_report(checks, passed)
    record(figures=figures, step_metadata={
        "passed": passed, **{row.check: f"{row.value:.4f} vs {row.threshold:.4f}" for row in checks.itertuples()}},
        run_metadata={"quality gate": "passed" if passed else "FAILED"})
    return passed, HTMLString(page)
