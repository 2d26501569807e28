"""Ranked candidates per user: the cacheable half of a personal list, and the cache that keeps them.

A personal list is retrieve -> rank -> filter -> re-rank -> explain. The first two stages depend only on the
model and the user's history (sources score from it, the seen filter masks it, the ranking features read it
and item statistics fixed at fit time), so their result -- every candidate of the user, ranked -- is computed
once and kept (`Ranked`) until the history changes. The request-time stages (stages.py) then only remove
items (explicit exclusions, blocklist, unavailable items, impression fatigue, the request context) and re-rank
what remains: this is not a response cache, every filter and the impressions apply on every call.

`compute` builds entries (one batched pass for many users: the cache fill, the warm-up, offline evaluation and
the short-list fallback all run it), `RankedCache` keeps them: least recently used first out under a byte
budget, each entry stamped with what it was computed from (the user's history length -- histories only ever
grow, so any change moves it --, the models' epoch, the online store row when the ranker reads Feast online
features). A stale stamp is a miss, so an entry computed while feedback arrived is never served; explicit
invalidation on feedback / history updates / refresh frees the memory at once.

Hand-written (an OrderedDict LRU): cachetools' LRUCache has no stamp check or per-entry byte sizes either.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

UNCACHEABLE = object()  # stamp part of a list computed from state the cache cannot check: never stored
# Bytes per entry beyond its arrays' data: the object with its cache slot, and each array's header (measured
# with tracemalloc over 1,000 entries of the 10k bench: 1,043 B with 6 arrays, 1,304 B with 8).
ENTRY_OVERHEAD, ARRAY_OVERHEAD = 260, 130
MAX_DEFERRED = 64  # lists waiting for explanations that keep their feature rows meanwhile (~55 KB each)
MAX_QUEUED = 10_000  # lists waiting for explanations in all (beyond MAX_DEFERRED without rows: recomputed)


class Page(NamedTuple):
    """The last page served from a ranked list: re-ranking (MMR, rules, pins) and explaining are a function
    of the candidates the filters left at the head of the list, so a request whose filters leave the same
    head (`key`: k, those candidates, the pins' status) gets the same page without redoing them. The
    filters themselves still run on every request; a different head recomputes the page."""

    key: tuple
    positions: tuple
    scores: tuple
    sources: tuple
    stages: tuple
    labels: tuple
    reasons: tuple | None  # None: computed without explanations (recommend_batch)

    @property
    def nbytes(self) -> int:  # Python objects: ~140 bytes an item beside its reason text, plus the key
        return 200 + len(self.key[1]) + sum(141 + len(r) for r in (self.reasons or self.labels))


class Ranked:
    """One user's candidates, best first: catalogue positions, ranker scores and the index of the source
    that proposed each (the lowest one when several did). Explanations are kept for the candidates that have
    been shown or warmed (`explained`: sorted indices into the candidates; `anchor` / `anchor_weight`: the
    history item that most supports each and its event weight; `factor_index` / `factor_value`: the top
    feature contributions), so a cached list is explained without its feature rows. `pending` holds the
    feature rows (in candidate order) between a computation and the request that explains from them; it is
    dropped before the entry is counted in the cache."""

    __slots__ = ("positions", "scores", "origin", "stamp", "explained", "anchor", "anchor_weight",
                 "factor_index", "factor_value", "pending", "page")

    def __init__(self, positions, scores, origin, stamp=None):
        self.positions, self.scores, self.origin, self.stamp = positions, scores, origin, stamp
        self.explained = np.empty(0, dtype=np.int32)
        self.anchor, self.anchor_weight = np.empty(0, dtype=np.int32), np.empty(0)
        self.factor_index = self.factor_value = None
        self.pending = None  # (X rows or None, leaf rows or None), candidate order
        self.page: Page | None = None  # the last page served from it (stages.py)

    @property
    def nbytes(self) -> int:
        arrays = (self.positions, self.scores, self.origin, self.explained, self.anchor, self.anchor_weight,
                  self.factor_index, self.factor_value)
        page = self.page.nbytes if self.page is not None else 0
        return ENTRY_OVERHEAD + page + sum(a.nbytes + ARRAY_OVERHEAD for a in arrays if a is not None)

    def __len__(self) -> int:
        return len(self.positions)

    def unexplained(self, rows: np.ndarray) -> np.ndarray:
        """Which of these candidate indices (-1 = not a candidate: skipped) have no explanation yet."""
        rows = np.unique(rows[rows >= 0])
        if not len(self.explained):
            return rows
        at = np.minimum(np.searchsorted(self.explained, rows), len(self.explained) - 1)
        return rows[self.explained[at] != rows]  # explained is sorted: a binary search beats np.isin here


def compute(rec, users: list[str], exclusions: list[np.ndarray], timer: dict, explain_depth: int = 0,
            stamps: list | None = None, keep_rows: bool = False) -> list[Ranked]:
    """Retrieve (skipping each user's `exclusions`, sorted unique positions) and rank, for many users in one
    pass. Explains each user's first `explain_depth` candidates (the warm-up); `keep_rows` leaves the feature
    rows on each entry (`pending`) for the request to explain what it chooses."""
    history = _OnePass(rec.history)
    with timed(timer, "retrieve"):
        cands = rec.generator.generate(users, history, exclusion_matrix(exclusions, len(rec.catalog)))
    valid, X, leaves = cands.valid, None, None
    with timed(timer, "rank", int(valid.sum())):
        if not valid.any():  # nothing left to rank (filters pushed into retrieval can exclude everything)
            scores = np.full(valid.shape, -np.inf)
        elif rec.ranking is not None and rec.config["rank"]:
            features, ranker = rec.ranking.features, rec.ranking.ranker
            if hasattr(features, "transform_array"):  # numpy all the way: no DataFrame per request
                X = features.transform_array(cands, history, names=ranker.feature_names)
            else:  # a plugged-in feature provider with only the DataFrame interface
                X = features.transform(cands, history)
            scores = np.full(valid.shape, -np.inf)
            paths = rec.explainer.contributions
            if rec._compiled is not None and not isinstance(X, pd.DataFrame) and len(X):
                scores[valid] = rec._compiled(X)  # native-code forest (compiled.py)
            elif paths is not None and paths.tabulated and not isinstance(X, pd.DataFrame) and len(X):
                leaves = paths.leaves(X)  # one pass gives the scores and, later, the explanations
                scores[valid] = paths.score(leaves)
            else:
                scores[valid] = ranker.predict(X) if len(X) else []
        else:
            s = cands.scores[rec.config["score_source"] or rec.generator.sources[0].name]
            scores = np.where(valid & ~np.isnan(s), s, -np.inf)
    row_of = np.full(valid.shape, -1)
    row_of[valid] = np.arange(int(valid.sum()))
    # origin: index of the lowest set bit of proposed_by (the first source that proposed the item)
    bits = cands.proposed_by
    origin_all = np.zeros(bits.shape, dtype=np.int8)
    for k in range(len(rec.generator.sources) - 1, -1, -1):
        origin_all[(bits >> k) & 1 == 1] = k
    dtype = np.int32 if len(rec.catalog) < 2**31 else np.int64
    out = []
    for r, user in enumerate(users):
        ok = np.flatnonzero(valid[r] & np.isfinite(scores[r]))
        order = ok[np.argsort(-scores[r, ok], kind="stable")]  # ties keep the proposal order
        entry = Ranked(cands.positions[r, order].astype(dtype), scores[r, order], origin_all[r, order],
                       stamps[r] if stamps is not None else None)
        if keep_rows or explain_depth > 0:
            rows = row_of[r, order]
            entry.pending = (None if X is None else (X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]),
                             None if leaves is None else [lv[rows] for lv in leaves])
        out.append(entry)
    if explain_depth > 0:
        rows = [_warm_rows(rec, user, entry, explain_depth) for user, entry in zip(users, out)]
        with timed(timer, "explain", sum(len(r) for r in rows)):
            rec.explainer.explain_many(out, rec.history, users, rows)
        if not keep_rows:
            for entry in out:
                entry.pending = None
    return out


def feature_rows(rec, user: str, exclusions: np.ndarray):
    """A cached list's feature rows (`Ranked.pending`) computed again, to explain from: the same user,
    exclusions and stamp give the same list, and only the rows are kept."""
    return compute(rec, [user], [exclusions], {}, 0, keep_rows=True)[0].pending


def _warm_rows(rec, user: str, entry: Ranked, depth: int) -> np.ndarray:
    """The rows a warm-up explains: the first `depth` the user's filters leave today (impression fatigue,
    blocked, unavailable), so a user whose page is already down the list (a list recomputed after a click)
    finds it explained."""
    excluded = rec._excluded(user, np.empty(0, np.int64), rec.clock())
    n = min(depth, len(entry))
    if len(excluded):
        left = np.cumsum(~np.isin(entry.positions, excluded))
        n = min(int(np.searchsorted(left, depth)) + 1, len(entry))
    return np.arange(n)


class RankedCache:
    """user id -> Ranked, least recently used first out beyond `max_bytes`. Thread-safe (the service fills
    it from a warm-up thread while requests read it on the event loop)."""

    def __init__(self, max_bytes: int, enabled: bool = True):
        self.max_bytes, self.enabled = int(max_bytes), bool(enabled)
        self._entries: OrderedDict[str, list] = OrderedDict()  # user -> [entry, its size when counted]
        self._deferred: dict[int, tuple] = {}  # id(entry) -> (user, entry, explain depth): defer()
        self._with_rows = 0  # how many of them hold their feature rows (at most MAX_DEFERRED)
        self._lock = threading.Lock()
        self.nbytes = 0
        self.epoch = 0  # bumped by clear(): a computation started before a clear never stores its result
        self.counts = {"hits": 0, "misses": 0, "fallbacks": 0, "invalidated": 0, "evicted": 0, "stale": 0,
                       "explain_passes": 0, "deepened": 0}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._entries

    def get(self, user_id: str, stamp) -> Ranked | None:
        """The user's entry if it was computed from `stamp` (else None, and a stale entry is dropped)."""
        if not self.enabled:
            return None
        with self._lock:
            slot = self._entries.get(user_id)
            if slot is None:
                return None
            if slot[0].stamp != stamp:  # computed from an older history / model
                self._drop(user_id)
                self.counts["stale"] += 1
                return None
            self._entries.move_to_end(user_id)
            return slot[0]

    def put(self, user_id: str, entry: Ranked, epoch: int) -> None:
        """Keep `entry` (computed while the cache was at `epoch`: nothing is kept across a clear)."""
        if not self.enabled or epoch != self.epoch:
            return
        size = entry.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if epoch != self.epoch:
                return
            self._drop(user_id)
            self._entries[user_id] = [entry, size]
            self.nbytes += size
            self._evict()

    def resize(self, user_id: str, entry: Ranked) -> None:
        """Recount an entry that gained explanations (if it is still the cached one)."""
        with self._lock:
            slot = self._entries.get(user_id)
            if slot is not None and slot[0] is entry:
                size = entry.nbytes
                self.nbytes += size - slot[1]
                slot[1] = size
                self._evict()

    def defer(self, user_id: str, entry: Ranked, depth: int) -> bool:
        """Queue a list for explanations to `depth` off the request path: one computed on request (its
        feature rows still `pending`: its re-rank pool) or one a user is paging down (no rows: they are
        computed again). Beyond MAX_DEFERRED lists holding rows (~55 KB each), a list's rows are dropped
        and computed again later. False when MAX_QUEUED lists wait already."""
        with self._lock:
            queued = self._deferred.get(id(entry))
            if queued is not None:  # already waiting: to the deeper of the two
                self._deferred[id(entry)] = (user_id, entry, max(queued[2], depth))
                return True
            if len(self._deferred) >= MAX_QUEUED or user_id not in self._entries:
                return False
            if entry.pending is not None:
                if self._with_rows >= MAX_DEFERRED:
                    entry.pending = None  # memory bound: the rows are computed again when it is explained
                else:
                    self._with_rows += 1
            self._deferred[id(entry)] = (user_id, entry, depth)
            return True

    def is_deferred(self, entry: Ranked) -> bool:
        return id(entry) in self._deferred

    def take_deferred(self) -> list[tuple]:
        with self._lock:
            out = list(self._deferred.values())
            self._deferred.clear()
            self._with_rows = 0
            return out

    def swap(self, user_id: str, old: Ranked, new: Ranked) -> bool:
        """Replace `old` by `new` if `old` is still the user's cached list (copy-on-write explanations)."""
        with self._lock:
            slot = self._entries.get(user_id)
            if slot is None or slot[0] is not old:
                return False
            size = new.nbytes
            self.nbytes += size - slot[1]
            slot[0], slot[1] = new, size
            self._evict()
            return True

    def invalidate(self, user_ids) -> None:
        """Drop these users' entries (their history changed)."""
        with self._lock:
            for u in user_ids:
                if self._drop(u):
                    self.counts["invalidated"] += 1

    def clear(self) -> None:
        """Drop everything (the models changed: refit, trend refresh, catalogue growth)."""
        with self._lock:
            self.counts["invalidated"] += len(self._entries)
            self._entries.clear()
            self._deferred.clear()
            self._with_rows = 0
            self.nbytes = 0
            self.epoch += 1

    def users(self) -> list[str]:
        """Cached users, most recently used first (what a reloaded version warms first)."""
        with self._lock:
            return list(reversed(self._entries))

    def stats(self) -> dict:
        return {"entries": len(self._entries), "bytes": self.nbytes, "max_bytes": self.max_bytes, **self.counts}

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))
            self.counts["evicted"] += 1

    def _drop(self, user_id: str) -> bool:
        slot = self._entries.pop(user_id, None)
        if slot is None:
            return False
        self.nbytes -= slot[1]
        return True


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


