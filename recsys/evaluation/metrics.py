"""Offline ranking metrics: exactly what the README's quality table means.

Where this sits: `recsys.evaluation.protocol.evaluate` asks each recommender (the very same
`recsys.serving.Recommender` object the BentoML service runs, or a baseline such as
`recsys.evaluation.baselines.PopularityRecommender`) for `recommend_batch(users, k)` and scores the returned
frame against held-out test interactions with `ranking_metrics`. The per-user functions below are the
reference definitions; `ranking_metrics` is their vectorised equivalent (the tests check that they agree).

Per user, with ranked list r_1..r_n, relevant set R and "hits" = relevant items in the top k positions:
- precision@k = hits / k  (k even when the list is shorter: a short list is penalised)
- recall@k    = hits / |R|
- hit@k       = 1 if hits > 0 else 0
- mrr@k       = 1 / rank of the first hit, 0 if no hit in the top k
- ndcg@k      = DCG / IDCG with binary gains: DCG = sum over hit ranks i of 1 / log2(i + 1);
                IDCG = sum over ranks i = 1..min(|R|, k) of 1 / log2(i + 1)
- map@k       = (1 / min(|R|, k)) * sum over hit ranks i of precision@i   (RecBole's definition)
A repeated item counts once, at its first rank (later copies occupy a slot but never hit). An empty relevant
set scores 0. `ranking_metrics` averages over the users of the truth table; a truth user without
recommendations scores 0 (never dropped). Recommendations for users absent from truth are ignored. Lists:
- catalog_coverage     = distinct recommended items / n_items
- intra_list_diversity = mean over lists of the mean pairwise dissimilarity of the list's items:
  1 - cosine similarity (embeddings) or 1[category_i != category_j] (a categorical Series). Items without
  features are left out; lists with fewer than 2 described items are undefined and left out of the mean.
- novelty              = mean over lists of the mean of -log2 p(i), p(i) = share of users who interacted with i
  (see `item_popularity`); items with unknown or zero popularity are left out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.evaluation._kernels import (
    RANK,
    id_array,
    list_diversity,
    list_novelty,
    long_form,
    nanmean,
    rank_within,
    user_rank_order,
)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def as_ks(k: int | Sequence[int]) -> list[int]:
    """Normalise a cut-off or a sequence of cut-offs to a sorted list of distinct positive ints."""
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks:
        raise ValueError("at least one cut-off k is required")
    return sorted({_check_k(x) for x in ks})


def _hit_flags(recommended: Iterable, relevant: Collection, k: int) -> tuple[list[bool], set]:
    rel, seen, flags = set(relevant), set(), []
    for item in list(recommended)[: _check_k(k)]:
        flags.append(item in rel and item not in seen)
        seen.add(item)
    return flags, rel


def precision_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Hits in the top k / k."""
    flags, _ = _hit_flags(recommended, relevant, k)
    return sum(flags) / k


