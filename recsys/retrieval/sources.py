"""Candidate sources: the first stage of retrieve -> filter -> rank -> re-rank.

Each source scores the catalogue for a batch of users from their histories. The generator (candidates.py)
takes the union of each source's top items as the ranker's candidates, and every source's score at every
candidate becomes a ranking feature, so a candidate found by one source is still judged by all of them.

Sources: `ItemItemSource` (EASE, a closed-form item-item model, applied to a recency-weighted history),
`CoVisitationSource` (items consumed close together in users' sequences), `TwoTowerSource` (the TFRS
model through the Faiss index) and `PopularSource` (trending in a trailing window).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.history import History


class CandidateSource:
    """Interface. `dense_scores` returns float32 [n_users, n_items]; higher is better."""

    name = "source"

    def fit(self, history: History) -> CandidateSource:
        return self

    def dense_scores(self, user_ids, history: History) -> np.ndarray:
        raise NotImplementedError

    def views(self, user_ids, history: History) -> dict[str, np.ndarray]:
        """Extra dense score views used only as ranking features (named "<source>_<view>")."""
        return {}

    def retrieve(self, user_ids, history: History, n: int, exclude: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(positions of each user's n best items skipping `exclude` (users x items, nonzero = skip),
        dense scores over the catalogue for the ranking features)."""
        dense = self.dense_scores(user_ids, history)
        return top_n(dense, n, exclude), dense

    def candidates(self, user_ids, history: History, n: int, exclude: sp.csr_matrix):
        """(`retrieve`'s positions, `scores_at(positions [users, m]) -> float32 [users, m]`): what the
        generator needs. The ranking features read a source's scores only at the candidates, so a source
        that can find its top items without scoring the whole catalogue overrides this."""
        top, dense = self.retrieve(user_ids, history, n, exclude)
        return top, lambda positions: np.take_along_axis(dense, positions, 1)

    # Persistence: the numeric state in one .npz, the settings in JSON.
    def state(self) -> dict[str, np.ndarray]:
        return {}

    def settings(self) -> dict:
        return {}

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {"class": type(self).__name__, "name": self.name, **self.settings()}
        (path / "settings.json").write_text(json.dumps(meta))
        state = self.state()
        sparse = {k: v for k, v in state.items() if sp.issparse(v)}
        for key, value in sparse.items():
            sp.save_npz(path / f"{key}.npz", value.tocsr())
        np.savez(path / "state.npz", **{k: v for k, v in state.items() if k not in sparse})

    @classmethod
    def load(cls, path: Path, **context) -> CandidateSource:
        settings = json.loads((path / "settings.json").read_text())
        klass, name = SOURCES[settings.pop("class")], settings.pop("name")
        source = klass(**settings, **{k: v for k, v in context.items() if k in klass.CONTEXT})
        source.name = name
        arrays = dict(np.load(path / "state.npz", allow_pickle=False))
        for file in path.glob("*.npz"):
            if file.name != "state.npz":
                arrays[file.stem] = sp.load_npz(file)
        source.restore(arrays)
        return source

    CONTEXT: tuple[str, ...] = ()

    def restore(self, arrays: dict) -> None:
        pass