def pinned_store_rows(rec, users):
    """Context: with the Feast online store, the users' rows are read once for everything inside (the cache
    check and the ranking read the same row); otherwise nothing."""
    features = getattr(rec.ranking, "features", None) if rec.ranking is not None else None
    pin = getattr(getattr(features, "store", None), "pinned", None)
    return pin(users) if pin is not None else contextlib.nullcontext()


def stamps_of_store(rec, users) -> list:
    """Per user, the store-feature state a ranked list reads beside the history: None without store
    features, or with point-in-time ones (Feast's offline store as of the user's last event: fixed while a
    model is loaded); with the Feast online store, the user's row as served (after the freshness check)
    and the load time of the item table, read in one lookup; UNCACHEABLE for any other provider."""
    features = getattr(rec.ranking, "features", None) if rec.ranking is not None and rec.config["rank"] else None
    store = getattr(features, "store", None)
    if store is None:
        return [None] * len(users)
    from recsys.features.online import OnlineFeatures
    from recsys.features.provider import PointInTimeFeatures

    if isinstance(store, PointInTimeFeatures):
        return [None] * len(users)
    if isinstance(store, OnlineFeatures):
        rows = store.user_features(list(users)).to_numpy(dtype=object)
        loaded = store._items_loaded_at  # read-only: a refreshed item table changes every list
        return [(loaded, tuple(_hashable(v) for v in row)) for row in rows]
    return [UNCACHEABLE] * len(users)


def _hashable(value):
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    return value


class timed:
    """Adds the block's wall time (and an item count) to timer[stage]."""

    def __init__(self, timer: dict, stage: str, n: int = 0):
        self.timer, self.stage, self.n = timer, stage, n

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        seconds, n = self.timer.get(self.stage, (0.0, 0))
        self.timer[self.stage] = (seconds + time.perf_counter() - self.t0, n + self.n)


def exclusion_matrix(excluded: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Users x items CSR with a 1 at each excluded position (each row's positions sorted and unique)."""
    indptr = np.r_[0, np.cumsum([len(e) for e in excluded])]
    indices = np.concatenate(excluded) if excluded else np.empty(0, np.int64)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(excluded), n_items))
