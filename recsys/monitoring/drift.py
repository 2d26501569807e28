"""Drift checks on a window of fresh data: Evidently 0.7 reports plus the project's own ranking metrics.

Where this sits: the drift and retrain pipelines call `check_window` with the production Recommender (the
very object the service runs, loaded from its bundle), the last days of its training data (the reference)
and the current window; the result is a typed verdict (recsys.monitoring.verdict), the Evidently snapshots
(JSON) and one HTML page for the ZenML dashboard. recsys.monitoring.policy turns verdicts into decisions.

Signals (thresholds in configs/drift.yaml, `thresholds`):
- data_drift: share of drifted columns of the interaction stream (event type, the interacted item's
  attributes, its popularity bucket head / torso / tail / new by the reference window's counts):
  Evidently DataDriftPreset, Jensen-Shannon (categorical) / Wasserstein (numeric) per column;
- activity_drift: the largest drift score of per-user activity (events, distinct items, sessions);
- prediction_drift: Wasserstein distance of the model's top-k ranker scores, current vs reference users;
- outcome_ndcg: the model's NDCG@10 on the window's interactions (recsys.evaluation.window) vs its figure
  at registration; the decision reads this one. Evidently's NDCG / HitRate on the same lists are computed
  beside it and recorded as a cross-check (Evidently skips users without a hit in their list by default and
  counts ranks from its own offset, so its figures are shown, not decided on);
- popularity_bias, coverage, personalization of the recommended lists (Evidently's recsys metrics), each
  as the relative change vs the reference users' lists.
The recommender is mutated: it learns the events between its training data and the window (as the serving
history does) before any list is computed.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPE, ITEM_ID, SESSION_ID, TIMESTAMP, USER_ID
from recsys.evaluation.window import add_history, score_window, window_truth
from recsys.monitoring.policy import OUTCOME
from recsys.monitoring.verdict import DriftVerdict, Signal

log = logging.getLogger(__name__)
POPULARITY = "popularity_bucket"
MAX_CATEGORIES = 100  # item attributes with more distinct values (titles, ids) are not drift columns


@dataclass
class Thresholds:
    data_drift_share: float = 0.3  # share of interaction columns drifted
    column_drift: float = 0.1  # per column: Jensen-Shannon / normed Wasserstein distance
    activity_drift: float = 0.1
    prediction_drift: float = 0.2  # the control's weekly figures on the embedded default: 0.04-0.10
    outcome_drop: float = 0.2  # relative NDCG@10 drop (the policy decides on it; shown here)
    popularity_bias: float = 0.25  # relative change of the average recommended popularity
    coverage: float = 0.25
    personalization: float = 0.25

    @classmethod
    def parse(cls, values: dict | None) -> Thresholds:
        unknown = set(values or {}) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown drift threshold(s) {sorted(unknown)}; known: {list(cls.__dataclass_fields__)}")
        return cls(**(values or {}))


@dataclass
class WindowCheck:
    verdict: DriftVerdict
    snapshots: dict = field(default_factory=dict)  # name -> Evidently snapshot.dict()
    html: str = ""


def event_frame(interactions: pd.DataFrame, items: pd.DataFrame, popularity: pd.Series) -> pd.DataFrame:
    """One row per interaction: event type, the item's attributes, its popularity bucket."""
    attrs = items.drop_duplicates(ITEM_ID).set_index(ITEM_ID)
    keep = [c for c in attrs.columns if pd.api.types.is_numeric_dtype(attrs[c])
            or attrs[c].nunique() <= MAX_CATEGORIES]
    frame = attrs[keep].reindex(interactions[ITEM_ID].astype(str).to_numpy()).reset_index(drop=True)
    frame.insert(0, EVENT_TYPE, interactions[EVENT_TYPE].astype(str).to_numpy())
    frame[POPULARITY] = bucket(interactions[ITEM_ID].astype(str), popularity).to_numpy()
    return frame