class ItemItemSource(CandidateSource):
    """EASE (Steck, 2019): B = argmin ||X - XB||² + λ||B||², diag(B) = 0, in closed form. Scoring applies B
    to the history weighted by recency of position (exp(-k/decay)), which measured better than both the
    unweighted history and weighting by days on MovieLens-100K. Above `max_items` the model covers only
    the most popular items (the inverse is cubic in the item count)."""

    name = "item_item"

    def __init__(self, l2: float = 500.0, decay: float | None = 10.0, max_items: int = 15_000,
                 views: dict[str, float | None] | None = None):
        self.l2, self.decay, self.max_items = float(l2), decay, int(max_items)
        # Other recency decays of the same model as features: e.g. {"plain": None, "fast": 3} lets the
        # ranker weigh the long-run taste against the last few items (+0.003 NDCG@10 on MovieLens-100K).
        self.view_decays = dict(views or {})
        self.B: np.ndarray | None = None
        self.covered: np.ndarray | None = None  # catalogue positions the model covers

    def fit(self, history: History) -> ItemItemSource:
        X = history.matrix(history.users)
        X.data[:] = 1.0
        counts = np.asarray(X.sum(axis=0)).ravel()
        covered = np.flatnonzero(counts > 0)
        if len(covered) > self.max_items:
            covered = np.sort(np.argsort(-counts)[: self.max_items])
        Xc = X[:, covered]
        gram = (Xc.T @ Xc).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inv = np.linalg.inv(gram)
        B = -inv / np.diag(inv)
        np.fill_diagonal(B, 0.0)
        self.B, self.covered = B.astype(np.float32), covered
        return self

    def dense_scores(self, user_ids, history: History, decay: float | None | str = "default") -> np.ndarray:
        H = history.matrix(user_ids, decay=self.decay if decay == "default" else decay)
        # float32 like B: a float64 sparse @ float32 dense makes scipy upcast (copy) all of B on every call,
        # ~0.25 s for 10k items; the float32 product touches only the history's rows of B.
        H = H.astype(np.float32)
        n = len(history.catalog)
        if len(self.covered) == n and self.covered[-1] == n - 1:  # covers the whole catalogue (sorted)
            return np.asarray(H @ self.B, dtype=np.float32)
        # Columns -> covered rows of B through a lookup array (CSR column slicing costs ~0.2 ms a call).
        cov = getattr(self, "_cov_index", None)
        if cov is None or len(cov) != n:
            cov = np.full(n, -1, dtype=np.int64)
            cov[self.covered] = np.arange(len(self.covered))
            self._cov_index = cov
        col = cov[H.indices]
        keep = col >= 0
        rows = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr))
        indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=H.shape[0]))]
        Hc = sp.csr_matrix((H.data[keep], col[keep], indptr), shape=(H.shape[0], len(self.covered)))
        out = np.zeros((len(user_ids), n), dtype=np.float32)
        out[:, self.covered] = Hc @ self.B
        return out

    def views(self, user_ids, history: History) -> dict[str, np.ndarray]:
        return {name: self.dense_scores(user_ids, history, decay) for name, decay in self.view_decays.items()}

    def settings(self) -> dict:
        return {"l2": self.l2, "decay": self.decay, "max_items": self.max_items, "views": self.view_decays}

    def state(self) -> dict:
        return {"B": self.B, "covered": self.covered}

    def restore(self, arrays: dict) -> None:
        self.B, self.covered = arrays["B"], arrays["covered"]


class CoVisitationSource(CandidateSource):
    """Items consumed within `window` positions of each other in a user's sequence, counted with weight
    1/distance, then normalised per row. Scored from the user's most recent items (decay in positions)."""

    name = "co_visitation"

    def __init__(self, window: int = 5, decay: float = 3.0, top_neighbours: int = 100):
        self.window, self.decay, self.top_neighbours = int(window), float(decay), int(top_neighbours)
        self.C: sp.csr_matrix | None = None

    def fit(self, history: History) -> CoVisitationSource:
        n = len(history.catalog)
        rows, cols, vals = [], [], []
        seqs = [history.items(u) for u in history.users]
        for d in range(1, self.window + 1):
            a = np.concatenate([s[:-d] for s in seqs if len(s) > d] or [np.empty(0, np.int64)])
            b = np.concatenate([s[d:] for s in seqs if len(s) > d] or [np.empty(0, np.int64)])
            rows += [a, b]
            cols += [b, a]
            vals += [np.full(len(a), 1.0 / d)] * 2
        C = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        C.sum_duplicates()
        C.setdiag(0)
        C.eliminate_zeros()
        self.C = _row_normalise(_keep_top(C, self.top_neighbours))
        return self

    def dense_scores(self, user_ids, history: History) -> np.ndarray:
        H = history.matrix(user_ids, decay=self.decay)
        n = self.C.shape[0]
        if H.shape[1] == n:
            return (H @ self.C).toarray().astype(np.float32, copy=False)
        out = np.zeros((len(user_ids), H.shape[1]), dtype=np.float32)  # items added after fitting: 0
        out[:, :n] = (H[:, :n] @ self.C).toarray()
        return out

    def settings(self) -> dict:
        return {"window": self.window, "decay": self.decay, "top_neighbours": self.top_neighbours}

    def state(self) -> dict:
        return {"C": self.C}

    def restore(self, arrays: dict) -> None:
        self.C = arrays["C"].tocsr()


