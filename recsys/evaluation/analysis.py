"""Looking inside an offline evaluation: quality per user segment, the score distribution of hits and misses,
and a few users' lists beside what they did.

Where this sits: the training pipeline's evaluate step calls `recsys.evaluation.protocol.evaluate(...,
return_recommendations=True)` and hands the lists to these functions; recsys.evaluation.report draws and
assembles them. Segments are by activity (the user's events known before the test period), so "cold" users
(one or two events) are a segment of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID
from recsys.evaluation.metrics import ranking_metrics

ACTIVITY_BUCKETS = ((0, 0, "no history"), (1, 2, "1-2 (cold)"), (3, 5, "3-5"), (6, 10, "6-10"),
                    (11, 25, "11-25"), (26, np.inf, "26+"))


def activity_segments(history: pd.DataFrame, users) -> pd.Series:
    """Segment label per user of `users`, by how many events of theirs `history` holds."""
    counts = history[USER_ID].astype(str).value_counts().reindex(pd.Index(users, dtype=object).astype(str))
    counts = counts.fillna(0).to_numpy()
    labels = np.empty(len(counts), dtype=object)
    for low, high, label in ACTIVITY_BUCKETS:
        labels[(counts >= low) & (counts <= high)] = label
    return pd.Series(labels, index=pd.Index(users, dtype=object).astype(str), name="segment")


def segment_metrics(recommendations: Mapping[str, pd.DataFrame], truth: pd.DataFrame, segments: pd.Series,
                    k: int = 10) -> pd.DataFrame:
    """One row per (segment, model): segment, model, users, ndcg@k, recall@k, hit@k; segments in bucket
    order, those without test users left out."""
    truth = truth[[USER_ID, ITEM_ID]].astype(str)
    rows = []
    for _, _, label in ACTIVITY_BUCKETS:
        members = segments.index[segments == label]
        part = truth[truth[USER_ID].isin(members)]
        if part.empty:
            continue
        for model, recs in recommendations.items():
            scored = ranking_metrics(recs[recs[USER_ID].astype(str).isin(members)], part, k)
            rows.append({"segment": label, "model": model, "users": part[USER_ID].nunique(),
                         **{m: scored[f"{m}@{k}"] for m in ("ndcg", "recall", "hit")}})
    return pd.DataFrame(rows).rename(columns={m: f"{m}@{k}" for m in ("ndcg", "recall", "hit")})


def hits(recs: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Per row of `recs`: whether the item is among the user's test items."""
    known = pd.MultiIndex.from_frame(truth[[USER_ID, ITEM_ID]].astype(str))
    pairs = pd.MultiIndex.from_arrays([recs[USER_ID].astype(str), recs[ITEM_ID].astype(str)])
    return pd.Series(pairs.isin(known), index=recs.index, name="hit")


def scored_hits(recs: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """score, hit of every recommended item that has a score."""
    out = pd.DataFrame({"score": pd.to_numeric(recs.get("score"), errors="coerce"), "hit": hits(recs, truth)})
    return out.dropna(subset=["score"])


def sample_users(recs: pd.DataFrame, truth: pd.DataFrame, segments: pd.Series, n: int = 4,
                 seed: int = 0) -> list[str]:
    """A few test users to look at: spread over the activity segments (coldest to most active), every other
    one with a hit in their list; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    hit_users = set(recs.loc[hits(recs, truth).to_numpy(), USER_ID].astype(str))
    scored = sorted(pd.unique(truth[USER_ID].astype(str)))
    segment_of = segments.reindex(scored)
    present = [label for _, _, label in ACTIVITY_BUCKETS if (segment_of == label).any()]
    picked: list[str] = []
    for i, at in enumerate(np.linspace(0, len(present) - 1, n).round().astype(int) if present else []):
        members = [u for u in segment_of.index[segment_of == present[at]] if u not in picked]
        wanted = [u for u in members if (u in hit_users) == (i % 2 == 0)]
        if wanted or members:
            picked.append(str(rng.choice(wanted or members)))
    return picked


def user_story(user: str, recs: pd.DataFrame, truth: pd.DataFrame, history: pd.DataFrame, items: pd.DataFrame,
               last: int = 5, attributes: tuple[str, ...] = ("destination", "category")) -> dict:
    """What a user did last (known history), what they did in test, and their list with hits marked."""
    described = items.set_index(items[ITEM_ID].astype(str))
    shown = [a for a in attributes if a in described.columns]

    def label(item: str) -> str:
        if item not in described.index or not shown:
            return item
        return f"{item} ({', '.join(str(described.at[item, a]) for a in shown)})"

    mine = history[history[USER_ID].astype(str) == user].sort_values(TIMESTAMP).tail(last)
    did = [f"{label(str(r[ITEM_ID]))} {r[EVENT_TYPE]}" for _, r in mine.iterrows()]
    wanted = set(truth.loc[truth[USER_ID].astype(str) == user, ITEM_ID].astype(str))
    listed = recs[recs[USER_ID].astype(str) == user].sort_values("rank")
    rows = [{"rank": int(r["rank"]), "item": label(str(r[ITEM_ID])), "source": r.get("source", ""),
             "score": r.get("score", np.nan), "hit": str(r[ITEM_ID]) in wanted} for _, r in listed.iterrows()]
    return {"user": user, "history": did, "test": sorted(label(i) for i in wanted), "list": rows,
            "events": int((history[USER_ID].astype(str) == user).sum())}
