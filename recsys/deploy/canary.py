"""The canary: a new model version served to a share of users as the A/B treatment, then promoted or rolled
back on what those users did.

Where this sits: the deploy pipeline points the MLflow alias `canary` at the version it deployed
(`start`); the running service serves `models:/<name>@canary` to the treatment group of its experiment
(bentos/serving.yaml `experiment`, hot reload) and `models:/<name>@production` to everyone else, and logs
impressions and feedback with the variant. The canary pipeline (pipelines/canary.py) reads that log
(recsys.serving.readout: per-variant click-through, two-proportion z-test), `decide`s by the rule below and
`conclude`s: promote (recsys.registry.promotion.promote: `production` moves, `previous` keeps the old
version) or roll back (`canary` points at the production version again: the treatment group gets the
production model back). Each decision and its numbers are tags of the canary's MLflow version.

The rule (configs/canary.yaml `rule`): no decision before each variant has `min_trials`; promote when the
treatment's success rate is higher with p < `alpha` and its relative lift is at least `min_lift`; roll back
when it is lower with p < `alpha`, or when `max_trials` per variant passed without a promotion (no proven
gain: keep what is in production); otherwise wait for more traffic. Reading the readout again and again
until it is significant inflates the false-positive rate: `min_trials` is the guard, set it from the
traffic a lift worth having needs (docs/deploy.md has the figures).
"""

from __future__ import annotations

import json
import math
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys.serving.readout import SUCCESS_TYPES, counts, readout

CANARY = "canary"
CONTROL, TREATMENT = "control", "treatment"


class CanarySettings(BaseModel):
    """How the deploy pipeline puts a version on the service as a canary (configs/deploy*.yaml `canary`)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(False, description="point the alias at the deployed version (the service's treatment)")
    share: float = Field(0.1, gt=0, lt=1, description="share of users in the treatment group")
    experiment: str = Field("canary", description="experiment name: the service's RECSYS_EXPERIMENT")
    alias: str = Field(CANARY, description="MLflow alias the treatment follows")


class CanaryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_trials: int = Field(2000, ge=1, description="trials per variant before any decision")
    max_trials: int = Field(50000, ge=1, description="trials per variant after which an unproven canary is rolled back")
    alpha: float = Field(0.05, gt=0, lt=1, description="two-sided significance level of the z-test")
    min_lift: float = Field(0.0, description="relative lift of the success rate the treatment needs to be promoted")
    unit: Literal["impression", "user"] = "impression"
    success: list[str] = Field(default_factory=lambda: list(SUCCESS_TYPES), description="event types that count")


class CanaryDecision(BaseModel):
    action: Literal["promote", "rollback", "wait"]
    reason: str
    control: dict[str, float]
    treatment: dict[str, float]
    rule: CanaryRule

    def figures(self) -> dict[str, float]:
        """Flat numbers for MLflow tags / ZenML metadata."""
        out = {f"control_{k}": v for k, v in self.control.items()}
        out.update({f"treatment_{k}": v for k, v in self.treatment.items()})
        return out

    def summary(self) -> str:
        t, c = self.treatment, self.control
        return (f"canary {self.action}: {self.reason} (control {int(c['successes'])}/{int(c['trials'])} "
                f"= {c['rate']:.4f}, treatment {int(t['successes'])}/{int(t['trials'])} = {t['rate']:.4f}, "
                f"lift {t.get('lift', float('nan')):+.1%}, p {t.get('p_value', float('nan')):.4g})")


def experiment_log(log: pd.DataFrame, experiment: str, versions: dict[str, str]) -> pd.DataFrame:
    """The rows of `log` that belong to this canary: impressions of `experiment` served by the expected
    model version of their variant (`versions`: variant -> bundle version; an alias moved during the
    experiment must not mix two versions in one group), and all feedback (joined to them by the readout)."""
    if "type" not in log.columns:
        raise ValueError("the log has no 'type' field: not an experiment log")
    def column(name: str) -> pd.Series:
        return log[name].astype(str) if name in log.columns else pd.Series("", index=log.index)

    impressions = log["type"] == "impression"
    keep = ~impressions
    for variant, version in versions.items():
        keep |= impressions & (column("experiment") == experiment) & (column("variant") == variant) & (
            column("model_version") == str(version))
    return log[keep]


def decide(table: pd.DataFrame, rule: CanaryRule) -> CanaryDecision:
    """The decision for a readout `table` (recsys.serving.readout.counts: trials and successes per
    variant, with `control` and `treatment` rows)."""
    missing = {CONTROL, TREATMENT} - set(table.index)
    if missing:
        empty = {"trials": 0.0, "successes": 0.0, "rate": float("nan")}
        rows = {v: ({"trials": float(table.loc[v].trials), "successes": float(table.loc[v].successes),
                     "rate": float(table.loc[v].successes / table.loc[v].trials)} if v in table.index else empty)
                for v in (CONTROL, TREATMENT)}
        return CanaryDecision(action="wait", reason=f"no impressions of {sorted(missing)} yet",
                              control=rows[CONTROL], treatment=rows[TREATMENT], rule=rule)
    result, _ = readout(table.loc[[CONTROL, TREATMENT]], CONTROL, rule.alpha)
    control = {k: float(result.loc[CONTROL, k]) for k in ("trials", "successes", "rate")}
    treatment = {k: float(result.loc[TREATMENT, k]) for k in ("trials", "successes", "rate", "diff", "lift",
                                                             "lift_low", "lift_high", "z", "p_value")}
    if control["rate"] == 0 and treatment["rate"] > 0:
        treatment["lift"] = math.inf
    trials = min(control["trials"], treatment["trials"])
    significant = treatment["p_value"] < rule.alpha
    better, worse = treatment["diff"] > 0, treatment["diff"] < 0
    lift = f"lift {treatment['lift']:+.1%} (p {treatment['p_value']:.3g}, alpha {rule.alpha})"
    if trials < rule.min_trials:
        action, reason = "wait", f"{int(trials)} trials in the smaller group, the rule needs {rule.min_trials}"
    elif significant and better and treatment["lift"] >= rule.min_lift:
        action, reason = "promote", f"treatment better: {lift}, at least {rule.min_lift:+.1%} needed"
    elif significant and worse:
        action, reason = "rollback", f"treatment worse: {lift}"
    elif trials >= rule.max_trials:
        action, reason = "rollback", (f"no promotion after {int(trials)} trials (max {rule.max_trials}): {lift}, "
                                      f"at least {rule.min_lift:+.1%} needed")
    else:
        action, reason = "wait", f"not conclusive yet: {lift}"
    return CanaryDecision(action=action, reason=reason, control=control, treatment=treatment, rule=rule)


def read_decision(log: pd.DataFrame, experiment: str, versions: dict[str, str], rule: CanaryRule) -> CanaryDecision:
    """`decide` on the canary's rows of an experiment log (recsys.serving.readout.read_log)."""
    rows = experiment_log(log, experiment, versions)
    if not (rows["type"] == "impression").any():
        empty = {"trials": 0.0, "successes": 0.0, "rate": float("nan")}
        return CanaryDecision(action="wait", reason=f"no impressions of experiment {experiment!r} by versions "
                              f"{versions} in the log yet", control=empty, treatment=dict(empty), rule=rule)
    return decide(counts(rows, experiment, rule.success, rule.unit), rule)


