"""Store features per (user, candidate): what RankingFeatures appends when it has a store provider.

User rows are broadcast to the user's candidates, item rows are the candidate's, and two kinds are derived
per pair: the user's windowed share of events on the candidate's attribute values (mean over its values,
e.g. both genres of "Comedy|Drama") and the gap between the candidate's numeric attribute and the user's
windowed mean of it (price affinity: a hotel far above what the user looks at scores a large gap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.history import Catalog
from recsys.features.provider import StoreFeatures


def feature_names(store: StoreFeatures) -> list[str]:
    """The columns `candidate_features` returns, in order."""
    spec = store.spec
    return (store.user_columns_scalar + store.item_columns
            + [f"store_affinity_{a}_{w}d" for a in spec.attributes for w in spec.windows_days]
            + [f"{n}_gap_{w}d" for n in spec.numeric for w in spec.windows_days])


def value_matrix(catalog: Catalog, column: str, vocabulary) -> sp.csr_matrix:
    """Items x vocabulary indicator of each item's values of `column` ("a|b" = both)."""
    index = {v: k for k, v in enumerate(vocabulary)}
    rows, cols = [], []
    if column in catalog.attributes.columns:
        for pos, cell in enumerate(catalog.attributes[column].astype("string").fillna("")):
            for value in str(cell).split("|"):
                k = index.get(value.strip())
                if k is not None:
                    rows.append(pos)
                    cols.append(k)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(catalog), len(vocabulary)))


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)  # None (missing / stale) -> NaN


def _share_matrix(cells: pd.Series, width: int) -> np.ndarray:
    """Users x vocabulary from list cells; NaN rows where the user has no row (or no event in the window)."""
    out = np.full((len(cells), width), np.nan)
    for r, cell in enumerate(cells.to_numpy()):
        if cell is not None and not (isinstance(cell, float) and np.isnan(cell)) and len(cell) == width:
            out[r] = cell
    return out


def candidate_features(store: StoreFeatures, catalog: Catalog, user_ids, ref_time: np.ndarray,
                       u_idx: np.ndarray, pos: np.ndarray, cache: dict | None = None) -> dict[str, np.ndarray]:
    """{column: values per valid (user, candidate) pair}, pairs given by user row `u_idx` and catalogue
    position `pos`. `cache` keeps the attribute indicator matrices between calls (same catalogue size)."""
    spec, cache = store.spec, cache if cache is not None else {}
    users = store.user_features(list(user_ids), ref_time)
    items = store.item_features(catalog.item_ids[pos], ref_time[u_idx])
    out = {}
    for name in store.user_columns_scalar:
        out[name] = _numbers(users[name])[u_idx].astype(np.float32)
    for name in store.item_columns:
        out[name] = _numbers(items[name]).astype(np.float32)
    for column in spec.attributes:
        vocabulary = spec.vocabularies[column]
        key = (column, len(catalog))
        if key not in cache:
            cache[key] = value_matrix(catalog, column, vocabulary)
        onehot = cache[key][pos]
        n_values = np.asarray(onehot.sum(axis=1)).ravel()
        for w in spec.windows_days:
            share = _share_matrix(users[f"user_{column}_share_{w}d"], len(vocabulary))
            known = ~np.isnan(share[:, 0]) if len(vocabulary) else np.zeros(len(share), bool)
            summed = np.asarray(onehot.multiply(np.nan_to_num(share)[u_idx]).sum(axis=1)).ravel()
            value = np.where(known[u_idx] & (n_values > 0), summed / np.maximum(n_values, 1), np.nan)
            out[f"store_affinity_{column}_{w}d"] = value.astype(np.float32)
    for column in spec.numeric:
        item_value = pd.to_numeric(catalog.attributes[column], errors="coerce").to_numpy(np.float64) \
            if column in catalog.attributes.columns else np.full(len(catalog), np.nan)
        for w in spec.windows_days:
            mean = _numbers(users[f"user_{column}_mean_{w}d"])[u_idx]
            out[f"{column}_gap_{w}d"] = (item_value[pos] - mean).astype(np.float32)
    return out