def recall_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Hits in the top k / |relevant| (0 if nothing is relevant)."""
    flags, rel = _hit_flags(recommended, relevant, k)
    return sum(flags) / len(rel) if rel else 0.0


def hit_rate_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """1.0 if any relevant item is in the top k, else 0.0."""
    flags, _ = _hit_flags(recommended, relevant, k)
    return float(any(flags))


def mrr_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """1 / rank of the first relevant item in the top k (0 if none)."""
    flags, _ = _hit_flags(recommended, relevant, k)
    return next((1.0 / (i + 1) for i, f in enumerate(flags) if f), 0.0)


def ndcg_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """DCG / IDCG with binary gains; IDCG fills min(|relevant|, k) ranks."""
    flags, rel = _hit_flags(recommended, relevant, k)
    dcg = sum(1.0 / np.log2(i + 2) for i, f in enumerate(flags) if f)
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(len(rel), k)))
    return float(dcg / idcg) if idcg else 0.0


def map_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """(1 / min(|relevant|, k)) * sum of precision@i over the hit ranks i <= k (RecBole)."""
    flags, rel = _hit_flags(recommended, relevant, k)
    hit_ranks = [i + 1 for i, f in enumerate(flags) if f]  # the j-th hit at rank r has precision@r = j / r
    return sum(j / r for j, r in enumerate(hit_ranks, start=1)) / min(len(rel), k) if rel else 0.0


def catalog_coverage(recs: pd.DataFrame | Iterable[Sequence], n_items: int) -> float:
    """Distinct recommended items / n_items. `recs` is a frame with an item_id column or a list of lists."""
    if n_items is None or n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items!r}")
    _, items, _ = long_form(recs)
    return len(pd.unique(items)) / n_items


def item_popularity(interactions: pd.DataFrame) -> pd.Series:
    """item_id -> share of users who interacted with the item (the p(i) used by `novelty`)."""
    return interactions.groupby(ITEM_ID)[USER_ID].nunique() / max(interactions[USER_ID].nunique(), 1)


def intra_list_diversity(lists, item_features, item_ids: Sequence | None = None) -> float:
    """Mean over lists of mean pairwise dissimilarity.

    `lists`: a recs frame (user_id, item_id[, rank]) or an iterable of item lists. `item_features`: a pandas
    Series item_id -> category (dissimilarity = different-category rate), a DataFrame indexed by item_id with
    embedding columns, or a 2-D array whose rows are keyed by `item_ids` (or, without `item_ids`, by the
    integer item positions the lists contain); embeddings use 1 - cosine similarity.
    """
    group, items, n_groups = long_form(lists)
    codes, uniques = pd.factorize(items)
    return nanmean(list_diversity(group, codes, np.asarray(uniques), item_features, n_groups, item_ids))


def novelty(lists, popularity: pd.Series) -> float:
    """Mean over lists of mean -log2 p(i); `popularity` is item_id -> p(i) (see `item_popularity`)."""
    group, items, n_groups = long_form(lists)
    codes, uniques = pd.factorize(items)
    return nanmean(list_novelty(group, codes, np.asarray(uniques), popularity, n_groups))


def ranking_metrics(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int | Sequence[int] = 10,
    n_items: int | None = None,
    item_categories: pd.Series | pd.DataFrame | None = None,
    item_popularity: pd.Series | None = None,
) -> dict[str, float]:
    """Average the module's metrics over the users of `truth`, vectorised.

    recs: user_id, rank (1-based; positions are re-derived from the rank order per user, or from row order if
    there is no rank column), item_id; other columns (score, source) are ignored. truth: user_id, item_id
    test interactions (duplicates collapse). Returns, per k, "ndcg@k", "recall@k", "precision@k", "map@k",
    "mrr@k", "hit@k", plus "coverage@k" when n_items is given,
    "diversity@k" when item_categories (Series or embedding DataFrame) is given and "novelty@k" when
    item_popularity is given. Coverage / diversity / novelty use the top-k lists of the truth users only.
    """
    ks = as_ks(k)
    max_k = ks[-1]
    if n_items is not None and n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items!r}")
    for name, df in (("recs", recs), ("truth", truth)):
        if missing := {USER_ID, ITEM_ID} - set(df.columns):
            raise ValueError(f"{name} is missing column(s) {sorted(missing)}")
    truth = truth[[USER_ID, ITEM_ID]].drop_duplicates()
    if truth.empty:
        raise ValueError("truth is empty: there is nothing to evaluate")
    t_user, t_item = id_array(truth[USER_ID]), id_array(truth[ITEM_ID])
    users, t_items = pd.Index(pd.unique(t_user)), pd.Index(pd.unique(t_item))
    n_users, n_t = len(users), np.int64(len(t_items))
    t_code = users.get_indexer(t_user).astype(np.int64)
    n_rel = np.bincount(t_code, minlength=n_users)
    t_keys = t_code * n_t + t_items.get_indexer(t_item)

    r_code = users.get_indexer(id_array(recs[USER_ID])).astype(np.int64)
    rank = recs[RANK].to_numpy() if RANK in recs else np.arange(len(recs))
    r_item = id_array(recs[ITEM_ID])
    if not (keep := r_code >= 0).all():
        r_code, rank, r_item = r_code[keep], rank[keep], r_item[keep]
    if (order := user_rank_order(r_code, rank)) is not None:
        r_code, r_item = r_code[order], r_item[order]
    pos = rank_within(r_code)
    if not (top := pos <= max_k).all():
        r_code, r_item, pos = r_code[top], r_item[top], pos[top]
    codes, uniques = pd.factorize(r_item)
    uniques = np.asarray(uniques, dtype=object)
    tcode = t_items.get_indexer(uniques)[codes] if len(codes) else np.zeros(0, np.int64)
    hit = tcode >= 0
    hit[hit] = pd.Series(r_code[hit] * n_t + tcode[hit]).isin(t_keys).to_numpy()  # hash-based, O(rows)
    hit_rows = np.flatnonzero(hit)  # a repeated item only hits at its first (lowest) position
    hit[hit_rows[pd.Series(r_code[hit_rows] * n_t + tcode[hit_rows]).duplicated().to_numpy()]] = False
    h_user, h_pos = r_code[hit], pos[hit]
    h_rank = rank_within(h_user)  # 1 for a user's first hit, 2 for the second, ...
    disc_cum = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, max_k + 2)))]

    out: dict[str, float] = {}
    for kk in ks:
        m = h_pos <= kk
        u, p = h_user[m], h_pos[m]
        hits = np.bincount(u, minlength=n_users)
        ideal = np.minimum(n_rel, kk)
        first_u, first_i = np.unique(u, return_index=True)
        rr = np.zeros(n_users)
        rr[first_u] = 1.0 / p[first_i]
        dcg = np.bincount(u, weights=1.0 / np.log2(p + 1), minlength=n_users)
        out[f"ndcg@{kk}"] = float(np.mean(dcg / disc_cum[ideal]))
        out[f"recall@{kk}"] = float(np.mean(hits / n_rel))
        out[f"precision@{kk}"] = float(np.mean(hits / kk))
        out[f"map@{kk}"] = float(np.mean(np.bincount(u, weights=h_rank[m] / p, minlength=n_users) / ideal))
        out[f"mrr@{kk}"] = float(rr.mean())
        out[f"hit@{kk}"] = float(np.mean(hits > 0))
        in_k = pos <= kk
        if n_items is not None:
            out[f"coverage@{kk}"] = np.count_nonzero(np.bincount(codes[in_k], minlength=1)) / n_items
        if item_categories is not None:
            div = list_diversity(r_code[in_k], codes[in_k], uniques, item_categories, n_users)
            out[f"diversity@{kk}"] = nanmean(div)
        if item_popularity is not None:
            nov = list_novelty(r_code[in_k], codes[in_k], uniques, item_popularity, n_users)
            out[f"novelty@{kk}"] = nanmean(nov)
    return out