# ---- the registry side (MLflow aliases and tags) ----
def start(tracking_uri: str, name: str, version: str, alias: str = CANARY) -> str | None:
    """Point `alias` at `version` (the service's treatment follows it); returns the version it left."""
    from recsys.registry.mlflow_registry import resolve_alias, set_alias

    try:
        before = resolve_alias(tracking_uri, name, alias)[0]
    except Exception:  # noqa: BLE001 - no canary yet
        before = None
    set_alias(tracking_uri, name, alias, version)
    return before


def conclude(tracking_uri: str, name: str, decision: CanaryDecision, alias: str = CANARY) -> dict:
    """Act on `decision` for the version `alias` points at: promote it to production, or point `alias` back
    at the production version; either way the decision and its numbers become tags of that version.
    `wait` changes nothing. Returns what was done."""
    from recsys.registry.mlflow_registry import resolve_alias, set_alias, set_version_tags
    from recsys.registry.promotion import PRODUCTION, promote

    canary, _ = resolve_alias(tracking_uri, name, alias)
    production, _ = resolve_alias(tracking_uri, name, PRODUCTION)
    done = {"model": name, "canary_version": canary, "production_version": production, "action": decision.action,
            "reason": decision.reason}
    if decision.action == "wait":
        return done
    if canary == production:
        raise ValueError(f"{name}@{alias} is version {canary}, already in production: no canary to conclude")
    if decision.action == "promote":
        done["previous_version"] = promote(tracking_uri, name, canary)
        done["production_version"] = canary
    else:
        set_alias(tracking_uri, name, alias, production)  # the treatment group is served production again
    set_version_tags(tracking_uri, name, canary, {
        "canary_decision": decision.action, "canary_reason": decision.reason[:500],
        "canary_rule": json.dumps(decision.rule.model_dump()),
        **{f"canary_{k}": f"{v:.6g}" for k, v in decision.figures().items()}})
    return done