def bucket(item_ids: pd.Series, popularity: pd.Series) -> pd.Series:
    """head (items holding the top half of the reference events), torso (the next 40%), tail, or new."""
    share = popularity.sort_values(ascending=False).cumsum() / max(popularity.sum(), 1)
    names = pd.Series(np.select([share <= 0.5, share <= 0.9], ["head", "torso"], "tail"), index=share.index)
    return item_ids.map(names).fillna("new")


def activity_frame(interactions: pd.DataFrame, days: float | None = None) -> pd.DataFrame:
    """One row per active user and period of `days` (default: the whole frame): events, distinct items and
    sessions. A reference of four weeks is cut into weeks to compare with a current week."""
    keys = [USER_ID]
    if days:
        origin = interactions[TIMESTAMP].min()
        interactions = interactions.assign(_period=((interactions[TIMESTAMP] - origin) / pd.Timedelta(days=days)).astype(int))
        keys.append("_period")
    grouped = interactions.groupby(keys)
    frame = pd.DataFrame({"events": grouped.size(), "distinct_items": grouped[ITEM_ID].nunique()})
    if SESSION_ID in interactions.columns:
        frame["sessions"] = grouped[SESSION_ID].nunique()
    return frame.reset_index(drop=True).astype(float)


def _drift_report(current: pd.DataFrame, reference: pd.DataFrame, threshold: float, share: float):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in current.columns if pd.api.types.is_numeric_dtype(current[c])]
    definition = DataDefinition(numerical_columns=numeric,
                                categorical_columns=[c for c in current.columns if c not in numeric])
    report = Report([DataDriftPreset(drift_share=share, cat_method="jensenshannon", num_method="wasserstein",
                                     threshold=threshold)])
    return report.run(Dataset.from_pandas(current, data_definition=definition),
                      Dataset.from_pandas(reference, data_definition=definition))


