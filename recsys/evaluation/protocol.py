"""Offline evaluation protocol: one table row per model, same metrics, same users, same test set.

Where this sits: the training pipeline's evaluate step (and notebooks / benchmarks) call `evaluate` with the
trained `recsys.serving.Recommender` — the very same object the BentoML service runs — next to baselines
such as `recsys.evaluation.baselines.PopularityRecommender`. Every model is scored only through its
`recommend_batch(user_ids, k)` output, so offline numbers measure exactly what serving would return
(retrieve -> filter -> rank -> re-rank, cold-start fallback included). Metric definitions live in
`recsys.evaluation.metrics`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.evaluation.metrics import as_ks, ranking_metrics

REQUIRED_REC_COLUMNS = (USER_ID, "rank", ITEM_ID)


def evaluate(
    recommenders: Mapping[str, object],
    test: pd.DataFrame,
    k: int | Sequence[int] = 10,
    n_items: int | None = None,
    item_categories: pd.Series | pd.DataFrame | None = None,
    users: Iterable[str] | None = None,
    item_popularity: pd.Series | None = None,
    exclude: pd.DataFrame | None = None,
    return_recommendations: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Score each recommender on the test interactions; one row per model (index "model"), input order.
    With `return_recommendations`, (table, {model: the lists it was scored on}) for a closer look
    (recsys.evaluation.analysis).

    Each recommender gets `recommend_batch(user_list, max(k))`, where user_list is the distinct test users
    (first-appearance order) or, when `users` is given, those users; metrics average over the listed users
    that have test interactions (users without test interactions have no ground truth and are not scored).
    Columns are the keys of `ranking_metrics` ("ndcg@10", "recall@10", ..., "coverage@10" when n_items is
    given, "diversity@10" when item_categories is given, "novelty@10" when item_popularity is given).

    `exclude` (user_id, item_id rows, e.g. the validation interactions when the models' history is train)
    masks those items from every list: passed as `recommend_batch(..., exclude=exclude)` when the method
    takes it, otherwise by asking for max(k) + the most masked items any user has and dropping them; any
    masked pair still returned is dropped either way, so every model is scored under the same mask.
    """
    ks = as_ks(k)
    missing = {USER_ID, ITEM_ID} - set(test.columns)
    if missing:
        raise ValueError(f"test is missing column(s) {sorted(missing)}")
    truth = test[[USER_ID, ITEM_ID]]
    if users is None:
        user_list = [str(u) for u in pd.unique(truth[USER_ID])]
    else:
        user_list = [str(u) for u in pd.unique(np.asarray(list(users), dtype=object))]
        truth = truth[truth[USER_ID].isin(user_list)]
    if truth.empty:
        raise ValueError("no test interactions for the users to evaluate")

    mask = None
    if exclude is not None and len(exclude):
        mask = exclude[[USER_ID, ITEM_ID]].astype(str)
        mask = mask[mask[USER_ID].isin(user_list)].drop_duplicates()
    rows: dict[str, dict[str, float]] = {}
    lists: dict[str, pd.DataFrame] = {}
    for name, model in recommenders.items():
        recommend_batch = getattr(model, "recommend_batch", None)
        if not callable(recommend_batch):
            raise TypeError(f"recommender {name!r} has no recommend_batch(user_ids, k) method")
        recs = _recommend(recommend_batch, user_list, ks[-1], mask)
        if not isinstance(recs, pd.DataFrame):
            kind = type(recs).__name__
            raise TypeError(f"recommender {name!r}.recommend_batch returned {kind}, not a DataFrame")
        absent = [c for c in REQUIRED_REC_COLUMNS if c not in recs.columns]
        if absent:
            raise ValueError(f"recommender {name!r}.recommend_batch output lacks column(s) {absent}")
        if mask is not None and len(mask):
            pairs = pd.MultiIndex.from_arrays([recs[USER_ID].astype(str), recs[ITEM_ID].astype(str)])
            recs = recs[~pairs.isin(pd.MultiIndex.from_frame(mask))]
        rows[name] = ranking_metrics(recs, truth, ks, n_items, item_categories, item_popularity)
        if return_recommendations:
            lists[name] = recs
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return (table, lists) if return_recommendations else table


def _recommend(recommend_batch: Callable, users: list, k: int, mask: pd.DataFrame | None) -> pd.DataFrame:
    if mask is None or not len(mask):
        return recommend_batch(users, k)
    try:
        params = list(inspect.signature(recommend_batch).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: use the over-ask-and-drop route
        params = []
    if any(p.name == "exclude" or p.kind is p.VAR_KEYWORD for p in params):
        return recommend_batch(users, k, exclude=mask)
    return recommend_batch(users, k + int(mask.groupby(USER_ID).size().max()))


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """Markdown table of an `evaluate` result (numbers with `digits` decimals) for printing and logs."""
    cols = [str(c) for c in df.columns]
    lines = [
        "| " + " | ".join([str(df.index.name or "model"), *cols]) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, row in df.iterrows():
        cells = [
            f"{v:.{digits}f}" if isinstance(v, (float, int, np.floating, np.integer)) else str(v) for v in row
        ]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines)
