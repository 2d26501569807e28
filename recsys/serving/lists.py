"""Retrieve -> rank, with the cache: each known user's ranked candidates (the cacheable half of a list).

A personal list is retrieve -> rank -> filter -> re-rank -> explain. The first two stages depend only on the
models and the user's history (sources score from it, the seen filter masks it, the ranking features read it,
item statistics fixed at fit time) and, for a ranker with Feast store features, the user's online row; so
their result -- every candidate of the user, ranked -- is computed once and kept (`RankedLists`, over a
`recsys.serving.ranked.RankedCache`) until one of those changes. The request-time stages then only remove
items and re-rank what remains: this is not a response cache.

Each list is stamped with what it was computed from: the models' epoch, the user's history length (histories
only grow, so any new event moves it -- including the events the online state applies from the store or the
event log, recsys/serving/state.py), and the store-feature row the state sync read for this request. A stale
stamp is a miss, so a list computed before the user's latest event is never served.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.serving.ranked import Ranked, RankedCache

UNCACHEABLE = object()  # stamp part of a list computed from state the cache cannot check: never stored


class RankedLists:
    """The retrieve + rank stage and the cache of its results. `seen(user)` gives the sorted positions
    retrieval skips (the filter stage's seen policy); `scorer` scores feature rows natively (the compiled
    ranker) or is None; `contributions` (the explainer's decision-path tables) can score from leaf indices
    so the same leaves explain the list later."""

    def __init__(self, catalog, generator, ranking, history, config: dict, seen, scorer, contributions,
                 cache: RankedCache, epoch: list):
        self.catalog, self.generator, self.ranking, self.history = catalog, generator, ranking, history
        self.config, self.seen, self.scorer, self.contributions = config, seen, scorer, contributions
        self.cache, self._epoch = cache, epoch  # the epoch is shared with variants (one list [n])

    @property
    def models_epoch(self) -> int:
        return self._epoch[0]

    def models_changed(self) -> None:
        """The models changed in place: every list of this Recommender and its variants is stale."""
        self._epoch[0] += 1
        self.cache.clear()

    def stamps(self, users, store_stamps) -> list:
        """What each user's list is computed from (see the module docstring)."""
        epoch, items = self._epoch[0], self.history.items
        return [(epoch, len(items(u)), s) for u, s in zip(users, store_stamps)]

    def ranked(self, users, store_stamps, timer: dict, keep_rows: bool = False, prepare=None) -> list[Ranked]:
        """Each user's ranked candidates: from the cache when its stamp is current, else computed in batches
        of `batch_size` and cached; `keep_rows` leaves the feature rows on computed lists for the request to
        explain from (`Ranked.pending`). `prepare(users, lists)` runs on computed lists before they are
        cached (the warm-up explains them there)."""
        stamps = self.stamps(users, store_stamps)
        cache = self.cache
        out = [cache.get(u, st) for u, st in zip(users, stamps)]
        missing = [r for r, e in enumerate(out) if e is None]
        cache.counts["hits"] += len(users) - len(missing)
        cache.counts["misses"] += len(missing)
        size = self.config["batch_size"]
        for start in range(0, len(missing), size):
            block = missing[start:start + size]
            epoch = cache.epoch
            entries = self.compute([users[r] for r in block], [self.seen(users[r]) for r in block], timer,
                                   [stamps[r] for r in block], keep_rows)
            if prepare is not None:
                prepare([users[r] for r in block], entries)
            self.store([users[r] for r in block], entries, epoch)
            for r, entry in zip(block, entries):
                out[r] = entry
        return out

    def store(self, users, entries, epoch: int) -> None:
        """Keep computed lists (those computed while the cache was at `epoch`; never an uncacheable one)."""
        for user, entry in zip(users, entries):
            if entry.stamp is not None and entry.stamp[2] is not UNCACHEABLE:
                self.cache.put(user, entry, epoch)

    def keep_page(self, user: str, entry: Ranked, page) -> None:
        """Remember the page served from a cached list (recsys.serving.rerank.Pages) and recount its size."""
        entry.page = page
        self.cache.resize(user, entry)

    def fallback(self, users, pushed, timer: dict, keep_rows: bool) -> list[Ranked]:
        """Lists computed past a request's filters (`pushed`: the positions it removes), for users whose
        cached list the filters left short: not cached, they depend on the request."""
        self.cache.counts["fallbacks"] += len(users)
        return self.compute(users, pushed, timer, keep_rows=keep_rows)

    def feature_rows(self, user: str, exclusions: np.ndarray):
        """A cached list's feature rows (`Ranked.pending`) computed again, to explain from: the same user,
        exclusions and stamp give the same list, and only the rows are kept."""
        return self.compute([user], [exclusions], {}, keep_rows=True)[0].pending

    def compute(self, users: list[str], exclusions: list[np.ndarray], timer: dict, stamps: list | None = None,
                keep_rows: bool = False) -> list[Ranked]:
        """Retrieve (skipping each user's `exclusions`, sorted unique positions) and rank, for many users in
        one pass; `keep_rows` leaves the feature rows on each list (`pending`)."""
        history, started = _OnePass(self.history), time.perf_counter()
        cands = self.generator.generate(users, history, exclusion_matrix(exclusions, len(self.catalog)))
        valid, X, leaves = cands.valid, None, None
        ranking = lap(timer, "retrieve", started)
        if not valid.any():  # nothing left to rank (filters pushed into retrieval can exclude everything)
            scores = np.full(valid.shape, -np.inf)
        elif self.ranking is not None and self.config["rank"]:
            features, ranker = self.ranking.features, self.ranking.ranker
            if hasattr(features, "transform_array"):  # numpy all the way: no DataFrame per request
                X = features.transform_array(cands, history, names=ranker.feature_names)
            else:  # a plugged-in feature provider with only the DataFrame interface
                X = features.transform(cands, history)
            scores = np.full(valid.shape, -np.inf)
            paths = self.contributions
            if self.scorer is not None and not isinstance(X, pd.DataFrame) and len(X):
                scores[valid] = self.scorer(X)  # native-code forest (compiled.py)
            elif paths is not None and paths.tabulated and not isinstance(X, pd.DataFrame) and len(X):
                leaves = paths.leaves(X)  # one pass gives the scores and, later, the explanations
                scores[valid] = paths.score(leaves)
            else:
                scores[valid] = ranker.predict(X) if len(X) else []
        else:
            s = cands.scores[self.config["score_source"] or self.generator.sources[0].name]
            scores = np.where(valid & ~np.isnan(s), s, -np.inf)
        lap(timer, "rank", ranking, int(valid.sum()))
        row_of = np.full(valid.shape, -1)
        row_of[valid] = np.arange(int(valid.sum()))
        # origin: index of the lowest set bit of proposed_by (the first source that proposed the item)
        bits = cands.proposed_by
        origin_all = np.zeros(bits.shape, dtype=np.int8)
        for k in range(len(self.generator.sources) - 1, -1, -1):
            origin_all[(bits >> k) & 1 == 1] = k
        dtype = np.int32 if len(self.catalog) < 2**31 else np.int64
        out = []
        for r in range(len(users)):
            ok = np.flatnonzero(valid[r] & np.isfinite(scores[r]))
            order = ok[np.argsort(-scores[r, ok], kind="stable")]  # ties keep the proposal order
            entry = Ranked(cands.positions[r, order].astype(dtype), scores[r, order], origin_all[r, order],
                           stamps[r] if stamps is not None else None)
            if keep_rows:
                rows = row_of[r, order]
                entry.pending = (None if X is None else (X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]),
                                 None if leaves is None else [lv[rows] for lv in leaves])
            out.append(entry)
        return out


