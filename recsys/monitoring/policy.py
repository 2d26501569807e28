"""The retraining decision: when the drift checks' verdicts justify training a challenger.

Where this sits: the retrain pipeline's decide step calls `decide` with this window's verdict, the earlier
verdicts for the same production model (oldest first) and when the last retrain happened; the training
steps after it run only when it says so (on Kubeflow the DAG is static, so they read the decision).

The rule, from configs/retrain.yaml (`policy`):
- drift alone alerts: data, activity or prediction drift, or a moved popularity bias / coverage /
  personalization, never retrains by itself;
- the outcome retrains: the production model's NDCG@10 on the window's interactions dropped by at least
  `outcome_drop` (relative to its figure at registration), or by at least `confirm_drop` while a drift
  signal fired (drift confirmed by the outcome);
- in `consecutive_windows` windows in a row (one bad week can be noise);
- with at least `min_new_events` events in the window (too little data measures nothing);
- and not within `cooldown_days` of the last retrain (by event time), so a challenger that lost is not
  retrained every window;
- `force` retrains whatever the signals say (a documented command: configs/retrain_forced.yaml).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from recsys.monitoring.verdict import Decision, DriftVerdict

OUTCOME = "outcome_ndcg"


class RetrainPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key must not silently mean "default"
    outcome_drop: float = Field(0.2, description="Relative NDCG@10 drop that retrains on its own.")
    confirm_drop: float = Field(0.1, description="Relative drop that retrains when a drift signal fired too.")
    consecutive_windows: int = Field(2, ge=1)
    min_new_events: int = Field(1000, ge=0)
    cooldown_days: float = Field(7.0, ge=0)
    force: bool = False


def meets_rule(verdict: DriftVerdict, policy: RetrainPolicy) -> tuple[bool, str]:
    """Whether one window meets the retrain rule, and why (or why not)."""
    if verdict.skipped:
        return False, f"window not checked ({verdict.skipped})"
    outcome = verdict.signal(OUTCOME)
    if outcome is None or outcome.value is None or not outcome.reference:
        return False, "no outcome figure for the window"
    drop = 1.0 - outcome.value / outcome.reference
    drifted = verdict.fired("drift") + verdict.fired("bias")
    text = f"NDCG@10 {outcome.value:.4f} vs {outcome.reference:.4f} at registration ({-drop:+.1%})"
    if drop >= policy.outcome_drop:
        return True, f"{text} >= {policy.outcome_drop:.0%}"
    if drop >= policy.confirm_drop and drifted:
        return True, f"{text} >= {policy.confirm_drop:.0%} with drift in {', '.join(drifted)}"
    if drifted:
        return False, f"drift in {', '.join(drifted)} but the outcome holds: {text}"
    return False, f"no drift; {text}"


def decide(verdict: DriftVerdict, previous: list[DriftVerdict], policy: RetrainPolicy,
           last_retrain: Optional[datetime] = None) -> Decision:
    """The decision for `verdict`'s window. `previous`: earlier verdicts for the same production model
    (any order; only windows ending before this one count); `last_retrain`: the window end at which the
    last retrain ran (model metadata), None if never."""
    alert = verdict.drifted or bool(verdict.fired("outcome"))
    base = dict(alert=alert, window_end=verdict.window_end)
    if policy.force:
        return Decision(retrain=True, reason="forced (policy.force)", forced=True, **base)
    if verdict.n_events < policy.min_new_events:
        return Decision(retrain=False, reason=f"only {verdict.n_events} new events (< {policy.min_new_events})",
                        **base)
    if last_retrain is not None and verdict.window_end - last_retrain < timedelta(days=policy.cooldown_days):
        return Decision(retrain=False, reason=f"cooldown: last retrain at {last_retrain:%Y-%m-%d %H:%M}, "
                                              f"less than {policy.cooldown_days:g} days before this window's end",
                        **base)
    ok, why = meets_rule(verdict, policy)
    run = 0
    if ok:
        earlier = sorted((v for v in previous if v.window_end < verdict.window_end), key=lambda v: v.window_end)
        run = 1
        for past in reversed(earlier):
            if last_retrain is not None and past.window_end <= last_retrain:
                break  # windows before the last retrain were already acted on
            if not meets_rule(past, policy)[0]:
                break
            run += 1
    if ok and run >= policy.consecutive_windows:
        return Decision(retrain=True, reason=f"{why}, {run} window(s) in a row", consecutive=run, **base)
    if ok:
        return Decision(retrain=False, reason=f"{why}; {run} of {policy.consecutive_windows} windows in a row "
                                              "so far", consecutive=run, **base)
    return Decision(retrain=False, reason=why, **base)
