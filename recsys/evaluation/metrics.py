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

RANK = "rank"


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
    _, items, _ = _long_form(recs)
    return len(pd.unique(items)) / n_items


def item_popularity(interactions: pd.DataFrame) -> pd.Series:
    """item_id -> share of users who interacted with the item (the p(i) used by `novelty`)."""
    return interactions.groupby(ITEM_ID)[USER_ID].nunique() / max(interactions[USER_ID].nunique(), 1)


def _long_form(lists) -> tuple[np.ndarray, np.ndarray, int]:
    """(group code per row, item per row, n_groups) from a recs frame or an iterable of lists."""
    if isinstance(lists, pd.DataFrame):
        df = lists.sort_values([USER_ID, RANK], kind="mergesort") if RANK in lists else lists
        codes, uniques = pd.factorize(df[USER_ID])
        return codes, df[ITEM_ID].to_numpy(), len(uniques)
    lists = [list(x) for x in lists]
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    items = np.array([i for x in lists for i in x], dtype=object)
    return np.repeat(np.arange(len(lists)), lengths), items, len(lists)


def _unit_rows(features, uniques: np.ndarray, item_ids) -> np.ndarray:
    """L2-normalised embedding row per unique item (NaN row when the item has no embedding)."""
    if isinstance(features, pd.DataFrame):
        mat = features[~features.index.duplicated()].reindex(uniques).to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(features, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError("embedding features must be 2-D (n_items x dim)")
        if item_ids is None:  # the lists hold row positions
            pos = pd.to_numeric(pd.Series(uniques), errors="coerce").fillna(-1).to_numpy(np.int64)
        else:
            pos = pd.Index(item_ids).get_indexer(uniques)
        pos[pos >= len(arr)] = -1
        mat = np.vstack([arr, np.full((1, arr.shape[1]), np.nan)])[pos]  # -1 picks the NaN row
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, mat / norms, 0.0 * mat)


def _list_diversity(group, codes, uniques, features, n_groups, item_ids=None) -> np.ndarray:
    """Per-list mean pairwise dissimilarity; NaN for lists with fewer than 2 described items."""
    if isinstance(features, pd.Series):
        cats = features[~features.index.duplicated()].reindex(uniques)
        cat_codes = pd.factorize(cats)[0][codes]  # -1 = no category
        ok = cat_codes >= 0
        g, c = group[ok].astype(np.int64), cat_codes[ok].astype(np.int64)
        n = np.bincount(g, minlength=n_groups).astype(np.float64)
        width = int(c.max()) + 1 if len(c) else 1
        keys, counts = np.unique(g * width + c, return_counts=True)
        same = np.bincount(keys // width, weights=counts * (counts - 1) / 2.0, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            div = 1.0 - same / (n * (n - 1) / 2.0)
    else:
        unit = _unit_rows(features, uniques, item_ids)
        ok = ~np.isnan(unit[:, 0])[codes] if unit.shape[1] else np.zeros(len(codes), bool)
        g, c = group[ok], codes[ok]
        order = np.argsort(g, kind="stable")
        g, c = g[order], c[order]
        n = np.bincount(g, minlength=n_groups).astype(np.float64)
        sq = np.bincount(g, weights=(unit**2).sum(axis=1)[c], minlength=n_groups)
        sums = np.zeros((n_groups, unit.shape[1]))
        for start in range(0, len(g), 1_000_000):  # chunked: never materialise rows x dim at once
            gg, cc = g[start : start + 1_000_000], c[start : start + 1_000_000]
            bounds = np.r_[0, np.flatnonzero(np.diff(gg)) + 1]
            np.add.at(sums, gg[bounds], np.add.reduceat(unit[cc], bounds, axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):  # sum_{i!=j} cos = |S|^2 - sum |u_i|^2
            div = 1.0 - ((sums**2).sum(axis=1) - sq) / (n * (n - 1))
    div[n < 2] = np.nan
    return div


def _list_novelty(group, codes, uniques, popularity: pd.Series, n_groups) -> np.ndarray:
    p = popularity[~popularity.index.duplicated()].reindex(uniques).to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = np.where(p > 0, -np.log2(p), np.nan)[codes]
        ok = ~np.isnan(info)
        total = np.bincount(group[ok], weights=info[ok], minlength=n_groups)
        return total / np.bincount(group[ok], minlength=n_groups)  # NaN for lists with no known item


def _nanmean(values: np.ndarray) -> float:
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


def intra_list_diversity(lists, item_features, item_ids: Sequence | None = None) -> float:
    """Mean over lists of mean pairwise dissimilarity.

    `lists`: a recs frame (user_id, item_id[, rank]) or an iterable of item lists. `item_features`: a pandas
    Series item_id -> category (dissimilarity = different-category rate), a DataFrame indexed by item_id with
    embedding columns, or a 2-D array whose rows are keyed by `item_ids` (or, without `item_ids`, by the
    integer item positions the lists contain); embeddings use 1 - cosine similarity.
    """
    group, items, n_groups = _long_form(lists)
    codes, uniques = pd.factorize(items)
    return _nanmean(_list_diversity(group, codes, np.asarray(uniques), item_features, n_groups, item_ids))


def novelty(lists, popularity: pd.Series) -> float:
    """Mean over lists of mean -log2 p(i); `popularity` is item_id -> p(i) (see `item_popularity`)."""
    group, items, n_groups = _long_form(lists)
    codes, uniques = pd.factorize(items)
    return _nanmean(_list_novelty(group, codes, np.asarray(uniques), popularity, n_groups))


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """1-based position of each row inside its run of equal values of the sorted `groups`."""
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)])) + 1