def lap(timer: dict, stage: str, started: float, n: int = 0) -> float:
    """Add the time since `started` (and an item count) to timer[stage]; returns now (the next start)."""
    now = time.perf_counter()
    seconds, count = timer.get(stage, (0.0, 0))
    timer[stage] = (seconds + now - started, count + n)
    return now


class _OnePass:
    """The history as one compute pass reads it: `matrix` memoised per (users, decay, weights), since the
    item-item source and the affinity features both ask for the same recency-weighted rows (each build is
    a scipy CSR construction, ~0.1 ms). Everything else is the History itself; nothing writes through it."""

    def __init__(self, history):
        self._history, self._matrices = history, {}

    def matrix(self, user_ids, decay=None, use_weights=False):
        key = (tuple(user_ids), decay, use_weights)
        if key not in self._matrices:
            self._matrices[key] = self._history.matrix(user_ids, decay=decay, use_weights=use_weights)
        return self._matrices[key]

    def __getattr__(self, name):
        return getattr(self._history, name)

    def __contains__(self, user_id) -> bool:
        return user_id in self._history

    def __len__(self) -> int:
        return len(self._history)


def exclusion_matrix(excluded: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Users x items CSR with a 1 at each excluded position (each row's positions sorted and unique)."""
    indptr = np.r_[0, np.cumsum([len(e) for e in excluded])]
    indices = np.concatenate(excluded) if excluded else np.empty(0, np.int64)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(excluded), n_items))