def _column_scores(snapshot) -> tuple[float | None, dict[str, float]]:
    """(share of drifted columns, {column: drift score}) from a DataDriftPreset snapshot's dict."""
    share, scores = None, {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return share, scores


def _recsys_frame(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> pd.DataFrame:
    """Evidently's ranking layout: recommended rows (rank as prediction) plus the relevant items not
    recommended (rank k + 1), target 1 for relevant items."""
    top = recs[recs["rank"] <= k][[USER_ID, ITEM_ID, "rank"]].astype({USER_ID: str, ITEM_ID: str})
    relevant = set(zip(truth[USER_ID], truth[ITEM_ID]))
    top["target"] = [int(p in relevant) for p in zip(top[USER_ID], top[ITEM_ID])]
    missed = truth[~pd.MultiIndex.from_frame(truth[[USER_ID, ITEM_ID]]).isin(
        pd.MultiIndex.from_frame(top[[USER_ID, ITEM_ID]]))].assign(rank=k + 1, target=1)
    return pd.concat([top, missed], ignore_index=True).rename(columns={"rank": "prediction"})


def _recsys_report(current: pd.DataFrame, reference: pd.DataFrame | None, train_cur: pd.DataFrame,
                   train_ref: pd.DataFrame, k: int):
    from evidently import DataDefinition, Dataset, Recsys, Report
    from evidently.metrics import NDCG, HitRate, Personalization, PopularityBiasMetric

    definition = DataDefinition(ranking=[Recsys(user_id=USER_ID, item_id=ITEM_ID, target="target",
                                                prediction="prediction", recommendations_type="rank")],
                                numerical_columns=["prediction", "target"], categorical_columns=[USER_ID, ITEM_ID])
    metrics = [NDCG(k=k), HitRate(k=k), Personalization(k=k), PopularityBiasMetric(k=k),
               PopularityBiasMetric(k=k, metric="coverage")]
    train_def = DataDefinition(categorical_columns=[USER_ID, ITEM_ID])
    extra = {"current_train_data": Dataset.from_pandas(train_cur, data_definition=train_def),
             "reference_train_data": Dataset.from_pandas(train_ref, data_definition=train_def)}
    return Report(metrics).run(Dataset.from_pandas(current, data_definition=definition),
                               None if reference is None else Dataset.from_pandas(reference, data_definition=definition),
                               additional_data=extra)


def _recsys_values(snapshot, k: int) -> dict[str, float]:
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric.get("config", {}), metric.get("value")
        kind = config.get("type", "").rsplit(":", 1)[-1]
        if kind in ("NDCG", "HitRate"):  # a table of value by rank: the value at rank k
            ranks, values = value["rank"], value["value"]
            at = [key for key, rank in ranks.items() if int(rank) == k]
            out[f"evidently_{kind.lower()}@{k}"] = float(values[at[0]]) if at else float("nan")
        elif kind == "Personalization":
            out["personalization"] = float(value)
        elif kind == "PopularityBiasMetric":
            out["coverage" if config.get("metric") == "coverage" else "popularity_bias"] = float(value)
    return out


def _relative(name: str, current: float, reference: float, threshold: float) -> Signal:
    change = current / reference - 1.0 if reference else float("nan")
    return Signal(name=name, kind="bias", value=current, reference=reference, threshold=threshold,
                  fired=bool(abs(change) > threshold), detail={"relative_change": change})


def check_window(recommender, reference: pd.DataFrame, current: pd.DataFrame, items: pd.DataFrame,
                 before: pd.DataFrame | None, registered_ndcg: float | None, thresholds: Thresholds,
                 model_name: str, model_version: str, window: tuple, k: int = 10,
                 max_users: int | None = 2000, min_events: int = 1) -> WindowCheck:
    """Measure every signal on `current` (the window's interactions) against `reference` (the last days
    of the model's training data). `before`: events between the two, taught to the model before scoring
    the window. `window`: (start, end) timestamps of the current window."""
    ref_span = (reference[TIMESTAMP].min(), reference[TIMESTAMP].max()) if len(reference) else window
    base = dict(model_name=model_name, model_version=str(model_version), window_start=window[0],
                window_end=window[1], reference_start=ref_span[0], reference_end=ref_span[1],
                n_events=len(current), n_users=int(current[USER_ID].nunique()) if len(current) else 0)
    if len(current) < max(min_events, 1) or not len(reference):
        return WindowCheck(DriftVerdict(signals=[], skipped=f"{len(current)} events in the window, "
                                                          f"{len(reference)} in the reference", **base))
    t = thresholds
    popularity = reference[ITEM_ID].astype(str).value_counts()
    data = _drift_report(event_frame(current, items, popularity), event_frame(reference, items, popularity),
                         t.column_drift, t.data_drift_share)
    share, columns = _column_scores(data)
    days = (window[1] - window[0]) / pd.Timedelta(days=1)
    activity = _drift_report(activity_frame(current), activity_frame(reference, days), t.activity_drift, 0.5)
    _, activity_scores = _column_scores(activity)

    # Both populations' lists from the model as it stands at the window's start (history included), so the
    # comparison is between users and behaviour, not between a fresh and an aged model.
    # As many reference users as current ones: coverage and personalization depend on the list count.
    add_history(recommender, before)
    scored = score_window(recommender, current, k, n_items=len(recommender.catalog), max_users=max_users)
    ref_truth = window_truth(reference, scored.n_users)
    ref_recs = recommender.recommend_batch(list(pd.unique(ref_truth[USER_ID])), k)
    cur_recs = scored.recommendations
    # personal lists only: cold-start scores are a fused rank on another scale
    ranked = [f[f["stage"].isin(("ranked", "retrieved"))]["score"].astype(float) for f in (cur_recs, ref_recs)]
    predictions, prediction_scores = None, {}
    if min(len(ranked[0]), len(ranked[1])) > 1:
        predictions = _drift_report(pd.DataFrame({"score": ranked[0].to_numpy()}),
                                    pd.DataFrame({"score": ranked[1].to_numpy()}), t.prediction_drift, 0.5)
        _, prediction_scores = _column_scores(predictions)
    basis = reference[[USER_ID, ITEM_ID]].astype(str)  # popularity measured on one basis for both lists
    quality = _recsys_report(_recsys_frame(cur_recs, scored.truth, k), _recsys_frame(ref_recs, ref_truth, k),
                             basis, basis, k)
    reference_only = _recsys_report(_recsys_frame(ref_recs, ref_truth, k), None, basis, basis, k)
    cur, ref = _recsys_values(quality, k), _recsys_values(reference_only, k)

    ndcg = scored.metrics[f"ndcg@{k}"]
    drop = 1.0 - ndcg / registered_ndcg if registered_ndcg else None
    signals = [
        Signal(name="data_drift", kind="drift", value=share, threshold=t.data_drift_share,
               fired=share is not None and share >= t.data_drift_share, detail={"columns": columns}),
        Signal(name="activity_drift", kind="drift", value=max(activity_scores.values(), default=None),
               threshold=t.activity_drift, fired=any(v >= t.activity_drift for v in activity_scores.values()),
               detail={"columns": activity_scores}),
        Signal(name="prediction_drift", kind="drift", value=prediction_scores.get("score"),
               threshold=t.prediction_drift, fired=prediction_scores.get("score", 0.0) >= t.prediction_drift,
               detail={"ranked_rows": [len(ranked[0]), len(ranked[1])]}),
        Signal(name=OUTCOME, kind="outcome", value=ndcg, reference=registered_ndcg, threshold=t.outcome_drop,
               fired=drop is not None and drop >= t.outcome_drop,
               detail={"relative_drop": drop, "hit@10": scored.metrics.get(f"hit@{k}"), "users": scored.n_users,
                       **{key: cur[key] for key in cur if key.startswith("evidently_")}}),
        _relative("popularity_bias", cur["popularity_bias"], ref["popularity_bias"], t.popularity_bias),
        _relative("coverage", cur["coverage"], ref["coverage"], t.coverage),
        _relative("personalization", cur["personalization"], ref["personalization"], t.personalization),
    ]
    verdict = DriftVerdict(signals=signals, **base)
    snapshots = {"data": data, "activity": activity, "predictions": predictions, "quality": quality}
    snapshots = {name: snap for name, snap in snapshots.items() if snap is not None}
    return WindowCheck(verdict, {name: s.dict() for name, s in snapshots.items()}, combined_html(verdict, snapshots))


def combined_html(verdict: DriftVerdict, snapshots: dict) -> str:
    """One page: the verdict on top, each Evidently report below it in its own frame."""
    rows = "".join(f"<tr><td>{html.escape(s.name)}</td><td>{s.kind}</td><td>{'' if s.value is None else f'{s.value:.4f}'}"
                   f"</td><td>{'' if s.reference is None else f'{s.reference:.4f}'}</td><td>{s.threshold:g}</td>"
                   f"<td style='color:{'#c0392b' if s.fired else '#27ae60'}'>{'FIRED' if s.fired else 'ok'}</td></tr>"
                   for s in verdict.signals)
    frames = "".join(f"<h2>{html.escape(name)}</h2><iframe style='width:100%;height:900px;border:0' "
                     f"srcdoc=\"{html.escape(snap.get_html_str(as_iframe=False), quote=True)}\"></iframe>"
                     for name, snap in snapshots.items())
    return (f"<html><head><meta charset='utf-8'><title>Drift check</title></head><body style='font-family:sans-serif'>"
            f"<h1>Drift check</h1><pre>{html.escape(verdict.summary())}</pre><table border=1 cellpadding=4>"
            f"<tr><th>signal</th><th>kind</th><th>value</th><th>reference</th><th>threshold</th><th></th></tr>"
            f"{rows}</table>{frames}</body></html>")
