"""Ranking features: what the learning-to-rank stage sees for each (user, candidate) pair.

Built from three places, all known at the user's reference time (their latest interaction), so the same
code serves training (history before the labels), offline evaluation and the live service:
- the candidate sources' scores, their rank and their ratio to the user's best candidate;
- item statistics: all-time and trailing-window popularity at the reference time, days since first and
  last seen, numeric attributes (year, stars, price tier ...);
- user x item affinity: the recency-weighted share of the user's history sharing each categorical value of
  the candidate (genre, destination, category ...), plus the user's activity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.history import Catalog, History
from recsys.retrieval.candidates import Candidates

DAY = 86400.0


class RankingFeatures:
    def __init__(self, windows_days=(7, 30, 90), affinity_decay: float = 10.0, max_categories: int = 200,
                 store=None):
        # Optional Feast features (recsys.features.provider.StoreFeatures): point-in-time in training,
        # online in serving; None = the in-memory features only (no Feast needed).
        self.store = store
        self._store_cache: dict = {}
        self.windows_days = tuple(float(d) for d in windows_days)
        self.affinity_decay = float(affinity_decay)
        self.max_categories = int(max_categories)
        self.numeric: list[str] = []
        self.categorical: dict[str, list[str]] = {}
        self.source_names: list[str] = []

    # ---- fitting: item statistics and attribute encodings from the training history ----
    def fit(self, history: History, source_names: list[str]) -> RankingFeatures:
        catalog = history.catalog
        self.source_names = list(source_names)
        items, times = history.all_events()
        self._set_item_times(items, times, len(catalog))
        attrs = catalog.attributes
        self.numeric = [c for c in attrs.columns if pd.api.types.is_numeric_dtype(attrs[c])]
        self.categorical = {}
        for col in attrs.columns:
            if col in self.numeric or col in ("title", "name"):
                continue
            values = attrs[col].dropna().astype(str).str.split("|").explode()
            top = values.value_counts().index[: self.max_categories]
            if 1 < len(top) and values.nunique() < 0.5 * len(catalog) + 2:  # skip free text / ids
                self.categorical[col] = sorted(top)
        self._build_matrices(catalog)
        return self

    def _set_item_times(self, items: np.ndarray, times: np.ndarray, n_items: int) -> None:
        # (item, time) keys sorted once: a windowed count for any (item, reference time) is two searchsorted.
        # Keys are item * 1e10 + seconds since the first event: exact in float64 up to ~900k items.
        self._t0 = float(times.min())
        order = np.lexsort((times, items))
        self._keys = items[order].astype(np.float64) * 1e10 + (times[order] - self._t0)
        self._first = np.full(n_items, np.nan)
        self._last = np.full(n_items, np.nan)
        np.fmin.at(self._first, items, times)
        np.fmax.at(self._last, items, times)
        self._count = np.bincount(items, minlength=n_items).astype(np.float32)

    def _build_matrices(self, catalog: Catalog) -> None:
        attrs = catalog.attributes
        self._onehot = {}
        for col, values in self.categorical.items():
            index = {v: k for k, v in enumerate(values)}
            rows, cols = [], []
            for pos, cell in enumerate(attrs[col].astype("string").fillna("")):
                for v in str(cell).split("|"):
                    if v in index:
                        rows.append(pos)
                        cols.append(index[v])
            m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(catalog), len(values)))
            self._onehot[col] = m
        self._numeric = attrs[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        # Single-valued columns (every item has at most one value) also as value codes: the affinity of a
        # candidate is then one gather instead of a sparse row product (same numbers, ~10x cheaper).
        self._codes = {}
        for col, m in self._onehot.items():
            counts = np.diff(m.indptr)
            if counts.max(initial=0) <= 1 and (m.data == 1).all():
                codes = np.full(m.shape[0], -1, dtype=np.int64)
                rows = np.flatnonzero(counts)
                codes[rows] = m.indices[m.indptr[rows]]
                self._codes[col] = codes

    def extend_catalog(self, catalog: Catalog) -> None:
        """Items added to the catalogue after fitting (serving: Recommender.add_items) get their attribute
        encodings and no statistics (zero counts, unknown first/last time) until the next fit."""
        pad = len(catalog) - len(self._count)
        if pad > 0:
            self._first = np.r_[self._first, np.full(pad, np.nan)]
            self._last = np.r_[self._last, np.full(pad, np.nan)]
            self._count = np.r_[self._count, np.zeros(pad, np.float32)]
        self._build_matrices(catalog)

    def windowed_count(self, positions: np.ndarray, ref: np.ndarray, days: float) -> np.ndarray:
        return self.windowed_counts(positions, ref, [days])[0]

    def windowed_counts(self, positions: np.ndarray, ref: np.ndarray, windows) -> list[np.ndarray]:
        """Events on each item in (ref - days, ref], per window: the upper bound is searched once for all."""
        base = positions.astype(np.float64) * 1e10 - self._t0
        ref = np.clip(ref, self._t0, None)
        upper = base + ref
        # Sorted queries: numpy's binary search starts from the previous hit, far fewer cache misses.
        order = np.argsort(upper, kind="stable")
        hi = np.empty(len(upper), np.int64)
        hi[order] = np.searchsorted(self._keys, upper[order], side="right")
        out = []
        for days in windows:
            lower = base + np.clip(ref - days * DAY, self._t0, None)
            lo = np.empty(len(upper), np.int64)
            lo[order] = np.searchsorted(self._keys, lower[order], side="left")  # same order: lower <= upper
            out.append((hi - lo).astype(np.float32))
        return out

    # ---- transform: one row per valid (user, candidate) ----
    def transform(self, cands: Candidates, history: History, ref_time: np.ndarray | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.columns(cands, history, ref_time))

    def transform_array(self, cands: Candidates, history: History, ref_time: np.ndarray | None = None,
                        names: list[str] | None = None) -> np.ndarray:
        """The same features as a float64 [rows, features] array in `names` order (default: transform's
        column order): the serving path, which skips building a DataFrame per request."""
        f = self.columns(cands, history, ref_time)
        names = list(f) if names is None else names
        if not len(names):
            return np.empty((int(cands.valid.sum()), 0))
        return np.column_stack([np.asarray(f[n], dtype=np.float64) for n in names])

    def columns(self, cands: Candidates, history: History, ref_time: np.ndarray | None = None) -> dict:
        """Feature name -> values, one per valid candidate: the one computation behind `transform` and
        `transform_array` (extend this to add features so both paths see them)."""
        valid = cands.valid
        u_idx, c_idx = np.nonzero(valid)
        pos = cands.positions[u_idx, c_idx]
        if ref_time is None:
            ref_time = history.last_time(cands.user_ids)
        ref_time = np.where(np.isnan(ref_time), np.nanmax(self._last), ref_time)
        ref = ref_time[u_idx]
        f: dict[str, np.ndarray] = {}
        for name in self.source_names:
            s = cands.scores[name]
            filled = np.where(np.isnan(s), -np.inf, s)
            rank = np.argsort(np.argsort(-filled, axis=1, kind="stable"), axis=1).astype(np.float32)
            best = np.nanmax(np.where(valid, s, np.nan), axis=1, keepdims=True)
            f[f"{name}_score"] = s[u_idx, c_idx]
            f[f"{name}_rank"] = rank[u_idx, c_idx]
            f[f"{name}_rel"] = (s / np.where(np.abs(best) > 1e-12, best, 1.0))[u_idx, c_idx]
        by = cands.proposed_by[u_idx, c_idx]
        f["n_sources"] = sum((by >> k) & 1 for k in range(len(self.source_names))).astype(np.float32)
        f["candidate_order"] = c_idx.astype(np.float32)
        f["pop_all"] = self._count[pos]
        for d, counts in zip(self.windows_days, self.windowed_counts(pos, ref, self.windows_days)):
            f[f"pop_{int(d)}d"] = counts
        f["days_since_first"] = (ref - self._first[pos]) / DAY
        f["days_since_last"] = (ref - self._last[pos]) / DAY
        for k, col in enumerate(self.numeric):
            f[f"item_{col}"] = self._numeric[pos, k]
        H = history.matrix(cands.user_ids, decay=self.affinity_decay)
        # Row-normalised history from the CSR arrays (scipy's diags @ H and .sum cost ~0.1 ms each per call).
        h_rows = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr))
        row_sum = np.bincount(h_rows, weights=H.data, minlength=H.shape[0])
        h_share = H.data * (1.0 / np.maximum(row_sum, 1e-12))[h_rows]
        Hn = None
        codes_of = getattr(self, "_codes", {})
        for col, onehot in self._onehot.items():
            codes = codes_of.get(col)
            if codes is not None:  # single-valued: share of each value in one scatter-add, then one gather
                share = np.zeros((H.shape[0], onehot.shape[1]))
                hc = codes[H.indices]
                np.add.at(share, (h_rows[hc >= 0], hc[hc >= 0]), h_share[hc >= 0])
                c = codes[pos]
                value = np.where(c >= 0, share.astype(np.float32)[u_idx, np.maximum(c, 0)], 0).astype(np.float64)
                f[f"affinity_{col}"], f[f"affinity_{col}_max"] = value, value.copy()
                continue
            if Hn is None:
                Hn = sp.csr_matrix((h_share, H.indices, H.indptr), shape=H.shape)
            share = np.asarray((Hn @ onehot).todense(), dtype=np.float32)  # users x values
            item_vals = onehot[pos]
            per_value = item_vals.multiply(share[u_idx]).tocsr()
            n_vals = np.maximum(np.asarray(item_vals.sum(axis=1)).ravel(), 1)
            f[f"affinity_{col}"] = np.asarray(per_value.sum(axis=1)).ravel() / n_vals
            f[f"affinity_{col}_max"] = per_value.max(axis=1).toarray().ravel()
        lengths = np.array([len(history.items(u)) for u in cands.user_ids], dtype=np.float32)
        f["user_history_len"] = lengths[u_idx]
        f["user_mean_pop"] = np.array([self._count[history.items(u)].mean() if len(history.items(u)) else 0
                                       for u in cands.user_ids], np.float32)[u_idx]
        store = getattr(self, "store", None)  # (models pickled before store features existed have none)
        if store is not None:  # windowed Feast features as of the same reference times
            from recsys.features.assemble import candidate_features

            f.update(candidate_features(store, history.catalog, cands.user_ids, ref_time, u_idx, pos,
                                        self.__dict__.setdefault("_store_cache", {})))
        return f

    # ---- persistence ----
    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        store = getattr(self, "store", None)
        meta = {"windows_days": self.windows_days, "affinity_decay": self.affinity_decay,
                "max_categories": self.max_categories, "numeric": self.numeric,
                "categorical": self.categorical, "source_names": self.source_names,
                # how to re-open the store features offline, and the spec the ranker was trained on
                "store": store.describe() if store is not None else None,
                "store_spec": store.spec.to_dict() if store is not None else None}
        (path / "features.json").write_text(json.dumps(meta))
        np.savez(path / "item_stats.npz", t0=self._t0, keys=self._keys, first=self._first, last=self._last, count=self._count)

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> RankingFeatures:
        path = Path(path)
        meta = json.loads((path / "features.json").read_text())
        out = cls(meta["windows_days"], meta["affinity_decay"], meta["max_categories"])
        out.numeric, out.categorical, out.source_names = meta["numeric"], meta["categorical"], meta["source_names"]
        if meta.get("store"):  # re-opened lazily: loading a model touches no feature store
            from recsys.features.definitions import FeatureSpec
            from recsys.features.provider import provider_from_description

            out.store = provider_from_description(meta["store"], FeatureSpec.from_dict(meta["store_spec"]))
        stats = np.load(path / "item_stats.npz")
        out._t0 = float(stats["t0"])
        out._keys, out._first, out._last, out._count = stats["keys"], stats["first"], stats["last"], stats["count"]
        out._build_matrices(catalog)
        return out
