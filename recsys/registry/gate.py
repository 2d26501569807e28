"""Promotion gate: whether a freshly trained recommender may be registered and promoted.

The training pipeline scores the candidate next to its comparison models (`recsys.evaluation.protocol.
evaluate`: one row per model, one column per metric) and asks `check_gate` before anything is registered.
Thresholds come from the training config:

    {"min_ndcg@10": 0.05,              # candidate's column value must be >= the bound
     "min_recall@10": 0.08,
     "must_beat": ["popularity"],      # candidate must score strictly higher than these rows ...
     "beat_metric": "ndcg@10"}         # ... on this column (default "ndcg@10")

A key, metric or model the table does not have is a configuration error (ConfigError, a ValueError), not a
failed gate: a typo must not silently block or pass every future model.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from recsys.errors import ConfigError

CANDIDATE = "recommender"  # row of the evaluation table that holds the model being gated
DEFAULT_BEAT_METRIC = "ndcg@10"


def _value(metrics: pd.DataFrame, model: str, column: str) -> float:
    if model not in metrics.index:
        raise ConfigError(f"gate names model {model!r}; the evaluation table has {list(metrics.index)}")
    if column not in metrics.columns:
        raise ConfigError(f"gate names metric {column!r}; the evaluation table has {list(metrics.columns)}")
    return float(metrics.loc[model, column])


def gate_checks(metrics: pd.DataFrame, thresholds: Mapping, candidate: str = CANDIDATE) -> pd.DataFrame:
    """One row per check: check (a label), metric, value (the candidate's), threshold (the bound, or the
    other model's value), kind ("minimum" or "must beat <model>"), passed. NaN scores fail."""
    unknown = [k for k in thresholds if not (k.startswith("min_") or k in ("must_beat", "beat_metric"))]
    if unknown:
        raise ConfigError(f"unknown gate threshold key(s) {unknown}: use min_<metric>, must_beat, beat_metric")
    rows = []
    for key, bound in thresholds.items():
        if key.startswith("min_"):
            value = _value(metrics, candidate, key[4:])
            rows.append((f"{key[4:]} >= {float(bound):g}", key[4:], value, float(bound), "minimum",
                         value >= float(bound)))
    beat_metric = thresholds.get("beat_metric", DEFAULT_BEAT_METRIC)
    must_beat = thresholds.get("must_beat") or []
    for other in [must_beat] if isinstance(must_beat, str) else must_beat:
        mine, theirs = _value(metrics, candidate, beat_metric), _value(metrics, other, beat_metric)
        rows.append((f"{beat_metric} > {other}", beat_metric, mine, theirs, f"must beat {other}", mine > theirs))
    return pd.DataFrame(rows, columns=["check", "metric", "value", "threshold", "kind", "passed"])


def check_gate(metrics: pd.DataFrame, thresholds: Mapping, candidate: str = CANDIDATE) -> tuple[bool, list[str]]:
    """(passed, reasons): one reason line per check, prefixed "ok" or "FAIL"; passed when none failed.
    NaN scores fail (every comparison with NaN is false). An empty `thresholds` passes with no checks."""
    reasons = []
    for row in gate_checks(metrics, thresholds, candidate).itertuples():
        if row.kind == "minimum":
            text = f"{candidate} {row.metric} = {row.value:.4f} (minimum {row.threshold:.4f})"
        else:
            other = row.kind.removeprefix("must beat ")
            text = f"{candidate} {row.metric} = {row.value:.4f} vs {other} = {row.threshold:.4f} (must be higher)"
        reasons.append(f"{'ok' if row.passed else 'FAIL'}: {text}")
    return all(r.startswith("ok") for r in reasons), reasons
