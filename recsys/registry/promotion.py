"""Champion vs challenger, promotion and rollback of the MLflow registered model's aliases.

Where this sits: the retrain pipeline scores the production model (champion) and a freshly trained
challenger on the same most recent held-out window (recsys.evaluation.window) and asks `compare` whether
the challenger may replace it; `promote` then moves the aliases; the rollback pipeline (and the deploy
pipeline's canary readout) call `rollback` / `promote` too. The service follows the `production` alias
(hot reload), so moving it is what deploys a model.

Aliases: `production` (served), `previous` (what production pointed at before the last move: the rollback
target), `challenger` (the last challenger registered, promoted or not). Registered model tags keep the
loop's state across runs: `last_retrain_window_end` (ISO time; the policy's cooldown).

The rule (configs/retrain.yaml, `promotion`): the challenger's `metric` must beat the champion's by at
least `min_gain` (relative), and guardrails must hold: its catalogue coverage may not fall by more than
`max_coverage_drop` (relative) and its recommended items' mean popularity may not rise by more than
`max_popularity_rise` (relative; a model that wins by recommending only the head is not promoted).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys.registry.mlflow_registry import _client, resolve_alias, set_alias

PRODUCTION, PREVIOUS, CHALLENGER = "production", "previous", "challenger"
LAST_RETRAIN_TAG = "last_retrain_window_end"


class PromotionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = "ndcg@10"
    min_gain: float = Field(0.02, description="Relative gain the challenger needs on `metric`.")
    max_coverage_drop: float = Field(0.2, description="Largest relative drop of coverage@10 allowed.")
    max_popularity_rise: float = Field(0.3, description="Largest relative rise of mean recommended popularity.")


class Comparison(BaseModel):
    promote: bool
    reasons: list[str]
    champion: dict[str, float]
    challenger: dict[str, float]


def mean_popularity(recommendations: pd.DataFrame, popularity: pd.Series, k: int = 10) -> float:
    """Mean, over the top-k recommended rows, of each item's interaction count in `popularity`."""
    top = recommendations[recommendations["rank"] <= k]
    return float(top["item_id"].astype(str).map(popularity).fillna(0).mean()) if len(top) else 0.0


def compare(champion: dict[str, float], challenger: dict[str, float], rule: PromotionRule) -> Comparison:
    """Whether the challenger may replace the champion; figures are window metrics plus `popularity`."""
    reasons, ok = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok &= passed
        reasons.append(f"{'ok' if passed else 'FAIL'}: {text}")

    k = rule.metric.split("@")[-1]
    mine, theirs = challenger[rule.metric], champion[rule.metric]
    gain = mine / theirs - 1.0 if theirs else float("inf")
    check(gain >= rule.min_gain, f"{rule.metric} {mine:.4f} vs champion {theirs:.4f} ({gain:+.1%}; needs "
                                 f"{rule.min_gain:+.1%})")
    cov = f"coverage@{k}"
    if cov in champion and cov in challenger and champion[cov]:
        drop = 1.0 - challenger[cov] / champion[cov]
        check(drop <= rule.max_coverage_drop, f"{cov} {challenger[cov]:.4f} vs {champion[cov]:.4f} "
                                              f"({-drop:+.1%}; may fall {rule.max_coverage_drop:.0%})")
    if champion.get("popularity") and "popularity" in challenger:
        rise = challenger["popularity"] / champion["popularity"] - 1.0
        check(rise <= rule.max_popularity_rise, f"mean popularity {challenger['popularity']:.1f} vs "
                                                f"{champion['popularity']:.1f} ({rise:+.1%}; may rise "
                                                f"{rule.max_popularity_rise:.0%})")
    return Comparison(promote=ok, reasons=reasons, champion=champion, challenger=challenger)


def duel(champion, challenger, before: pd.DataFrame, window: pd.DataFrame, popularity: pd.Series,
         rule: PromotionRule, k: int = 10, max_users: int | None = None) -> Comparison:
    """Champion and challenger on the same held-out window (recsys.evaluation.window): the champion first
    learns `before` (the events since its training data) as serving history, the challenger already
    learnt them; `popularity`: item interaction counts the mean-popularity guardrail reads."""
    from recsys.evaluation.window import add_history, score_window

    add_history(champion, before)
    figures = {}
    for name, model in (("champion", champion), ("challenger", challenger)):
        scored = score_window(model, window, k, n_items=len(model.catalog), max_users=max_users)
        figures[name] = {**scored.metrics, "popularity": mean_popularity(scored.recommendations, popularity, k),
                         "users": float(scored.n_users)}
    return compare(figures["champion"], figures["challenger"], rule)


def promote(tracking_uri: str, name: str, version: str) -> str | None:
    """Point `production` at `version`, and `previous` at what it pointed at (returned; None if nothing)."""
    try:
        current, _ = resolve_alias(tracking_uri, name, PRODUCTION)
    except Exception:  # noqa: BLE001 - no production version yet
        current = None
    if current is not None and current != str(version):
        set_alias(tracking_uri, name, PREVIOUS, current)
    set_alias(tracking_uri, name, PRODUCTION, version)
    return current


def rollback(tracking_uri: str, name: str, to_version: str | None = None) -> tuple[str, str]:
    """Point `production` back at `to_version` (default: the `previous` alias); the version it leaves
    becomes `previous`, so a second rollback undoes the first. Returns (from, to)."""
    current, _ = resolve_alias(tracking_uri, name, PRODUCTION)
    target = str(to_version) if to_version else resolve_alias(tracking_uri, name, PREVIOUS)[0]
    if target == current:
        raise ValueError(f"{name} version {target} is already in production")
    _client(tracking_uri).get_model_version(name, target)  # raises for an unknown version
    set_alias(tracking_uri, name, PRODUCTION, target)
    set_alias(tracking_uri, name, PREVIOUS, current)
    return current, target


def last_retrain(tracking_uri: str, name: str) -> datetime | None:
    """The window end at which the loop last trained a challenger for `name` (None: never)."""
    try:
        value = _client(tracking_uri).get_registered_model(name).tags.get(LAST_RETRAIN_TAG)
    except Exception:  # noqa: BLE001 - no registered model yet
        return None
    return pd.Timestamp(value).to_pydatetime() if value else None


def record_retrain(tracking_uri: str, name: str, window_end: datetime) -> None:
    _client(tracking_uri).set_registered_model_tag(name, LAST_RETRAIN_TAG, pd.Timestamp(window_end).isoformat())
