"""A user's ranked candidates (`Ranked`), the last page served from them (`Page`), and the cache that
keeps them (`RankedCache`).

recsys/serving/lists.py computes the lists (retrieve -> rank) and decides when a cached one is current (its
stamp); this module is the data and the memory: least recently used first out under a byte budget, each
entry checked against the stamp it was computed from (a stale one is a miss and is dropped), explicit
invalidation on feedback / history updates / refresh frees the memory at once. Lists computed on request
wait here for their re-rank pool's explanations (`defer` / `take_deferred`: the explain stage runs them off
the request path).

Hand-written (an OrderedDict LRU): cachetools' LRUCache has no stamp check or per-entry byte sizes either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

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