class PopularSource(CandidateSource):
    """Most interacted-with items in the trailing `window_days` before the newest interaction seen in
    training (trending), falling back to all-time counts for items with none in the window."""

    name = "popular"

    def __init__(self, window_days: float = 30.0):
        self.window_days = float(window_days)
        self.counts: np.ndarray | None = None

    def fit(self, history: History) -> PopularSource:
        n = len(history.catalog)
        items, times = history.all_events()
        recent = items[times >= times.max() - self.window_days * 86400]
        alltime = np.bincount(items, minlength=n).astype(np.float32)
        # Trending first; all-time popularity breaks ties and orders items outside the window.
        self.counts = np.bincount(recent, minlength=n).astype(np.float32) + alltime / (alltime.max() + 1)
        return self

    def dense_scores(self, user_ids, history: History) -> np.ndarray:
        counts = _pad(self.counts, len(history.catalog))  # items added after fitting have no count yet
        return np.broadcast_to(counts, (len(user_ids), len(counts))).copy()

    def candidates(self, user_ids, history: History, n: int, exclude: sp.csr_matrix):
        """The same items as top_n over the broadcast counts, from the catalogue's order by count computed
        once: a user's top n are the first n of that order they have not excluded (no per-request scan)."""
        counts = _pad(self.counts, len(history.catalog))
        cached = getattr(self, "_order", None)
        if cached is None or cached[0] is not self.counts or len(cached[1]) != len(counts):
            cached = self._order = (self.counts, top_n(counts[None, :], len(counts))[0])
        order = cached[1]
        n = min(n, len(counts))
        out = np.full((len(user_ids), n), -1, dtype=np.int64)
        for r in range(len(user_ids)):
            skip = exclude.indices[exclude.indptr[r]:exclude.indptr[r + 1]] if exclude is not None else ()
            head = order[: n + len(skip)]
            keep = head[~np.isin(head, skip)][:n] if len(skip) else head[:n]
            out[r, : len(keep)] = keep
        return out, lambda positions: counts[positions]

    def settings(self) -> dict:
        return {"window_days": self.window_days}

    def state(self) -> dict:
        return {"counts": self.counts}

    def restore(self, arrays: dict) -> None:
        self.counts = arrays["counts"]


