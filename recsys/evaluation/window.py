"""The loop's evaluation protocol: a model scored on a window of time it has not learnt from.

Where this sits: the training pipeline scores a fresh model on a per-user temporal split
(recsys.evaluation.protocol). Once a model is in production, the question changes to "how well does it do on
what happened since?": the drift checks score the production model on the current window (the outcome
signal: delayed labels), and the retrain pipeline scores champion and challenger on the same most recent
held-out window. Both use this protocol:

- the model knows every interaction before the window (its own history plus `before`, the events between
  its training data and the window, as the service knows them through the event stream), none in it;
- each user active in the window is scored on the distinct items they interacted with in it (every event
  type, as the training protocol does), over the whole catalogue, through `recommend_batch`, the lists the
  service would have shown at the window's start (seen items filtered, cold start for new users).

Known users only see their history; users new in the window are scored on their cold-start list.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from recsys.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from recsys.evaluation.metrics import as_ks, ranking_metrics


@dataclass
class WindowScore:
    """Metrics of one model on one window, and the lists they were computed from."""

    metrics: dict[str, float]
    recommendations: pd.DataFrame  # recommend_batch output (user_id, rank, item_id, score, source, stage)
    truth: pd.DataFrame  # distinct (user_id, item_id) of the window
    n_users: int


def window_truth(window: pd.DataFrame, max_users: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Distinct (user_id, item_id) pairs of the window; a sample of `max_users` users when set (the same
    sample for every model scored with the same seed)."""
    truth = window[[USER_ID, ITEM_ID]].astype(str).drop_duplicates()
    if max_users is not None and truth[USER_ID].nunique() > max_users:
        users = pd.Series(pd.unique(truth[USER_ID])).sample(max_users, random_state=seed)
        truth = truth[truth[USER_ID].isin(set(users))]
    return truth.reset_index(drop=True)


def add_history(recommender, before: pd.DataFrame | None) -> None:
    """Teach a (freshly loaded) recommender the events between its training data and the window, as the
    serving history does: no refit, the models stay as trained."""
    if before is not None and len(before):
        known = before[before[ITEM_ID].astype(str).isin(recommender.catalog.index)]
        recommender.update_history(known.sort_values(TIMESTAMP, kind="stable"))


def score_window(recommender, window: pd.DataFrame, k=10, n_items: int | None = None,
                 item_popularity: pd.Series | None = None, max_users: int | None = None,
                 seed: int = 0) -> WindowScore:
    """Score `recommender` (whose history already ends where the window starts: `add_history`) on the
    window's interactions: metrics @ each k (`ranking_metrics` keys: ndcg@10, hit_rate@10, recall@10 ...)."""
    ks = as_ks(k)
    truth = window_truth(window, max_users, seed)
    if truth.empty:
        raise ValueError("the window has no interactions to score on")
    users = list(pd.unique(truth[USER_ID]))
    recs = recommender.recommend_batch(users, ks[-1])
    metrics = ranking_metrics(recs, truth, ks, n_items, None, item_popularity)
    return WindowScore(metrics, recs, truth, len(users))
