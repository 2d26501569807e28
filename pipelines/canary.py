"""Canary pipeline: the running experiment's readout -> promote the canary (production alias, ZenML stage,
bento) or roll it back (canary alias back to production), or wait for more traffic; the rule and its
numbers recorded either way. Run it when the canary has had traffic: python run.py --pipeline canary."""

from typing import Any, Dict, Optional

from zenml import pipeline

from steps.deploy import conclude_canary, read_canary


@pipeline(enable_cache=False)
def canary_pipeline(canary: Optional[Dict[str, Any]] = None):
    """`canary`: recsys.deploy.canary.CanarySettings (the experiment and alias the deploy pipeline started)."""
    decision, info = read_canary(canary)
    conclude_canary(decision, info)