class TwoTowerSource(CandidateSource):
    """The TFRS two-tower model: user vector from id, side features and recent history; top items through
    the Faiss index (exact or HNSW by catalogue size); feature scores by exact inner product."""

    name = "two_tower"
    CONTEXT = ("model", "index")

    def __init__(self, model=None, index=None, history_length: int = 50):
        self.model, self.index, self.history_length = model, index, int(history_length)
        self._item_rows: np.ndarray | None = None
        self._position_of_row: np.ndarray | None = None

    def fit(self, history: History) -> TwoTowerSource:
        return self

    def _rows(self, history: History) -> np.ndarray:
        """Catalogue position -> row of the model's item embeddings (-1 if the model lacks the item)."""
        if self._item_rows is None or len(self._item_rows) != len(history.catalog):
            row = {item: r for r, item in enumerate(self.model.item_ids)}
            self._item_rows = np.array([row.get(i, -1) for i in history.catalog.item_ids])
            self._position_of_row = None
        return self._item_rows

    def user_vectors(self, user_ids, history: History) -> np.ndarray:
        ids = history.catalog.item_ids
        seqs = [list(ids[history.items(u)[-self.history_length:]]) for u in user_ids]
        return self.model.user_embeddings(list(user_ids), seqs)

    def _by_position_vectors(self, history: History):
        """(model embeddings it was built from, catalogue-aligned item vectors (kept once, not gathered per
        call), positions the model lacks)."""
        rows = self._rows(history)
        cached = getattr(self, "_by_position", None)
        if cached is None or cached[0] is not self.model.item_embeddings or len(cached[1]) != len(rows):
            emb = np.zeros((len(rows), self.model.item_embeddings.shape[1]), dtype=self.model.item_embeddings.dtype)
            emb[rows >= 0] = self.model.item_embeddings[rows[rows >= 0]]
            cached = self._by_position = (self.model.item_embeddings, emb, np.flatnonzero(rows < 0))
        return cached

    def _catalog_scores(self, vectors: np.ndarray, history: History) -> np.ndarray:
        """vectors x catalogue-aligned item vectors; -inf where the model lacks the item."""
        _, emb, lacking = self._by_position_vectors(history)
        out = (vectors @ emb.T).astype(np.float32, copy=False)
        if len(lacking):
            out[:, lacking] = -np.inf
        return out

    def dense_scores(self, user_ids, history: History) -> np.ndarray:
        return self._catalog_scores(self.user_vectors(user_ids, history), history)

    def retrieve(self, user_ids, history: History, n: int, exclude: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Top items come from the Faiss index (exact or HNSW); dense scores by inner product."""
        vectors = self.user_vectors(user_ids, history)
        dense = self._catalog_scores(vectors, history)
        if self.index is None:
            return top_n(dense, n, exclude), dense
        return self._search(vectors, history, n, exclude), dense

    def _search(self, vectors: np.ndarray, history: History, n: int, exclude: sp.csr_matrix) -> np.ndarray:
        rows = self._rows(history)
        position_of_row = getattr(self, "_position_of_row", None)  # absent on objects pickled before it
        if position_of_row is None or len(position_of_row) != len(self.model.item_ids):
            position_of_row = np.full(len(self.model.item_ids), -1)
            position_of_row[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
            self._position_of_row = position_of_row
        extra = int(np.diff(exclude.indptr).max(initial=0))
        _, found = self.index.search(vectors, n + extra)
        out = np.full((len(vectors), n), -1, dtype=np.int64)
        for r, hits in enumerate(position_of_row[found]):
            seen = exclude.indices[exclude.indptr[r]:exclude.indptr[r + 1]]
            keep = hits[(hits >= 0) & ~np.isin(hits, seen)][:n]
            out[r, : len(keep)] = keep
        return out

    def candidates(self, user_ids, history: History, n: int, exclude: sp.csr_matrix):
        """Top items from the Faiss index; scores only at the candidates (a dot product each), not over the
        catalogue. Without an index (or when exclusions outnumber a tenth of the catalogue, e.g. a narrow
        context pushed into retrieval), `retrieve`'s exact scan."""
        if self.index is None or int(np.diff(exclude.indptr).max(initial=0)) > len(history.catalog) // 10:
            return super().candidates(user_ids, history, n, exclude)
        vectors = self.user_vectors(user_ids, history)
        top = self._search(vectors, history, n, exclude)
        _, emb, lacking = self._by_position_vectors(history)

        def scores_at(positions: np.ndarray) -> np.ndarray:
            out = np.einsum("ud,umd->um", vectors, emb[positions]).astype(np.float32, copy=False)
            if len(lacking):
                out[np.isin(positions, lacking)] = -np.inf
            return out

        return top, scores_at

    def settings(self) -> dict:
        return {"history_length": self.history_length}

    # ---- serving helpers: content-based cold start, similar items, catalogue growth ----
    def item_vectors(self, catalog) -> np.ndarray:
        """Catalogue-aligned item vectors (zeros for items the model lacks)."""
        rows = self._rows(SimpleNamespace(catalog=catalog))
        out = np.zeros((len(rows), self.model.item_embeddings.shape[1]), dtype=np.float32)
        out[rows >= 0] = self.model.item_embeddings[rows[rows >= 0]]
        return out

    @property
    def user_attributes(self) -> list[str]:
        """User attributes the user tower reads (what a cold-start request can describe itself by)."""
        return [spec["name"] for spec in self.model.specs["user"]]

    def attribute_vectors(self, attributes: list[dict]) -> np.ndarray:
        """User vectors from attributes alone (unknown id, empty history): content-based matches for a user
        the model has never seen, e.g. a visitor who told us their home region. Attributes the tower does
        not know encode as missing."""
        from recsys.retrieval import _towers as tw

        model, n = self.model, len(attributes)
        feats = tw.encode(pd.DataFrame(attributes, index=range(n)), model.specs["user"])
        hist = np.zeros((n, model.config.history_length), np.int32) if model.config.history_length else None
        return tw.tower(tw.NP, model.weights, "user", model.specs["user"], model.config,
                        np.zeros(n, np.int64), feats, hist)

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Give new catalogue items attribute-based vectors (TwoTowerModel.embed_items, no retraining) and
        add them to the ANN index so they can be retrieved. Returns the new items' vectors."""
        before = len(self.model.item_ids)
        self.model.add_items(items)
        new = self.model.item_embeddings[before:]
        if self.index is not None and len(new):
            self.index.add(new, self.model.item_ids[before:])
        self._item_rows = self._position_of_row = None
        return new


def top_n(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Positions of each row's n largest scores, best first; excluded or -inf entries come back as -1."""
    scores = scores.copy()
    if exclude is not None and exclude.nnz:
        if sp.isspmatrix_csr(exclude) and exclude.has_canonical_format and (exclude.data != 0).all():
            # the CSR arrays directly: .nonzero() builds a COO copy (~50 us a call, per request per source)
            rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
            scores[rows, exclude.indices] = -np.inf
        else:
            scores[exclude.nonzero()] = -np.inf
    n = min(n, scores.shape[1])
    if n <= 0:  # a source used only for its scores (features), proposing nothing
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    if scores.shape[0] == 1:  # one request: the same operations on the row, without the 2-d index helpers
        neg = -scores[0]
        part = np.argpartition(neg, n - 1)[:n]
        top = part[np.argsort(neg[part], kind="stable")]
        top[~np.isfinite(neg[top])] = -1
        return top[None, :]
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, 1)
    top[~np.isfinite(np.take_along_axis(scores, top, 1))] = -1
    return top


def _keep_top(C: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries."""
    C = C.tocsr()
    rows, cols, vals = [], [], []
    for r in range(C.shape[0]):
        lo, hi = C.indptr[r], C.indptr[r + 1]
        if hi - lo > k:
            keep = lo + np.argpartition(-C.data[lo:hi], k - 1)[:k]
        else:
            keep = np.arange(lo, hi)
        rows.append(np.full(len(keep), r))
        cols.append(C.indices[keep])
        vals.append(C.data[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=C.shape)


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    return values if len(values) >= n else np.r_[values, np.zeros(n - len(values), values.dtype)]


def _row_normalise(C: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(C.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)) @ C


SOURCES = {cls.__name__: cls for cls in (ItemItemSource, CoVisitationSource, PopularSource, TwoTowerSource)}

