"""Vectorised per-list kernels behind `recsys.evaluation.metrics` (private; see that module for definitions).

Every kernel works on "long" arrays: one row per recommended item, a group (list / user) code per row, and
item codes into an array of unique item ids, so 100k users x 100 recommendations never loop in Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID

RANK = "rank"


def long_form(lists) -> tuple[np.ndarray, np.ndarray, int]:
    """(group code per row, item per row, n_groups) from a recs frame or an iterable of lists."""
    if isinstance(lists, pd.DataFrame):
        df = lists.sort_values([USER_ID, RANK], kind="mergesort") if RANK in lists else lists
        codes, uniques = pd.factorize(df[USER_ID])
        return codes, df[ITEM_ID].to_numpy(), len(uniques)
    lists = [list(x) for x in lists]
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    items = np.array([i for x in lists for i in x], dtype=object)
    return np.repeat(np.arange(len(lists)), lengths), items, len(lists)


def unit_rows(features, uniques: np.ndarray, item_ids) -> np.ndarray:
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


def list_diversity(group, codes, uniques, features, n_groups, item_ids=None) -> np.ndarray:
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
        unit = unit_rows(features, uniques, item_ids)
        ok = ~np.isnan(unit[:, 0])[codes] if unit.shape[1] else np.zeros(len(codes), bool)
        g, c = group[ok], codes[ok]  # rows arrive grouped by list, so each chunk holds few runs
        n = np.bincount(g, minlength=n_groups).astype(np.float64)
        sq = np.bincount(g, weights=(unit**2).sum(axis=1)[c], minlength=n_groups)
        sums, unit32 = np.zeros((n_groups, unit.shape[1])), unit.astype(np.float32)
        for start in range(0, len(g), 2**18):  # chunked: never materialise rows x dim at once
            gg, cc = g[start : start + 2**18], c[start : start + 2**18]
            bounds = np.r_[0, np.flatnonzero(np.diff(gg)) + 1]
            np.add.at(sums, gg[bounds], np.add.reduceat(unit32[cc], bounds, axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):  # sum_{i!=j} cos = |S|^2 - sum |u_i|^2
            div = 1.0 - ((sums**2).sum(axis=1) - sq) / (n * (n - 1))
    div[n < 2] = np.nan
    return div


def list_novelty(group, codes, uniques, popularity: pd.Series, n_groups) -> np.ndarray:
    p = popularity[~popularity.index.duplicated()].reindex(uniques).to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = np.where(p > 0, -np.log2(p), np.nan)[codes]
        ok = ~np.isnan(info)
        total = np.bincount(group[ok], weights=info[ok], minlength=n_groups)
        return total / np.bincount(group[ok], minlength=n_groups)  # NaN for lists with no known item


def nanmean(values: np.ndarray) -> float:
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


def rank_within(groups: np.ndarray) -> np.ndarray:
    """1-based position of each row inside its run of equal values of the grouped `groups`."""
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)])) + 1


def id_array(col: pd.Series) -> np.ndarray:
    """Ids are strings (design.md); non-string columns are cast so 1 and "1" cannot silently mismatch."""
    return col.to_numpy() if col.dtype == object else col.astype(str).to_numpy(dtype=object)


def user_rank_order(user_code: np.ndarray, rank: np.ndarray) -> np.ndarray | None:
    """Row order grouping rows by user with ranks ascending, or None when they already are (as
    recommend_batch output is: each user's rows contiguous, in rank order)."""
    if not len(user_code):
        return None
    d_user, d_rank = np.diff(user_code), np.diff(rank)
    runs = 1 + np.count_nonzero(d_user)
    if runs == np.count_nonzero(np.bincount(user_code)) and np.all((d_user != 0) | (d_rank >= 0)):
        return None
    if np.issubdtype(rank.dtype, np.integer):
        low, span = int(rank.min()), int(rank.max()) - int(rank.min()) + 1
        if span * (int(user_code.max()) + 1) < 2**62:  # one int64 key sorts ~2x faster than lexsort
            return np.argsort(user_code * span + (rank - low), kind="stable")
    return np.lexsort((rank, user_code))