def _ids(col: pd.Series) -> np.ndarray:
    """Ids are strings (design.md); non-string columns are cast so 1 and "1" cannot silently mismatch."""
    return col.to_numpy() if col.dtype == object else col.astype(str).to_numpy(dtype=object)


def ranking_metrics(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int | Sequence[int] = 10,
    n_items: int | None = None,
    item_categories: pd.Series | pd.DataFrame | None = None,
    item_popularity: pd.Series | None = None,
) -> dict[str, float]:
    """Average the module's metrics over the users of `truth`, vectorised.

    recs: user_id, rank (1-based; positions are re-derived from the rank order per user), item_id, any other
    columns ignored. truth: user_id, item_id test interactions (duplicates collapse). Returns, per k,
    "ndcg@k", "recall@k", "precision@k", "map@k", "mrr@k", "hit@k", plus "coverage@k" when n_items is given,
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
    t_user, t_item = _ids(truth[USER_ID]), _ids(truth[ITEM_ID])
    users, t_items = pd.Index(pd.unique(t_user)), pd.Index(pd.unique(t_item))
    n_users, n_t = len(users), np.int64(len(t_items))
    t_code = users.get_indexer(t_user).astype(np.int64)
    n_rel = np.bincount(t_code, minlength=n_users)
    t_keys = t_code * n_t + t_items.get_indexer(t_item)

    r_code = users.get_indexer(_ids(recs[USER_ID])).astype(np.int64)
    rank = recs[RANK].to_numpy() if RANK in recs else np.arange(len(recs))
    keep = r_code >= 0
    order = np.lexsort((rank[keep], r_code[keep]))
    r_code, r_item = r_code[keep][order], _ids(recs[ITEM_ID])[keep][order]
    pos = _rank_within(r_code)
    top = pos <= max_k
    r_code, r_item, pos = r_code[top], r_item[top], pos[top]
    codes, uniques = pd.factorize(r_item)
    uniques = np.asarray(uniques, dtype=object)
    first = ~pd.Series(r_code * max(len(uniques), 1) + codes).duplicated().to_numpy()
    tcode = t_items.get_indexer(uniques)[codes] if len(codes) else np.zeros(0, np.int64)
    hit = first & (tcode >= 0)
    hit[hit] = np.isin(r_code[hit] * n_t + tcode[hit], t_keys)
    h_user, h_pos = r_code[hit], pos[hit]
    h_rank = _rank_within(h_user)  # 1 for a user's first hit, 2 for the second, ...
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
            div = _list_diversity(r_code[in_k], codes[in_k], uniques, item_categories, n_users)
            out[f"diversity@{kk}"] = _nanmean(div)
        if item_popularity is not None:
            nov = _list_novelty(r_code[in_k], codes[in_k], uniques, item_popularity, n_users)
            out[f"novelty@{kk}"] = _nanmean(nov)
    return out
